"""Post-sale cases (expedientes postventa, reclamaciones, incidencias).

A :class:`Case` has a type (the key of a :class:`CaseType`: claim, incident,
service request; plugins add more with ``crmkit_register_case_types``), a
priority and a status that moves

    open -> in progress <-> waiting -> resolved -> closed

(resolved and closed cases can be reopened).  Its SLA due time comes from the
type and the priority: :class:`SlaTarget` ``days`` are calendar days on the
wall clock of the CRM's time zone (so a "2 days" target opened at 09:00 is due
at 09:00, across a daylight-saving change), ``hours`` are elapsed hours.
The SLA always counts from ``opened_at``: reopening a case moves ``opened_at``
to the reopening time (``created_at`` and the audit trail keep the first one).

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar, Final

from attrs import field, frozen

from crmkit.core import changes
from crmkit.core.custom_fields import CustomValues, custom_field
from crmkit.core.entities import _BASE_FIELDS, Contact, Entity, FieldKind, Organization, User
from crmkit.core.errors import InvalidTransition, ValidationError
from crmkit.core.events import Updated
from crmkit.core.fields import (
    KEY_RE,
    aware_datetime,
    enum_field,
    optional_datetime,
    optional_id,
    required_id,
    tag_item,
    text,
    tuple_field,
)
from crmkit.core.ids import CaseId, ContactId, OpportunityId, OrganizationId, UserId
from crmkit.core.opportunities import Opportunity

__all__ = [
    "BUILTIN_CASE_TYPES",
    "CASE_FLOW",
    "SETTLED",
    "Case",
    "CasePriority",
    "CaseStatus",
    "CaseType",
    "SlaTarget",
    "is_overdue",
    "move",
    "reopen",
    "sla_due",
]


class CaseStatus(enum.Enum):
    """Where a case stands."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING = "waiting"  #: waiting for the customer or a third party
    RESOLVED = "resolved"
    CLOSED = "closed"


