"""Post-sale cases (expedientes postventa): opening, the status flow, SLA.

:class:`CaseService` opens claims, incidents and service requests
(reclamaciones, incidencias, solicitudes) with an SLA due time taken from the
case type and the priority on the CRM's wall clock, moves them along
:data:`~crmkit.core.cases.CASE_FLOW`, and lists the overdue ones.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from crmkit.core import cases as core
from crmkit.core import changes
from crmkit.core.cases import SETTLED, Case, CasePriority, CaseStatus, CaseType
from crmkit.core.entities import Contact, Entity, Organization, User
from crmkit.core.errors import ValidationError
from crmkit.core.events import Created, Updated
from crmkit.core.fields import to_enum
from crmkit.core.ids import CaseId, ContactId, OpportunityId, UserId, uuid7
from crmkit.core.opportunities import Opportunity
from crmkit.core.query import Eq, Filter, In, Range
from crmkit.services.base import (
    UNSET,
    Event,
    Notice,
    OrganizationRef,
    Unset,
    UserRef,
    _check_uuid,
    _check_version,
    _expect,
    _organization_of_contact,
    _Service,
)
from crmkit.services.registry import Registry
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["CaseService"]

#: What a contact argument accepts: the record or its id.
ContactRef = Contact | ContactId
#: What an opportunity argument accepts: the record or its id.
OpportunityRef = Opportunity | OpportunityId
#: What a priority argument accepts: the member or its value (``"high"``).
PriorityRef = CasePriority | str

_OPEN_STATUSES = tuple(s for s in CaseStatus if s not in SETTLED)

#: A status change: (unit of work, current case, now) -> (new case, event).
_Change = Callable[[UnitOfWork, Case, datetime], tuple[Case, Updated[Case]]]


class CaseService(_Service[Case, CaseId]):
    """Post-sale cases: claims, incidents, service requests (expedientes).

    A case is opened with a type and a priority, which set its SLA due time,
    and moves ``open -> in_progress <-> waiting -> resolved -> closed``
    (:meth:`start`, :meth:`wait`, :meth:`resolve`, :meth:`close`; a settled
    case can be :meth:`reopen`\\ ed).  Every change is audited.

    Attributes:
        types: the registered :class:`~crmkit.CaseType` (by key).
    """

    _cls = Case
    _aliases: ClassVar[Mapping[str, tuple[str, type[Entity]]]] = {
        "organization": ("organization_id", Organization),
        "contact": ("contact_id", Contact),
        "opportunity": ("opportunity_id", Opportunity),
        "owner": ("owner_id", User),
    }
    _bulk_create_like: ClassVar[str] = "open"

    def __init__(self, crm: CRM):
        super().__init__(crm)
        self.types: Registry[CaseType] = Registry(CaseType, "case type", "case_type")

    # ------------------------------------------------------------- opening
    def open(
        self,
        *,
        subject: str,
        case_type: str,
        priority: PriorityRef = "normal",
        organization: OrganizationRef | None = None,
        contact: ContactRef | None = None,
        opportunity: OpportunityRef | None = None,
        owner: UserRef | None = None,
        description: str | None = None,
        tags: Iterable[str] = (),
        external_ref: str | None = None,
        custom: Mapping[str, object] | None = None,
    ) -> Case:
        """Open a case (status ``open``), due by its type's SLA for ``priority``.

        ``opened_at`` is now; ``sla_due`` adds the type's
        :class:`~crmkit.SlaTarget` for the priority, its days on the wall
        clock of ``crm.timezone``.  Given only a contact, the contact's
        organization is used too.  ``crmkit_case_opened`` is called after
        commit.

        Args:
            subject: what the case is about.
            case_type: the key of a registered :class:`~crmkit.CaseType`
                (``"claim"``, ``"incident"``, ``"service_request"``...).
            priority: ``low``, ``normal`` (default), ``high`` or ``urgent``.
            organization: the customer (record or id).
            contact: the person who raised it (record or id).
            opportunity: the sale it comes from (record or id).
            owner: the user in charge (record or id).
            description: details.
            tags: free labels.
            external_ref: the host system's id for it.
            custom: custom field values by key (see the custom fields guide).

        Returns:
            The open case.

        Raises:
            ValidationError: an unknown ``case_type`` (code ``reference``) or
                ``priority`` (code ``choice``), neither organization nor
                contact, a reference to a missing record, any invalid value.
            DuplicateError: ``external_ref`` is taken.
        """
        values = {
            "subject": subject,
            "case_type": case_type,
            "priority": priority,
            "organization": organization,
            "contact": contact,
            "opportunity": opportunity,
            "owner": owner,
            "description": description,
            "tags": tags,
            "external_ref": external_ref,
            "custom": custom,
        }
        self._sla_target(case_type, priority)  # fail before opening a unit of work

        def run(uow: UnitOfWork, events: list[Event]) -> Case:
            case, event = self._new(self._prepare(uow, values), self._crm.now())
            self._repo(uow).add(self._validated(case, None))
            self._crm._record(uow, events, event)
            self._opened(events, case)
            return case

        return self._crm._write(run)

    def bulk_create(
        self, items: Iterable[Mapping[str, Any]], *, batch_size: int = 1000
    ) -> list[Case]:
        """Open many cases; each item maps :meth:`open`'s argument names to values.

        Every item is validated first; unlike other services' ``bulk_create``,
        all the cases commit in one transaction, so that
        ``crmkit_case_opened`` is called once for each case, after the commit
        (never for cases that were not written).

        Raises:
            ValidationError: an invalid item; ``field`` starts with its index
                (``"[12].case_type"``).
            DuplicateError: an ``external_ref`` is taken (nothing is written).
        """
        crm = self._crm
        with crm.transaction():
            opened = super().bulk_create(items, batch_size=batch_size)

            def queue(uow: UnitOfWork, events: list[Event]) -> None:
                for case in opened:
                    self._opened(events, case)

            crm._write(queue)
        return opened

    # --------------------------------------------------------------- moves
    def start(self, id: CaseId, *, expected_version: int | None = None) -> Case:
        """Start working on a case (``in_progress``), from ``open`` or ``waiting``.

        Raises:
            NotFoundError: no such case.
            InvalidTransition: the case flow does not allow it.
            ConcurrencyError: ``expected_version`` is given and stale.
        """
        return self._move(id, expected_version, CaseStatus.IN_PROGRESS)

    def wait(self, id: CaseId, *, expected_version: int | None = None) -> Case:
        """Wait for the customer or a third party (``waiting``).

        Allowed from ``open`` and ``in_progress``.

        Raises:
            NotFoundError: no such case.
            InvalidTransition: the case flow does not allow it.
            ConcurrencyError: ``expected_version`` is given and stale.
        """
        return self._move(id, expected_version, CaseStatus.WAITING)

    def resolve(
        self,
        id: CaseId,
        *,
        resolution: str | None = None,
        expected_version: int | None = None,
    ) -> Case:
        """Resolve an unsettled case: ``resolved_at`` is now, ``resolution`` says how.

        Raises:
            NotFoundError: no such case.
            InvalidTransition: it is already resolved or closed.
            ValidationError: ``resolution`` is not valid text.
            ConcurrencyError: ``expected_version`` is given and stale.
        """
        return self._move(id, expected_version, CaseStatus.RESOLVED, resolution=resolution)

    def close(self, id: CaseId, *, expected_version: int | None = None) -> Case:
        """Close a resolved case (``closed_at`` is now).

        ``crmkit_case_closed`` is called after commit.

        Raises:
            NotFoundError: no such case.
            InvalidTransition: the case is not resolved.
            ConcurrencyError: ``expected_version`` is given and stale.
        """
        crm = self._crm

        def after(events: list[Event], case: Case) -> None:
            events.append(Notice(lambda: crm.plugins.case_closed(crm, case)))

        return self._move(id, expected_version, CaseStatus.CLOSED, after=after)

    def reopen(self, id: CaseId, *, expected_version: int | None = None) -> Case:
        """Reopen a resolved or closed case; its SLA restarts from now.

        ``opened_at`` becomes now and ``sla_due`` is computed again from the
        case's type and priority; ``resolved_at``, ``closed_at`` and
        ``resolution`` are cleared (the audit trail keeps them).
        ``crmkit_case_opened`` is called again after commit.

        Raises:
            NotFoundError: no such case.
            InvalidTransition: the case is not resolved or closed.
            ValidationError: the case's type is no longer registered.
            ConcurrencyError: ``expected_version`` is given and stale.
        """
        tz = self._crm.timezone

        def change(uow: UnitOfWork, current: Case, now: datetime) -> tuple[Case, Updated[Case]]:
            target = self._sla_target(current.case_type, current.priority)
            return core.reopen(current, now=now, sla=target, tz=tz)

        return self._change(id, expected_version, change, after=self._opened)

    # ------------------------------------------------------------- details
    def update(
        self,
        id: CaseId,
        *,
        expected_version: int,
        subject: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        case_type: str | Unset = UNSET,
        priority: PriorityRef | Unset = UNSET,
        organization: OrganizationRef | Unset | None = UNSET,
        contact: ContactRef | Unset | None = UNSET,
        opportunity: OpportunityRef | Unset | None = UNSET,
        owner: UserRef | Unset | None = UNSET,
        tags: Iterable[str] | Unset = UNSET,
        external_ref: str | Unset | None = UNSET,
        custom: Mapping[str, object] | Unset | None = UNSET,
    ) -> Case:
        """Change a case's details; its status changes only through the moves.

        A new ``priority`` or ``case_type`` recomputes ``sla_due`` from
        ``opened_at`` with the new SLA target.

        Raises:
            NotFoundError: no such case.
            ConcurrencyError: it changed since ``expected_version``.
            ValidationError: an unknown type or priority, a case left with
                neither organization nor contact, any invalid value.
        """
        _check_uuid(id, "id")
        _check_version(expected_version)
        values = {
            name: value
            for name, value in {
                "subject": subject,
                "description": description,
                "case_type": case_type,
                "priority": priority,
                "organization": organization,
                "contact": contact,
                "opportunity": opportunity,
                "owner": owner,
                "tags": tags,
                "external_ref": external_ref,
                "custom": custom,
            }.items()
            if value is not UNSET
        }
        if "case_type" in values:
            self._type(values["case_type"])
        if "priority" in values:
            values["priority"] = to_enum(CasePriority, values["priority"], "priority")
        prepare = super()._prepare  # an update takes references as given: no organization fill

        def run(uow: UnitOfWork, events: list[Event]) -> Case:
            repo = self._repo(uow)
            current = repo.get(id)
            _expect(current, expected_version)
            fields = prepare(uow, values)
            if "case_type" in fields or "priority" in fields:
                target = self._sla_target(
                    fields.get("case_type", current.case_type),
                    fields.get("priority", current.priority),
                )
                fields["sla_due"] = core.sla_due(current.opened_at, target, self._crm.timezone)
            case, event = changes.update(current, fields, now=self._crm.now())
            if event is not None:
                repo.update(self._validated(case, current), expected_version=expected_version)
                self._crm._record(uow, events, event)
            return case

        return self._crm._write(run)

    def register_type(self, case_type: CaseType) -> CaseType:
        """Add a case type through the API (plugins use ``crmkit_register_case_types``).

        Raises:
            ValidationError: not a :class:`~crmkit.CaseType`.
            DuplicateError: the key is taken.
        """
        return self.types.register(case_type)

    # ------------------------------------------------------------- reading
    def overdue(
        self,
        *,
        now: datetime | None = None,
        owner: UserRef | None = None,
        limit: int | None = None,
    ) -> list[Case]:
        """Unsettled cases due before ``now`` (default: now), most overdue first.

        One query: ``owner`` is taken as given (a user or a user id), not looked up.

        Raises:
            ValidationError: a naive ``now``, an ``owner`` that is not a user
                or id, a bad ``limit``.
        """
        if now is None:
            now = self._crm.now()
        elif not isinstance(now, datetime) or now.utcoffset() is None:
            raise ValidationError("now", "must be timezone-aware", code="naive_datetime", value=now)
        filters: list[Filter] = [In("status", _OPEN_STATUSES), Range("sla_due", None, now)]
        if owner is not None:
            filters.append(Eq("owner_id", _user_id(owner)))
        return self.find(*filters, order_by="sla_due", limit=limit)

    # ------------------------------------------------------------- helpers
    def _type(self, case_type: object) -> CaseType:
        """The registered case type with key ``case_type``."""
        if not isinstance(case_type, str):
            raise ValidationError(
                "case_type", "must be the key of a case type", code="type", value=case_type
            )
        return self.types.get(case_type)

    def _sla_target(self, case_type: object, priority: object) -> core.SlaTarget:
        """The SLA target of a registered type and a priority (both checked)."""
        chosen = self._type(case_type)
        return chosen.sla[to_enum(CasePriority, priority, "priority")]

    def _creating(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Bulk items hold :meth:`open`'s arguments, with its defaults."""
        return {"priority": CasePriority.NORMAL, "organization": None, **values}

    def _new(self, fields: dict[str, Any], now: datetime) -> tuple[Case, Created[Case]]:
        """A new open case, opened now and due by its type's SLA (also for ``bulk_create``)."""
        if "case_type" not in fields:
            raise ValidationError("case_type", "is required", code="required")
        target = self._sla_target(fields["case_type"], fields["priority"])
        return changes.create(
            Case,
            id=uuid7(),
            now=now,
            status=CaseStatus.OPEN,
            opened_at=now,
            sla_due=core.sla_due(now, target, self._crm.timezone),
            **fields,
        )

    def _prepare(
        self,
        uow: UnitOfWork,
        values: Mapping[str, Any],
        resolve: Callable[[UnitOfWork, type[Entity], object, str], UUID | None] | None = None,
    ) -> dict[str, Any]:
        """Creation fields; given only a contact, the contact's organization is used."""
        fields = super()._prepare(uow, values, resolve)
        _organization_of_contact(uow, fields)
        return fields

    def _opened(self, events: list[Event], case: Case) -> None:
        crm = self._crm
        events.append(Notice(lambda: crm.plugins.case_opened(crm, case)))

    def _move(
        self,
        id: CaseId,
        expected_version: int | None,
        target: CaseStatus,
        *,
        resolution: str | None = None,
        after: Callable[[list[Event], Case], None] | None = None,
    ) -> Case:
        return self._change(
            id,
            expected_version,
            lambda uow, current, now: core.move(current, target, now=now, resolution=resolution),
            after=after,
        )

    def _change(
        self,
        id: CaseId,
        expected_version: int | None,
        change: _Change,
        *,
        after: Callable[[list[Event], Case], None] | None = None,
    ) -> Case:
        """Apply one status change as one audited update."""
        _check_uuid(id, "id")
        if expected_version is not None:
            _check_version(expected_version)

        def run(uow: UnitOfWork, events: list[Event]) -> Case:
            repo = self._repo(uow)
            current = repo.get(id)
            if expected_version is not None:
                _expect(current, expected_version)
            case, event = change(uow, current, self._crm.now())
            repo.update(self._validated(case, current), expected_version=current.version)
            self._crm._record(uow, events, event)
            if after is not None:
                after(events, case)
            return case

        return self._crm._write(run)


def _user_id(value: object) -> UserId:
    if isinstance(value, User):
        return value.id
    if isinstance(value, UUID):
        return UserId(value)
    raise ValidationError("owner", "must be a user or a user id", code="type", value=value)
