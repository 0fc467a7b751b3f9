"""Interactions (gestión de relacionamiento, acción comercial, actividad).

An :class:`Interaction` is something that happened with a customer (a call
made, a visit paid) or is planned to happen.  Its ``kind`` is the key of an
:class:`InteractionKind`: crmkit registers calls, e-mails, meetings, visits,
documents sent, presentations and notes, and plugins add more with
``crmkit_register_interaction_kinds``.  Its ``outcome`` is an entry of the
:class:`Outcome` master list (interés inicial, agendar reunión...).

The status moves planned -> done or planned -> cancelled, through the pure
functions here; a done interaction with a ``next_step`` gets a planned
follow-up (``follow_up_of`` points back to it).  A :class:`Sequence` is a
named series of planned interactions; :func:`plan_sequence` gives each step
its time, counting whole days on a wall clock (:func:`shift`).

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar

from attrs import field, frozen

from crmkit.core import changes
from crmkit.core.campaigns import Campaign
from crmkit.core.cases import Case
from crmkit.core.custom_fields import CustomValues, custom_field
from crmkit.core.entities import (
    _BASE_FIELDS,
    Contact,
    Entity,
    FieldKind,
    Organization,
    Outcome,
    User,
)
from crmkit.core.errors import InvalidTransition, ValidationError
from crmkit.core.events import Updated
from crmkit.core.fields import (
    KEY_RE,
    enum_field,
    in_utc_range,
    key_field,
    optional_datetime,
    optional_id,
    required_id,
    tag_item,
    text,
    tuple_field,
)
from crmkit.core.ids import (
    CampaignId,
    CaseId,
    ContactId,
    InteractionId,
    OpportunityId,
    OrganizationId,
    OutcomeId,
    UserId,
)
from crmkit.core.opportunities import Opportunity

__all__ = [
    "BUILTIN_INTERACTION_KINDS",
    "Interaction",
    "InteractionKind",
    "InteractionStatus",
    "Sequence",
    "SequenceStep",
    "cancel",
    "complete",
    "plan_sequence",
    "reschedule",
    "shift",
]


class InteractionStatus(enum.Enum):
    """Where an interaction stands."""

    PLANNED = "planned"  #: to be done (on someone's agenda)
    DONE = "done"  #: happened
    CANCELLED = "cancelled"  #: will not happen


def _kind_key(value: object) -> str:
    if not isinstance(value, str) or not KEY_RE.fullmatch(value):
        raise ValidationError(
            "kind", "must be 1-64 lower-case letters, digits, '-' or '_'", code="key", value=value
        )
    return value


@frozen(kw_only=True)
class InteractionKind:
    """A kind of interaction, with English and Spanish labels.

    Registered by plugins (``crmkit_register_interaction_kinds``) or with
    ``crm.interactions.register_kind``.
    """

    key: str = key_field()
    name: str = text("name", required=True, max_length=200)
    name_es: str | None = text("name_es", max_length=200)

    def label(self, language: str = "en") -> str:
        """The label in ``language`` (``"es"`` or ``"en"``), falling back to English."""
        if language.startswith("es") and self.name_es:
            return self.name_es
        return self.name


#: The kinds crmkit's built-in plugin registers.
BUILTIN_INTERACTION_KINDS: tuple[InteractionKind, ...] = (
    InteractionKind(key="call", name="Call", name_es="Llamada"),
    InteractionKind(key="email", name="E-mail", name_es="Correo electrónico"),
    InteractionKind(key="meeting", name="Meeting", name_es="Reunión"),
    InteractionKind(key="visit", name="Visit", name_es="Visita"),
    InteractionKind(key="document", name="Document sent", name_es="Envío de documentación"),
    InteractionKind(key="presentation", name="Presentation", name_es="Presentación"),
    InteractionKind(key="note", name="Note", name_es="Nota"),
)


@frozen(kw_only=True)
class Interaction(Entity):
    """A call, e-mail, meeting, visit... with an organization and/or a contact.

    A planned interaction has ``scheduled_at``; a done one ``occurred_at``.
    ``assignee_id`` is whose agenda it is on.  ``follow_up_of`` links a
    planned follow-up to the interaction whose next step created it.
    """

    ENTITY: ClassVar[str] = "interaction"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "kind": FieldKind.TEXT,
        "status": FieldKind.ENUM,
        "scheduled_at": FieldKind.DATETIME,
        "occurred_at": FieldKind.DATETIME,
        "organization_id": FieldKind.ID,
        "contact_id": FieldKind.ID,
        "opportunity_id": FieldKind.ID,
        "case_id": FieldKind.ID,
        "campaign_id": FieldKind.ID,
        "assignee_id": FieldKind.ID,
        "outcome_id": FieldKind.ID,
        "follow_up_of": FieldKind.ID,
        "subject": FieldKind.TEXT,
        "tags": FieldKind.SET,
    }

    id: InteractionId = required_id()
    kind: str = field(converter=_kind_key)
    status: InteractionStatus = enum_field(InteractionStatus, "status", InteractionStatus.PLANNED)
    subject: str | None = text("subject", max_length=300)
    description: str | None = text("description", max_length=10_000)
    scheduled_at: datetime | None = optional_datetime()
    occurred_at: datetime | None = optional_datetime()
    organization_id: OrganizationId | None = optional_id()
    contact_id: ContactId | None = optional_id()
    opportunity_id: OpportunityId | None = optional_id()
    case_id: CaseId | None = optional_id()
    campaign_id: CampaignId | None = optional_id()
    assignee_id: UserId | None = optional_id()
    outcome_id: OutcomeId | None = optional_id()
    next_step: str | None = text("next_step", max_length=500)
    follow_up_of: InteractionId | None = optional_id()
    tags: tuple[str, ...] = tuple_field(tag_item, "tags")
    #: custom field values (campos personalizados) by key
    custom: CustomValues = custom_field()

    def __attrs_post_init__(self) -> None:
        if self.organization_id is None and self.contact_id is None:
            raise ValidationError(
                "organization",
                "an interaction needs an organization or a contact",
                code="required",
            )
        if self.status is InteractionStatus.PLANNED and self.scheduled_at is None:
            raise ValidationError(
                "scheduled_at", "a planned interaction needs a time", code="required"
            )
        if self.status is InteractionStatus.PLANNED and self.occurred_at is not None:
            raise ValidationError(
                "occurred_at",
                "a planned interaction has not happened yet",
                code="conflict",
                value=self.occurred_at,
            )
        if self.status is InteractionStatus.DONE and self.occurred_at is None:
            raise ValidationError(
                "occurred_at", "a done interaction needs the time it happened", code="required"
            )

    @property
    def when(self) -> datetime:
        """When it happened or is planned (``occurred_at``, else ``scheduled_at``)."""
        value = self.occurred_at or self.scheduled_at
        assert value is not None  # the post-init check guarantees one
        return value


Interaction.REFERENCES = {
    "campaign_id": Campaign,
    "organization_id": Organization,
    "contact_id": Contact,
    "assignee_id": User,
    "outcome_id": Outcome,
    "opportunity_id": Opportunity,
    "case_id": Case,
    "follow_up_of": Interaction,
}


# ------------------------------------------------------------ status moves


def _planned(interaction: Interaction, target: InteractionStatus, verb: str) -> None:
    if interaction.status is not InteractionStatus.PLANNED:
        raise InvalidTransition(
            "interaction",
            interaction.status.value,
            target.value,
            f"only a planned interaction can be {verb}",
        )


def complete(
    interaction: Interaction,
    *,
    now: datetime,
    occurred_at: datetime | None = None,
    outcome_id: OutcomeId | None = None,
    description: str | None = None,
    next_step: str | None = None,
) -> tuple[Interaction, Updated[Interaction]]:
    """Mark a planned interaction done (at ``occurred_at``, default ``now``).

    ``outcome_id``, ``description`` and ``next_step`` replace the current
    values when given.

    Raises:
        InvalidTransition: it is not planned.
        ValidationError: ``occurred_at`` is not timezone-aware, a value is invalid.
    """
    _planned(interaction, InteractionStatus.DONE, "completed")
    values: dict[str, Any] = {
        "status": InteractionStatus.DONE,
        "occurred_at": occurred_at or now,
    }
    if outcome_id is not None:
        values["outcome_id"] = outcome_id
    if description is not None:
        values["description"] = description
    if next_step is not None:
        values["next_step"] = next_step
    new, event = changes.update(interaction, values, now=now)
    assert event is not None
    return new, event


def cancel(
    interaction: Interaction, *, now: datetime, reason: str | None = None
) -> tuple[Interaction, Updated[Interaction]]:
    """Cancel a planned interaction; ``reason`` is kept in the description.

    Raises:
        InvalidTransition: it is not planned.
    """
    _planned(interaction, InteractionStatus.CANCELLED, "cancelled")
    values: dict[str, Any] = {"status": InteractionStatus.CANCELLED}
    if reason is not None:
        values["description"] = (
            f"{interaction.description}\n\n{reason}" if interaction.description else reason
        )
    new, event = changes.update(interaction, values, now=now)
    assert event is not None
    return new, event


def reschedule(
    interaction: Interaction, *, to: datetime, now: datetime
) -> tuple[Interaction, Updated[Interaction] | None]:
    """Move a planned interaction to another time (``None`` event if it is already then).

    Raises:
        InvalidTransition: it is not planned.
        ValidationError: ``to`` is not a timezone-aware datetime.
    """
    _planned(interaction, InteractionStatus.PLANNED, "rescheduled")
    try:
        return changes.update(interaction, {"scheduled_at": to}, now=now)
    except ValidationError as error:
        if error.field != "scheduled_at":
            raise
        raise ValidationError("to", error.reason, code=error.code, value=to) from None


# ---------------------------------------------------------------- sequences


def _after(value: object) -> timedelta:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ValidationError(
            "after", "must be a timedelta of zero or more", code="type", value=value
        )
    return value


@frozen(kw_only=True)
class SequenceStep:
    """One planned interaction of a sequence, ``after`` the previous step."""

    kind: str = field(converter=_kind_key)
    after: timedelta = field(default=timedelta(0), converter=_after)
    subject: str | None = text("subject", max_length=300)
    description: str | None = text("description", max_length=10_000)


def _steps(value: object) -> tuple[SequenceStep, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError("steps", "must be a list of SequenceStep", code="type", value=value)
    steps = tuple(value)
    for i, step in enumerate(steps):
        if not isinstance(step, SequenceStep):
            raise ValidationError(f"steps[{i}]", "must be a SequenceStep", code="type", value=step)
    if not steps:
        raise ValidationError("steps", "a sequence needs at least one step", code="required")
    return steps


@frozen(kw_only=True)
class Sequence:
    """A named series of planned interactions (e.g. call, e-mail 3 days later, visit).

    Apply one to an organization or contact with
    ``crm.interactions.apply_sequence``.
    """

    key: str = key_field()
    name: str = text("name", required=True, max_length=200)
    name_es: str | None = text("name_es", max_length=200)
    steps: tuple[SequenceStep, ...] = field(converter=_steps)


def shift(at: datetime, by: timedelta, tz: tzinfo = UTC) -> datetime:
    """``at`` moved ``by`` later, in UTC: days on ``tz``'s wall clock, the rest elapsed.

    One day after 18:00 is 18:00 the next day in ``tz``, even across a
    daylight-saving change (as case SLA days count); hours are hours.

    Raises:
        ValidationError: ``at`` is not a timezone-aware datetime (field
            ``at``), or the result is out of range in UTC (``out_of_range``).
    """
    if not isinstance(at, datetime):
        raise ValidationError("at", "must be a datetime", code="type", value=at)
    if at.utcoffset() is None:
        raise ValidationError("at", "must be timezone-aware", code="naive_datetime", value=at)
    try:
        local = at.astimezone(tz).replace(tzinfo=None)
        wall = (local + timedelta(days=by.days)).replace(tzinfo=tz)
        result = wall.astimezone(UTC) + timedelta(seconds=by.seconds, microseconds=by.microseconds)
    except OverflowError:
        raise ValidationError(
            "at", "moves out of the range a datetime can hold", code="out_of_range", value=at
        ) from None
    if not in_utc_range(result):  # pragma: no cover - astimezone(UTC) overflows first
        raise ValidationError("at", "is out of range in UTC", code="out_of_range", value=at)
    return result


def plan_sequence(
    sequence: Sequence, start: datetime, tz: tzinfo = UTC
) -> list[tuple[SequenceStep, datetime]]:
    """Each step of ``sequence`` with the time it is planned for, in UTC.

    Each step comes its ``after`` past the step before it; the first, its
    ``after`` past ``start``.  Whole days count on the wall clock of ``tz``
    (see :func:`shift`): "e-mail 3 days after the call" keeps the call's local
    time across a daylight-saving change.

    Raises:
        ValidationError: ``start`` is not a timezone-aware datetime, or a step
            falls outside the range a datetime can hold (field ``start``).
    """
    planned: list[tuple[SequenceStep, datetime]] = []
    at = start
    for step in sequence.steps:
        try:
            at = shift(at, step.after, tz)
        except ValidationError as error:
            raise ValidationError("start", error.reason, code=error.code, value=start) from None
        planned.append((step, at))
    return planned
