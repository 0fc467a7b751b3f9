"""Interactions (gestión de relacionamiento) and the agenda (panel de control).

:class:`InteractionService` logs what happened and plans what comes next;
:class:`AgendaService` answers "what is on my plate": overdue, due today and
upcoming planned interactions, and overdue cases, for a user, a team or
everyone, each list one indexed query.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final
from uuid import UUID

import attrs

from crmkit.core import changes
from crmkit.core import interactions as core
from crmkit.core.campaigns import Campaign
from crmkit.core.cases import SETTLED, Case, CaseStatus
from crmkit.core.entities import Contact, Entity, Organization, Outcome, User
from crmkit.core.errors import NotFoundError, ValidationError
from crmkit.core.fields import in_utc_range
from crmkit.core.ids import (
    CampaignId,
    CaseId,
    ContactId,
    InteractionId,
    OpportunityId,
    OutcomeId,
    UserId,
    uuid7,
)
from crmkit.core.interactions import (
    Interaction,
    InteractionKind,
    InteractionStatus,
    Sequence,
)
from crmkit.core.money import Money
from crmkit.core.opportunities import Opportunity
from crmkit.core.query import Eq, Filter, In, Order, Query, Range, check_query
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
    _ref_id,
    _Service,
)
from crmkit.services.bulk import BulkUpdates
from crmkit.services.registry import Registry
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["Agenda", "AgendaCounts", "AgendaService", "InteractionService"]

#: What an outcome argument accepts: the master record, its id or its key.
OutcomeRef = Outcome | OutcomeId | str
ContactRef = Contact | ContactId

#: When a next step gives no due time, the follow-up is planned this long after
#: the interaction happened (the same wall-clock time the next day).
DEFAULT_FOLLOW_UP: Final = timedelta(days=1)

#: The longest look-ahead of the agenda's upcoming list, in days (``None``: no limit).
MAX_DAYS: Final = 36_500


class InteractionService(
    _Service[Interaction, InteractionId], BulkUpdates[Interaction, InteractionId]
):
    """Calls, e-mails, meetings, visits... logged or planned (interacciones).

    Attributes:
        kinds: the registered :class:`~crmkit.InteractionKind` (by key).
        sequences: the registered :class:`~crmkit.Sequence` (by key).
    """

    _cls = Interaction
    _aliases: ClassVar[Mapping[str, tuple[str, type[Entity]]]] = {
        "organization": ("organization_id", Organization),
        "contact": ("contact_id", Contact),
        "opportunity": ("opportunity_id", Opportunity),
        "case": ("case_id", Case),
        "assignee": ("assignee_id", User),
        "outcome": ("outcome_id", Outcome),
        "follow_up_of": ("follow_up_of", Interaction),
        "campaign": ("campaign_id", Campaign),
    }
    _bulk_create_like: ClassVar[str] = "plan"

    def __init__(self, crm: CRM):
        super().__init__(crm)
        self.kinds: Registry[InteractionKind] = Registry(
            InteractionKind, "interaction kind", "kind"
        )
        self.sequences: Registry[Sequence] = Registry(Sequence, "sequence", "sequence")

    # ------------------------------------------------------------- writing
    def log(
        self,
        *,
        kind: str,
        organization: OrganizationRef | None = None,
        contact: ContactRef | None = None,
        subject: str | None = None,
        description: str | None = None,
        occurred_at: datetime | None = None,
        outcome: OutcomeRef | None = None,
        next_step: str | None = None,
        next_due: datetime | None = None,
        next_kind: str | None = None,
        assignee: UserRef | None = None,
        opportunity: Opportunity | OpportunityId | None = None,
        case: Case | CaseId | None = None,
        campaign: Campaign | CampaignId | None = None,
        tags: Iterable[str] = (),
        external_ref: str | None = None,
        custom: Mapping[str, object] | None = None,
    ) -> Interaction:
        """Log an interaction that happened (status ``done``).

        With a ``next_step``, the planned follow-up is created in the same
        transaction: kind ``next_kind`` (default: the same kind), subject the
        next step, due ``next_due`` (default: the same wall-clock time the day
        after it happened, in the CRM's time zone), for the same assignee,
        organization, contact, opportunity, case and campaign, with
        ``follow_up_of`` pointing back.  :meth:`follow_ups` lists it.

        Given only a contact, the contact's organization is used too.
        ``outcome`` is an entry of ``crm.outcomes`` (its key, record or id).
        Plugins hear ``crmkit_interaction_logged`` once, after commit.

        Raises:
            ValidationError: an unknown kind or outcome, neither organization
                nor contact, ``next_due`` or ``next_kind`` without a
                ``next_step``, any invalid value.
        """
        values = {
            "kind": kind,
            "status": InteractionStatus.DONE,
            "organization": organization,
            "contact": contact,
            "subject": subject,
            "description": description,
            "occurred_at": occurred_at,
            "outcome": outcome,
            "next_step": next_step,
            "assignee": assignee,
            "opportunity": opportunity,
            "case": case,
            "campaign": campaign,
            "tags": tags,
            "external_ref": external_ref,
            "custom": custom,
        }
        self._check_next(next_step, next_due, next_kind)

        def run(uow: UnitOfWork, events: list[Event]) -> Interaction:
            now = self._crm.now()
            fields = self._prepare(uow, values)
            if fields.get("occurred_at") is None:
                fields["occurred_at"] = now
            done, event = changes.create(Interaction, id=uuid7(), now=now, **fields)
            self._repo(uow).add(self._validated(done, None))
            self._crm._record(uow, events, event)
            self._logged(events, done)
            if done.next_step:
                self._follow_up(uow, events, done, next_due, next_kind, now)
            return done

        return self._crm._write(run)

    def plan(
        self,
        *,
        kind: str,
        scheduled_at: datetime,
        organization: OrganizationRef | None = None,
        contact: ContactRef | None = None,
        subject: str | None = None,
        description: str | None = None,
        assignee: UserRef | None = None,
        opportunity: Opportunity | OpportunityId | None = None,
        case: Case | CaseId | None = None,
        campaign: Campaign | CampaignId | None = None,
        follow_up_of: Interaction | InteractionId | None = None,
        tags: Iterable[str] = (),
        external_ref: str | None = None,
        custom: Mapping[str, object] | None = None,
    ) -> Interaction:
        """Plan an interaction (status ``planned``) on ``assignee``'s agenda.

        Raises:
            ValidationError: an unknown kind, neither organization nor
                contact, a naive ``scheduled_at``, any invalid value.
        """
        return self._create(
            {
                "kind": kind,
                "status": InteractionStatus.PLANNED,
                "scheduled_at": scheduled_at,
                "organization": organization,
                "contact": contact,
                "subject": subject,
                "description": description,
                "assignee": assignee,
                "opportunity": opportunity,
                "case": case,
                "campaign": campaign,
                "follow_up_of": follow_up_of,
                "tags": tags,
                "external_ref": external_ref,
                "custom": custom,
            }
        )

    def update(
        self,
        id: InteractionId,
        *,
        expected_version: int,
        subject: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        outcome: OutcomeRef | Unset | None = UNSET,
        opportunity: Opportunity | OpportunityId | Unset | None = UNSET,
        case: Case | CaseId | Unset | None = UNSET,
        campaign: Campaign | CampaignId | Unset | None = UNSET,
        tags: Iterable[str] | Unset = UNSET,
        external_ref: str | Unset | None = UNSET,
        custom: Mapping[str, object] | Unset | None = UNSET,
    ) -> Interaction:
        """Change an interaction's details (subject, outcome, links, tags).

        Its status, time and assignee change through :meth:`complete`,
        :meth:`reschedule`, :meth:`cancel` and :meth:`reassign`.

        Raises:
            NotFoundError: no such interaction.
            ConcurrencyError: it changed since ``expected_version``.
        """
        return self._update(
            id,
            expected_version,
            {
                "subject": subject,
                "description": description,
                "outcome": outcome,
                "opportunity": opportunity,
                "case": case,
                "campaign": campaign,
                "tags": tags,
                "external_ref": external_ref,
                "custom": custom,
            },
        )

    def complete(
        self,
        id: InteractionId,
        *,
        occurred_at: datetime | None = None,
        outcome: OutcomeRef | None = None,
        description: str | None = None,
        next_step: str | None = None,
        next_due: datetime | None = None,
        next_kind: str | None = None,
        expected_version: int | None = None,
    ) -> Interaction:
        """Mark a planned interaction done (at ``occurred_at``, default now).

        A ``next_step`` plans the follow-up as :meth:`log` does.  Plugins hear
        ``crmkit_interaction_logged`` once, after commit.

        Raises:
            NotFoundError: no such interaction.
            InvalidTransition: it is not planned.
            ConcurrencyError: ``expected_version`` is given and stale.
            ValidationError: an unknown outcome or kind, a naive time.
        """
        self._check_next(next_step, next_due, next_kind)

        def change(uow: UnitOfWork, current: Interaction, now: datetime) -> Any:
            outcome_id = _ref_id(uow, Outcome, outcome, "outcome")
            return core.complete(
                current,
                now=now,
                occurred_at=occurred_at,
                outcome_id=OutcomeId(outcome_id) if outcome_id else None,
                description=description,
                next_step=next_step,
            )

        def after(uow: UnitOfWork, events: list[Event], done: Interaction, now: datetime) -> None:
            self._logged(events, done)
            if next_step is not None and done.next_step:  # blank text plans nothing
                self._follow_up(uow, events, done, next_due, next_kind, now)

        return self._change(id, expected_version, change, after)

    def reschedule(
        self, id: InteractionId, *, to: datetime, expected_version: int | None = None
    ) -> Interaction:
        """Move a planned interaction to another time (audited).

        Raises:
            NotFoundError: no such interaction.
            InvalidTransition: it is not planned.
            ConcurrencyError: ``expected_version`` is given and stale.
            ValidationError: ``to`` is not a timezone-aware datetime.
        """
        return self._change(
            id, expected_version, lambda uow, cur, now: core.reschedule(cur, to=to, now=now)
        )

    def cancel(
        self, id: InteractionId, *, reason: str | None = None, expected_version: int | None = None
    ) -> Interaction:
        """Cancel a planned interaction (the reason is appended to its description).

        Raises:
            NotFoundError: no such interaction.
            InvalidTransition: it is not planned.
            ConcurrencyError: ``expected_version`` is given and stale.
        """
        return self._change(
            id, expected_version, lambda uow, cur, now: core.cancel(cur, now=now, reason=reason)
        )

    def reassign(
        self, ids: InteractionId | Iterable[InteractionId], *, to: UserRef | None
    ) -> list[Interaction]:
        """Give one or many interactions to another user (``None``: nobody), atomically.

        Any interaction can be reassigned, planned or not (the assignee of a
        done one is who did it).  Each change is audited; interactions already
        assigned to ``to`` are left as they are.

        Returns:
            The interactions as they are now, one per distinct id, in the order given.

        Raises:
            NotFoundError: one of the interactions does not exist (nothing changes).
            ValidationError: ``to`` is not a user or user id, ``ids`` are not ids.
        """
        given: object = ids
        if isinstance(given, UUID):
            targets = [InteractionId(given)]
        elif isinstance(given, Iterable) and not isinstance(given, str | bytes):
            targets = list(given)
        else:
            raise ValidationError("ids", "must be an id or a list of ids", code="type", value=ids)
        for i, value in enumerate(targets):
            _check_uuid(value, f"ids[{i}]")
        targets = list(dict.fromkeys(targets))  # each once, in the order given

        def run(uow: UnitOfWork, events: list[Event]) -> list[Interaction]:
            user_id = _ref_id(uow, User, to, "to")
            repo = self._repo(uow)
            now = self._crm.now()
            found = repo.get_many(targets)  # one query, however many
            result: list[Interaction] = []
            for interaction_id in targets:
                current = found.get(interaction_id)
                if current is None:
                    raise NotFoundError(Interaction.ENTITY, interaction_id)
                new, event = changes.update(current, {"assignee_id": user_id}, now=now)
                if event is not None:
                    repo.update(self._validated(new, current), expected_version=current.version)
                    self._crm._record(uow, events, event)
                result.append(new)
            return result

        return self._crm._write(run)

    def apply_sequence(
        self,
        sequence: str | Sequence,
        *,
        organization: OrganizationRef | None = None,
        contact: ContactRef | None = None,
        start: datetime | None = None,
        assignee: UserRef | None = None,
        opportunity: Opportunity | OpportunityId | None = None,
        campaign: Campaign | CampaignId | None = None,
    ) -> list[Interaction]:
        """Plan every step of a sequence for an organization or contact, in one transaction.

        Step times start at ``start`` (default now) and add each step's
        ``after`` in turn, whole days on the CRM's wall clock
        (:func:`crmkit.core.interactions.plan_sequence`).

        Args:
            sequence: a registered sequence's key, or a :class:`~crmkit.Sequence`.
            organization: whom it is for (or ``contact``, or both).
            contact: whom it is for; alone, the contact's organization is used too.
            start: the time the first step's ``after`` counts from.
            assignee: whose agenda the interactions go on.
            opportunity: the opportunity they are about.
            campaign: the campaign they belong to.

        Returns:
            The planned interactions, in step order.

        Raises:
            ValidationError: an unknown sequence (``sequence``) or step kind
                (``steps[i].kind``); neither organization nor contact; a naive
                ``start``.
        """
        chosen = sequence if isinstance(sequence, Sequence) else self.sequences.get(sequence)
        for i, step in enumerate(chosen.steps):
            try:
                self.kinds.get(step.kind)
            except ValidationError as error:
                raise error.at(f"steps[{i}]") from None
        common = {
            "status": InteractionStatus.PLANNED,
            "organization": organization,
            "contact": contact,
            "assignee": assignee,
            "opportunity": opportunity,
            "campaign": campaign,
        }

        def run(uow: UnitOfWork, events: list[Event]) -> list[Interaction]:
            now = self._crm.now()
            fields = self._crm.custom_fields.implied(
                uow, Interaction.ENTITY, self._prepare(uow, common)
            )
            planned: list[Interaction] = []
            for step, at in core.plan_sequence(chosen, start or now, self._crm.timezone):
                interaction, event = changes.create(
                    Interaction,
                    id=uuid7(),
                    now=now,
                    kind=step.kind,
                    scheduled_at=at,
                    subject=step.subject,
                    description=step.description,
                    **fields,
                )
                self._repo(uow).add(self._validated(interaction, None))
                self._crm._record(uow, events, event)
                planned.append(interaction)
            return planned

        return self._crm._write(run)

    def create_opportunity(
        self,
        interaction_id: InteractionId,
        *,
        name: str,
        pipeline: str = "sales",
        amount: Money | None = None,
        **values: Any,
    ) -> Opportunity:
        """Open an opportunity from an interaction that showed real interest, and link them.

        The opportunity is for the interaction's organization and contact; its
        owner is the interaction's assignee and its campaign the interaction's,
        unless ``owner`` or ``campaign`` are given.  Other ``values`` are
        arguments of :meth:`OpportunityService.create
        <crmkit.app.OpportunityService.create>` (``stage``, ``expected_close``,
        ``source``...).  Creating the opportunity and setting the
        interaction's ``opportunity_id`` (audited) happen in one transaction.

        Returns:
            The new opportunity; ``crm.interactions.get(interaction_id)``
            shows the link.

        Raises:
            NotFoundError: no such interaction.
            ValidationError: the interaction is already linked to an
                opportunity (``interaction``, code ``conflict``); ``organization``
                or ``contact`` given (they come from the interaction); any
                value :meth:`~crmkit.app.OpportunityService.create` rejects.
        """
        _check_uuid(interaction_id, "interaction_id")
        for fixed in ("organization", "contact"):
            if fixed in values:
                raise ValidationError(
                    fixed,
                    "comes from the interaction; it cannot be given",
                    code="conflict",
                    value=values[fixed],
                )

        def run(uow: UnitOfWork, events: list[Event]) -> Opportunity:
            repo = self._repo(uow)
            current = repo.get(interaction_id)
            if current.opportunity_id is not None:
                raise ValidationError(
                    "interaction",
                    "is already linked to an opportunity",
                    code="conflict",
                    value=current.opportunity_id,
                )
            arguments: dict[str, Any] = {
                "owner": current.assignee_id,
                "campaign": current.campaign_id,
                **values,
                "organization": current.organization_id,
                "contact": current.contact_id,
            }
            # joins this transaction: a failure below undoes the opportunity too
            opportunity = self._crm.opportunities.create(
                name=name, pipeline=pipeline, amount=amount, **arguments
            )
            linked, event = changes.update(
                current, {"opportunity_id": opportunity.id}, now=self._crm.now()
            )
            repo.update(self._validated(linked, current), expected_version=current.version)
            self._crm._record(uow, events, event)
            return opportunity

        return self._crm._write(run)

    def register_kind(self, kind: InteractionKind) -> InteractionKind:
        """Add an interaction kind through the API (plugins use the hook).

        Raises:
            DuplicateError: the key is taken.
        """
        return self.kinds.register(kind)

    # ---------------------------------------------------------------- reading
    def follow_ups(self, interaction: Interaction | InteractionId) -> list[Interaction]:
        """The interactions planned as follow-ups of ``interaction``, by planned time."""
        target = interaction.id if isinstance(interaction, Interaction) else interaction
        _check_uuid(target, "interaction")
        query = _checked(Interaction, [Eq("follow_up_of", target)], ("scheduled_at",), None)
        return self._crm._read(lambda uow: self._repo(uow).find(query))

    def of(
        self,
        record: Organization | Contact | Opportunity | Case,
        *,
        limit: int | None = None,
    ) -> list[Interaction]:
        """The interactions of an organization, contact, opportunity or case.

        Done ones come first, latest first (by ``occurred_at``); then planned
        and cancelled ones, latest planned time first.

        Raises:
            ValidationError: ``record`` is none of those types.
        """
        field = {
            Organization: "organization_id",
            Contact: "contact_id",
            Opportunity: "opportunity_id",
            Case: "case_id",
        }.get(type(record))
        if field is None:
            raise ValidationError(
                "record",
                "must be an Organization, Contact, Opportunity or Case",
                code="type",
                value=record,
            )
        return self.find(
            Eq(field, record.id), order_by=("-occurred_at", "-scheduled_at"), limit=limit
        )

    # --------------------------------------------------------------- helpers
    def _creating(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Bulk items hold :meth:`plan`'s arguments: they are planned interactions."""
        return {"status": InteractionStatus.PLANNED, **values}

    def _prepare(
        self,
        uow: UnitOfWork,
        values: Mapping[str, Any],
        resolve: Any = None,
    ) -> dict[str, Any]:
        fields = super()._prepare(uow, values, resolve)
        if "kind" in fields:
            self.kinds.get(fields["kind"])
        if "status" in fields:  # every creation sets it; update() cannot
            _organization_of_contact(uow, fields)
        return fields

    def _check_next(
        self, next_step: str | None, next_due: datetime | None, next_kind: str | None
    ) -> None:
        if next_kind is not None:
            try:
                self.kinds.get(next_kind)
            except ValidationError as error:
                raise ValidationError(
                    "next_kind", error.reason, code=error.code, value=next_kind
                ) from None
        blank = next_step is None or (isinstance(next_step, str) and not next_step.strip())
        if (next_due is not None or next_kind is not None) and blank:
            raise ValidationError(
                "next_step", "next_due and next_kind need a next_step", code="required"
            )
        if next_due is not None:
            if not isinstance(next_due, datetime):
                raise ValidationError("next_due", "must be a datetime", code="type", value=next_due)
            if next_due.utcoffset() is None:
                raise ValidationError(
                    "next_due", "must be timezone-aware", code="naive_datetime", value=next_due
                )

    def _follow_up(
        self,
        uow: UnitOfWork,
        events: list[Event],
        done: Interaction,
        next_due: datetime | None,
        next_kind: str | None,
        now: datetime,
    ) -> Interaction:
        assert done.occurred_at is not None
        tz = self._crm.timezone
        fields = {
            "kind": next_kind or done.kind,
            "status": InteractionStatus.PLANNED,
            "scheduled_at": next_due or core.shift(done.occurred_at, DEFAULT_FOLLOW_UP, tz),
            "subject": done.next_step,
            "organization_id": done.organization_id,
            "contact_id": done.contact_id,
            "opportunity_id": done.opportunity_id,
            "case_id": done.case_id,
            "campaign_id": done.campaign_id,
            "assignee_id": done.assignee_id,
            "follow_up_of": done.id,
        }
        fields = self._crm.custom_fields.implied(uow, Interaction.ENTITY, fields)
        follow, event = changes.create(Interaction, id=uuid7(), now=now, **fields)
        self._repo(uow).add(self._validated(follow, None))
        self._crm._record(uow, events, event)
        return follow

    def _logged(self, events: list[Event], done: Interaction) -> None:
        crm = self._crm
        events.append(Notice(lambda: crm.plugins.interaction_logged(crm, done)))

    def _change(
        self,
        id: InteractionId,
        expected_version: int | None,
        change: Any,
        after: Any = None,
    ) -> Interaction:
        _check_uuid(id, "id")
        if expected_version is not None:
            _check_version(expected_version)

        def run(uow: UnitOfWork, events: list[Event]) -> Interaction:
            repo = self._repo(uow)
            current = repo.get(id)
            if expected_version is not None:
                _expect(current, expected_version)
            now = self._crm.now()
            new, event = change(uow, current, now)
            if event is not None:
                repo.update(self._validated(new, current), expected_version=current.version)
                self._crm._record(uow, events, event)
            if after is not None:
                after(uow, events, new, now)
            return new  # type: ignore[no-any-return]

        return self._crm._write(run)


# ===================================================================== agenda


@attrs.frozen
class AgendaCounts:
    """How many items each list of an agenda holds (all of them, not only those shown)."""

    overdue: int
    today: int
    upcoming: int
    overdue_cases: int


@attrs.frozen
class Agenda:
    """A snapshot of planned work at ``now``.

    The three interaction lists split planned interactions by ``scheduled_at``
    without gaps or overlaps; "today" ends at midnight on the CRM's wall clock
    (``crmkit.open(..., timezone=...)``).

    Attributes:
        now: the instant the agenda was computed for.
        overdue: planned interactions due before ``now``, oldest first.
        today: due from ``now`` (included) to the next midnight, in time order.
        upcoming: due from that midnight until ``days`` days later, in time order.
        overdue_cases: open cases whose SLA due time is before ``now``, most
            overdue first.
        counts: the full size of each list (lists are cut at ``limit``).
    """

    now: datetime
    overdue: list[Interaction]
    today: list[Interaction]
    upcoming: list[Interaction]
    overdue_cases: list[Case]
    counts: AgendaCounts


class AgendaService:
    """The agenda (panel de control): planned interactions and overdue cases.

    Every method takes ``user`` (one user's agenda: interactions assigned to
    them, cases they own), ``team`` (a list of users: any of them) or neither
    (everyone's, unassigned work included).  Users are given as records or
    ids and not looked up.  Each list and each count is one indexed query on
    the SQL stores; archived records are left out.
    """

    def __init__(self, crm: CRM):
        self._crm = crm

    def view(
        self,
        *,
        user: UserRef | None = None,
        team: Iterable[UserRef] | None = None,
        now: datetime | None = None,
        days: int | None = 7,
        limit: int | None = 50,
    ) -> Agenda:
        """The whole agenda: overdue, today, upcoming and overdue cases, with counts.

        Args:
            user: one user's agenda.
            team: the agenda of several users.
            now: the instant to compute it for (default: the CRM's clock).
            days: how many days after today the upcoming list covers
                (``None``: all of the future).
            limit: the most items each list holds (the counts are not cut).

        Raises:
            ValidationError: both ``user`` and ``team`` (``conflict``), a
                naive ``now``, a bad ``days`` or ``limit``.
        """
        now = self._now(now)
        counts = AgendaCounts(
            overdue=self.count("overdue", user=user, team=team, now=now),
            today=self.count("today", user=user, team=team, now=now),
            upcoming=self.count("upcoming", user=user, team=team, now=now, days=days),
            overdue_cases=self.count("overdue_cases", user=user, team=team, now=now),
        )
        return Agenda(
            now=now,
            overdue=self.overdue(user=user, team=team, now=now, limit=limit),
            today=self.today(user=user, team=team, now=now, limit=limit),
            upcoming=self.upcoming(user=user, team=team, now=now, days=days, limit=limit),
            overdue_cases=self.overdue_cases(user=user, team=team, now=now, limit=limit),
            counts=counts,
        )

    def overdue(
        self,
        *,
        user: UserRef | None = None,
        team: Iterable[UserRef] | None = None,
        now: datetime | None = None,
        limit: int | None = 50,
    ) -> list[Interaction]:
        """Planned interactions due before ``now``, oldest first."""
        return self._interactions("overdue", user, team, now, None, limit)

    def today(
        self,
        *,
        user: UserRef | None = None,
        team: Iterable[UserRef] | None = None,
        now: datetime | None = None,
        limit: int | None = 50,
    ) -> list[Interaction]:
        """Planned interactions due from ``now`` to the next midnight (CRM time zone), by time."""
        return self._interactions("today", user, team, now, None, limit)

    def upcoming(
        self,
        *,
        user: UserRef | None = None,
        team: Iterable[UserRef] | None = None,
        now: datetime | None = None,
        days: int | None = 7,
        limit: int | None = 50,
    ) -> list[Interaction]:
        """Planned interactions due in the ``days`` days after today, by time.

        ``days=1`` is tomorrow, ``days=7`` the coming week, ``None`` all of the
        future; days begin at midnight in the CRM's time zone.
        """
        return self._interactions("upcoming", user, team, now, days, limit)

    def overdue_cases(
        self,
        *,
        user: UserRef | None = None,
        team: Iterable[UserRef] | None = None,
        now: datetime | None = None,
        limit: int | None = 50,
    ) -> list[Case]:
        """Open cases past their SLA due time, owned by the user or team, most overdue first."""
        query = self._case_query(user, team, self._now(now), limit)
        return self._crm._read(lambda uow: uow.repository(Case).find(query))

    def count(
        self,
        which: str,
        *,
        user: UserRef | None = None,
        team: Iterable[UserRef] | None = None,
        now: datetime | None = None,
        days: int | None = 7,
    ) -> int:
        """How many items one list holds, without loading them.

        Args:
            which: ``"overdue"``, ``"today"``, ``"upcoming"`` or ``"overdue_cases"``.
            user: one user's agenda.
            team: the agenda of several users.
            now: the instant to count at (default: the CRM's clock).
            days: for ``"upcoming"``, the days after today it covers.

        Raises:
            ValidationError: an unknown ``which`` (``choice``), or arguments
                the lists reject.
        """
        now = self._now(now)
        if which == "overdue_cases":
            query = self._case_query(user, team, now, None)
            return self._crm._read(lambda uow: uow.repository(Case).count(query))
        if which not in _WINDOWS:
            raise ValidationError(
                "which",
                "must be overdue, today, upcoming or overdue_cases",
                code="choice",
                value=which,
            )
        query = self._interaction_query(which, user, team, now, days, None)
        return self._crm._read(lambda uow: uow.repository(Interaction).count(query))

    # --------------------------------------------------------------- helpers
    def _now(self, now: datetime | None) -> datetime:
        if now is None:
            return self._crm.now()
        if not isinstance(now, datetime):
            raise ValidationError("now", "must be a datetime", code="type", value=now)
        if now.utcoffset() is None:
            raise ValidationError("now", "must be timezone-aware", code="naive_datetime", value=now)
        if not in_utc_range(now):
            raise ValidationError("now", "is out of range in UTC", code="out_of_range", value=now)
        return now

    def _interactions(
        self,
        which: str,
        user: UserRef | None,
        team: Iterable[UserRef] | None,
        now: datetime | None,
        days: int | None,
        limit: int | None,
    ) -> list[Interaction]:
        query = self._interaction_query(which, user, team, self._now(now), days, limit)
        return self._crm._read(lambda uow: uow.repository(Interaction).find(query))

    def _owners(self, user: UserRef | None, team: Iterable[UserRef] | None) -> Filter | None:
        """The owner filter (field left blank); ids are taken as given, not looked up."""
        if user is not None and team is not None:
            raise ValidationError("team", "give a user or a team, not both", code="conflict")
        if user is not None:
            return Eq("", _user_id(user, "user"))
        if team is not None:
            if isinstance(team, User | UUID | str | bytes) or not isinstance(team, Iterable):
                raise ValidationError("team", "must be a list of users", code="type", value=team)
            members = tuple(_user_id(u, f"team[{i}]") for i, u in enumerate(team))
            return In("", members)
        return None

    def _interaction_query(
        self,
        which: str,
        user: UserRef | None,
        team: Iterable[UserRef] | None,
        now: datetime,
        days: int | None,
        limit: int | None,
    ) -> Query:
        if which == "overdue":
            window = Range("scheduled_at", None, now)
        elif which == "today":
            window = Range("scheduled_at", now, self._day_start(now, 1))
        else:
            _check_days(days)
            end = None if days is None else self._day_start(now, 1 + days)
            window = Range("scheduled_at", self._day_start(now, 1), end)
        filters: list[Filter] = [Eq("status", InteractionStatus.PLANNED), window]
        owners = self._owners(user, team)
        if owners is not None:
            filters.append(attrs.evolve(owners, field="assignee_id"))
        return _checked(Interaction, filters, ("scheduled_at",), limit)

    def _case_query(
        self,
        user: UserRef | None,
        team: Iterable[UserRef] | None,
        now: datetime,
        limit: int | None,
    ) -> Query:
        open_statuses = tuple(s for s in CaseStatus if s not in SETTLED)
        filters: list[Filter] = [In("status", open_statuses), Range("sla_due", None, now)]
        owners = self._owners(user, team)
        if owners is not None:
            filters.append(attrs.evolve(owners, field="owner_id"))
        return _checked(Case, filters, ("sla_due",), limit)

    def _day_start(self, at: datetime, days: int) -> datetime:
        """The midnight (CRM time zone) that starts the ``days``-th day after ``at``'s, in UTC."""
        tz = self._crm.timezone
        try:
            day = at.astimezone(tz).date() + timedelta(days=days)
            # a midnight that does not exist (a zone that springs forward at
            # 00:00) reads with the offset before the gap: the instant the day begins
            return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
        except OverflowError:
            raise ValidationError(
                "now", "looks past the last day a datetime can hold", code="out_of_range", value=at
            ) from None


_WINDOWS: Final = ("overdue", "today", "upcoming")


def _check_days(days: object) -> None:
    if days is None:
        return
    if isinstance(days, bool) or not isinstance(days, int):
        raise ValidationError("days", "must be a whole number or None", code="type", value=days)
    if not 0 <= days <= MAX_DAYS:
        raise ValidationError("days", f"must be from 0 to {MAX_DAYS}", code="range", value=days)


def _user_id(value: object, name: str) -> UserId:
    if isinstance(value, User):
        return value.id
    if isinstance(value, UUID):
        return UserId(value)
    raise ValidationError(name, "must be a user or a user id", code="type", value=value)


def _checked(
    cls: type[Entity], filters: list[Filter], order: tuple[str, ...], limit: int | None
) -> Query:
    query = Query(filters=tuple(filters), order=tuple(Order(o) for o in order), limit=limit)
    check_query(cls, query)
    return query