class CasePriority(enum.Enum):
    """How urgent a case is; with the type, it sets the SLA."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


#: Statuses each status may move to.  Resolved and closed cases move back to
#: open only through ``reopen``.
CASE_FLOW: Final[Mapping[CaseStatus, frozenset[CaseStatus]]] = {
    CaseStatus.OPEN: frozenset({CaseStatus.IN_PROGRESS, CaseStatus.WAITING, CaseStatus.RESOLVED}),
    CaseStatus.IN_PROGRESS: frozenset({CaseStatus.WAITING, CaseStatus.RESOLVED}),
    CaseStatus.WAITING: frozenset({CaseStatus.IN_PROGRESS, CaseStatus.RESOLVED}),
    CaseStatus.RESOLVED: frozenset({CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset(),
}

#: Statuses in which the SLA clock no longer matters.
SETTLED: Final = frozenset({CaseStatus.RESOLVED, CaseStatus.CLOSED})


def _non_negative(name: str) -> Any:
    def convert(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError(name, "must be a whole number of 0 or more", value=value)
        return value

    return field(default=0, converter=convert)


@frozen(kw_only=True)
class SlaTarget:
    """How long a case may stay unresolved: calendar ``days`` plus elapsed ``hours``."""

    days: int = _non_negative("days")
    hours: int = _non_negative("hours")


def _type_key(value: object) -> str:
    if not isinstance(value, str) or not KEY_RE.fullmatch(value):
        raise ValidationError(
            "case_type",
            "must be 1-64 lower-case letters, digits, '-' or '_'",
            code="key",
            value=value,
        )
    return value


def _sla_map(value: object) -> Mapping[CasePriority, SlaTarget]:
    if not isinstance(value, Mapping):
        raise ValidationError("sla", "must map priorities to SlaTarget", code="type", value=value)
    result: dict[CasePriority, SlaTarget] = {}
    for key, target in value.items():
        try:
            priority = CasePriority(key.value if isinstance(key, CasePriority) else key)
        except ValueError:
            raise ValidationError(
                "sla", "has an unknown priority", code="choice", value=key
            ) from None
        if not isinstance(target, SlaTarget):
            raise ValidationError(f"sla.{priority.value}", "must be a SlaTarget", value=target)
        result[priority] = target
    missing = [p.value for p in CasePriority if p not in result]
    if missing:
        raise ValidationError(
            "sla", f"needs a target for every priority (missing {', '.join(missing)})"
        )
    return result


@frozen(kw_only=True)
class CaseType:
    """A kind of case with English and Spanish labels and an SLA per priority."""

    key: str = field(converter=_type_key)
    name: str = text("name", required=True, max_length=200)
    name_es: str | None = text("name_es", max_length=200)
    sla: Mapping[CasePriority, SlaTarget] = field(converter=_sla_map, eq=False, hash=False)

    def label(self, language: str = "en") -> str:
        """The label in ``language`` (``"es"`` or ``"en"``), falling back to English."""
        if language.startswith("es") and self.name_es:
            return self.name_es
        return self.name


def _sla(urgent: SlaTarget, high: SlaTarget, normal: SlaTarget, low: SlaTarget) -> Any:
    return {
        CasePriority.URGENT: urgent,
        CasePriority.HIGH: high,
        CasePriority.NORMAL: normal,
        CasePriority.LOW: low,
    }


#: The case types crmkit's built-in plugin registers.
BUILTIN_CASE_TYPES: Final[tuple[CaseType, ...]] = (
    CaseType(
        key="claim",
        name="Claim",
        name_es="Reclamación",
        sla=_sla(SlaTarget(hours=4), SlaTarget(days=1), SlaTarget(days=3), SlaTarget(days=7)),
    ),
    CaseType(
        key="incident",
        name="Incident",
        name_es="Incidencia",
        sla=_sla(SlaTarget(hours=2), SlaTarget(hours=8), SlaTarget(days=2), SlaTarget(days=5)),
    ),
    CaseType(
        key="service_request",
        name="Service request",
        name_es="Solicitud de servicio",
        sla=_sla(SlaTarget(hours=8), SlaTarget(days=2), SlaTarget(days=5), SlaTarget(days=10)),
    ),
)


def sla_due(opened_at: datetime, target: SlaTarget, tz: tzinfo = UTC) -> datetime:
    """When a case opened at ``opened_at`` must be resolved, in UTC.

    ``target.days`` are added on the wall clock of ``tz``: the due time shows
    the same wall time as the opening, ``days`` later, so the elapsed time is
    ``days`` x 24 hours minus the change of UTC offset in between (23 hours for
    one day across a spring-forward change).  A wall time that does not exist
    (inside a spring-forward gap) is read with the offset before the gap, and
    an ambiguous one (repeated by a fall-back change) as its first occurrence,
    as :mod:`zoneinfo` does with ``fold=0``.  ``target.hours`` are then added
    as elapsed time; with no ``days``, the due time is exactly ``hours`` after
    ``opened_at``.  The result depends only on the instant ``opened_at``, not
    on the zone it is expressed in.

    Args:
        opened_at: when the case was opened (timezone-aware).
        target: the SLA target of the case's type and priority.
        tz: the business's wall clock (``crm.timezone``).

    Returns:
        The due instant, in UTC.

    Raises:
        ValidationError: ``opened_at`` is not timezone-aware (``naive_datetime``),
            or the due time is beyond the representable range (``out_of_range``).
    """
    if not isinstance(opened_at, datetime) or opened_at.utcoffset() is None:
        raise ValidationError(
            "opened_at", "must be timezone-aware", code="naive_datetime", value=opened_at
        )
    try:
        start = opened_at.astimezone(UTC)
        if target.days:
            # the wall clock, not elapsed time; with no days, keep the instant
            # itself (re-reading its wall time would lose a fall-back fold)
            local = opened_at.astimezone(tz).replace(tzinfo=None)
            wall = (local + timedelta(days=target.days)).replace(tzinfo=tz)
            start = wall.astimezone(UTC)
        return start + timedelta(hours=target.hours)
    except OverflowError:
        raise ValidationError(
            "sla_due",
            "falls outside the representable range",
            code="out_of_range",
            value=opened_at,
        ) from None


def _case_type(value: object) -> str:
    return _type_key(value)


@frozen(kw_only=True)
class Case(Entity):
    """A post-sale case about an organization and/or a contact."""

    ENTITY: ClassVar[str] = "case"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "subject": FieldKind.TEXT,
        "case_type": FieldKind.TEXT,
        "status": FieldKind.ENUM,
        "priority": FieldKind.ENUM,
        "organization_id": FieldKind.ID,
        "contact_id": FieldKind.ID,
        "opportunity_id": FieldKind.ID,
        "owner_id": FieldKind.ID,
        "opened_at": FieldKind.DATETIME,
        "sla_due": FieldKind.DATETIME,
        "resolved_at": FieldKind.DATETIME,
        "closed_at": FieldKind.DATETIME,
        "tags": FieldKind.SET,
    }

    id: CaseId = required_id()
    subject: str = text("subject", required=True, max_length=300)
    description: str | None = text("description", max_length=10_000)
    case_type: str = field(converter=_case_type)
    status: CaseStatus = enum_field(CaseStatus, "status", CaseStatus.OPEN)
    priority: CasePriority = enum_field(CasePriority, "priority", CasePriority.NORMAL)
    organization_id: OrganizationId | None = optional_id()
    contact_id: ContactId | None = optional_id()
    opportunity_id: OpportunityId | None = optional_id()
    owner_id: UserId | None = optional_id()
    opened_at: datetime = aware_datetime()
    sla_due: datetime = aware_datetime()
    resolved_at: datetime | None = optional_datetime()
    closed_at: datetime | None = optional_datetime()
    resolution: str | None = text("resolution", max_length=10_000)
    tags: tuple[str, ...] = tuple_field(tag_item, "tags")
    #: custom field values (campos personalizados) by key
    custom: CustomValues = custom_field()

    def __attrs_post_init__(self) -> None:
        if self.organization_id is None and self.contact_id is None:
            raise ValidationError(
                "organization", "a case needs an organization or a contact", code="required"
            )

    @property
    def is_open(self) -> bool:
        """Not resolved or closed yet."""
        return self.status not in SETTLED


Case.REFERENCES = {
    "organization_id": Organization,
    "contact_id": Contact,
    "opportunity_id": Opportunity,
    "owner_id": User,
}


def is_overdue(case: Case, now: datetime) -> bool:
    """Whether the case is unresolved past its SLA due time.

    Instants compare, not wall times: ``now`` may be expressed in any zone.
    A case is not overdue at its due instant, only after it; a resolved or
    closed case never is.

    Raises:
        ValidationError: ``now`` is not timezone-aware.
    """
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValidationError("now", "must be timezone-aware", code="naive_datetime", value=now)
    # both in UTC: datetimes sharing one tzinfo would compare wall times, fold ignored
    return case.is_open and now.astimezone(UTC) > case.sla_due.astimezone(UTC)


def move(
    case: Case,
    target: CaseStatus,
    *,
    now: datetime,
    resolution: str | None = None,
) -> tuple[Case, Updated[Case]]:
    """Move a case to ``target`` along :data:`CASE_FLOW`.

    Resolving stamps ``resolved_at`` (and keeps ``resolution`` when given);
    closing stamps ``closed_at`` (only a resolved case can be closed).

    Args:
        case: the case to move.
        target: the status to move to.
        now: the time of the move.
        resolution: how the case was resolved (used when resolving).

    Returns:
        The moved case and its :class:`~crmkit.core.events.Updated` event.

    Raises:
        InvalidTransition: the flow does not allow it.
    """
    if target not in CASE_FLOW[case.status]:
        raise InvalidTransition(
            "case", case.status.value, target.value, "the case flow does not allow it"
        )
    values: dict[str, Any] = {"status": target}
    if target is CaseStatus.RESOLVED:
        values["resolved_at"] = now
        if resolution is not None:
            values["resolution"] = resolution
    elif target is CaseStatus.CLOSED:
        values["closed_at"] = now
    new, event = changes.update(case, values, now=now)
    assert event is not None
    return new, event


def reopen(
    case: Case, *, now: datetime, sla: SlaTarget, tz: tzinfo = UTC
) -> tuple[Case, Updated[Case]]:
    """Reopen a resolved or closed case; its SLA restarts from ``now``.

    ``opened_at`` becomes ``now`` (so the SLA still counts from it), and
    ``resolved_at``, ``closed_at`` and ``resolution`` are cleared; the audit
    trail keeps the earlier values.

    Args:
        case: a resolved or closed case.
        now: the time of reopening.
        sla: the SLA target of the case's type and priority.
        tz: the business's wall clock, for the SLA days.

    Returns:
        The open case and its :class:`~crmkit.core.events.Updated` event.

    Raises:
        InvalidTransition: the case is not resolved or closed.
    """
    if case.status not in SETTLED:
        raise InvalidTransition(
            "case", case.status.value, CaseStatus.OPEN.value, "only a settled case can be reopened"
        )
    new, event = changes.update(
        case,
        {
            "status": CaseStatus.OPEN,
            "opened_at": now,
            "sla_due": sla_due(now, sla, tz),
            "resolved_at": None,
            "closed_at": None,
            "resolution": None,
        },
        now=now,
    )
    assert event is not None
    return new, event
