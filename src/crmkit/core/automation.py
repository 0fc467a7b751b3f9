"""Automation rules (reglas de automatización): trigger, condition, actions.

A :class:`Rule` is data: *when* something happens (a :class:`Trigger`: a
domain event such as an opportunity reaching a stage or a lead being
created, a time-based fact such as an overdue interaction or a case past its
SLA, or a schedule), *if* the record's organization meets a condition (a
segment criteria tree, :mod:`crmkit.core.segments`), *do* some
:class:`Action` items (plan an interaction, apply a sequence, assign an
owner, notify plugins, or any kind a plugin registers, such as sending an
e-mail template).

Each time a rule fires for one record and one occurrence of its trigger, the
service writes a :class:`RuleFiring` whose ``key`` is unique: the journal
that makes firing idempotent (a re-delivered event or a second ``run_due``
finds the key and does nothing).

The service that runs rules is :mod:`crmkit.services.automation`.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
import math
import types
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final
from uuid import UUID

import attrs
from attrs import field, frozen

from crmkit.core.entities import _BASE_FIELDS, Entity, FieldKind
from crmkit.core.errors import AutomationError, ValidationError
from crmkit.core.fields import (
    KEY_RE,
    aware_datetime,
    bool_field,
    email_item,
    enum_field,
    optional_id,
    required_id,
    text,
)
from crmkit.core.ids import OrganizationId, RuleFiringId, RuleId, UserId
from crmkit.core.segments import CRITERIA_TYPES, And, Criteria

__all__ = [
    "EVENT_TRIGGERS",
    "Action",
    "ActionContext",
    "ActionKind",
    "AutomationReport",
    "FiringStatus",
    "Rule",
    "RuleFiring",
    "RuleSpec",
    "RuleSubject",
    "Scalar",
    "Trigger",
    "TriggerKind",
    "schedule_slot",
]

#: A value an action's parameters may hold (they are stored as JSON).
Scalar = str | int | float | bool | None

#: At most this many actions in one rule.
MAX_ACTIONS: Final = 20
#: The longest schedule interval, in minutes (a year).
MAX_EVERY_MINUTES: Final = 527_040
#: The longest due offset of a planned interaction, in minutes (ten years).
MAX_DUE_MINUTES: Final = 5_256_000


class TriggerKind(enum.Enum):
    """What makes a rule fire."""

    STAGE_CHANGED = "stage_changed"  #: an opportunity entered a stage (event)
    LEAD_CREATED = "lead_created"  #: a lead was created (event)
    INTERACTION_OVERDUE = "interaction_overdue"  #: a planned interaction is past due (run_due)
    CASE_SLA_BREACHED = "case_sla_breached"  #: an open case is past its SLA (run_due)
    SCHEDULE = "schedule"  #: every N minutes, for the organizations meeting the condition


#: The triggers heard when a change commits; the others are checked by ``run_due``.
EVENT_TRIGGERS: Final = frozenset({TriggerKind.STAGE_CHANGED, TriggerKind.LEAD_CREATED})


class FiringStatus(enum.Enum):
    """How a rule's firing for one record went."""

    DONE = "done"  #: every action ran and committed
    FAILED = "failed"  #: an action failed; nothing it did was kept (tried again next time)


def _optional_key(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not KEY_RE.fullmatch(value):
        raise ValidationError(
            f"trigger.{name}",
            "must be 1-64 lower-case letters, digits, '-' or '_'",
            code="key",
            value=value,
        )
    return value


def _stage(value: object) -> str | None:
    return _optional_key(value, "stage")


def _pipeline(value: object) -> str | None:
    return _optional_key(value, "pipeline")


def _trigger_kind(value: object) -> TriggerKind:
    if isinstance(value, TriggerKind):
        return value
    try:
        return TriggerKind(value)
    except ValueError:
        raise ValidationError(
            "trigger.kind",
            "must be one of " + ", ".join(k.value for k in TriggerKind),
            code="choice",
            value=value,
        ) from None


@frozen
class Trigger:
    """When a rule fires.  Build one with a named constructor.

    Attributes:
        kind: the :class:`TriggerKind`.
        stage: for ``stage_changed``, the stage key entered (``"negotiation"``).
        pipeline: for ``stage_changed``, the pipeline key (``None``: any).
        every_minutes: for ``schedule``, the interval; slots are aligned on
            the Unix epoch in UTC (every 60 minutes: on the hour).

    Raises:
        ValidationError: a field the kind needs is missing, or one it does not
            take is given (code ``required`` / ``conflict``), a bad key or
            interval.
    """

    kind: TriggerKind = field(converter=_trigger_kind)
    stage: str | None = field(default=None, converter=_stage)
    pipeline: str | None = field(default=None, converter=_pipeline)
    every_minutes: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind is TriggerKind.STAGE_CHANGED and self.stage is None:
            raise ValidationError("trigger.stage", "a stage trigger needs a stage", code="required")
        if self.kind is not TriggerKind.STAGE_CHANGED and (self.stage or self.pipeline):
            raise ValidationError(
                "trigger.stage", "only a stage_changed trigger takes a stage", code="conflict"
            )
        every = self.every_minutes
        if self.kind is TriggerKind.SCHEDULE:
            if isinstance(every, bool) or not isinstance(every, int):
                raise ValidationError(
                    "trigger.every_minutes", "must be a whole number", code="type", value=every
                )
            if not 1 <= every <= MAX_EVERY_MINUTES:
                raise ValidationError(
                    "trigger.every_minutes",
                    f"must be from 1 to {MAX_EVERY_MINUTES}",
                    code="range",
                    value=every,
                )
        elif every is not None:
            raise ValidationError(
                "trigger.every_minutes", "only a schedule takes an interval", code="conflict"
            )

    @classmethod
    def stage_changed(cls, to: str, *, pipeline: str | None = None) -> Trigger:
        """An opportunity entered stage ``to`` (of ``pipeline``, or of any pipeline)."""
        return cls(TriggerKind.STAGE_CHANGED, stage=to, pipeline=pipeline)

    @classmethod
    def lead_created(cls) -> Trigger:
        """A lead was created."""
        return cls(TriggerKind.LEAD_CREATED)

    @classmethod
    def interaction_overdue(cls) -> Trigger:
        """A planned interaction is past its scheduled time (checked by ``run_due``)."""
        return cls(TriggerKind.INTERACTION_OVERDUE)

    @classmethod
    def case_sla_breached(cls) -> Trigger:
        """An open case is past its SLA due time (checked by ``run_due``)."""
        return cls(TriggerKind.CASE_SLA_BREACHED)

    @classmethod
    def schedule(cls, every: timedelta) -> Trigger:
        """Every ``every`` (whole minutes), once per organization meeting the condition.

        Raises:
            ValidationError: not a whole number of minutes from 1 minute to a year.
        """
        if not isinstance(every, timedelta):
            raise ValidationError("every", "must be a timedelta", code="type", value=every)
        minutes, rest = divmod(every, timedelta(minutes=1))
        if rest:
            raise ValidationError("every", "must be whole minutes", code="range", value=every)
        return cls(TriggerKind.SCHEDULE, every_minutes=minutes)

    @property
    def is_event(self) -> bool:
        """Whether it fires when a change commits (else ``run_due`` checks it)."""
        return self.kind in EVENT_TRIGGERS


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def schedule_slot(every_minutes: int, now: datetime) -> datetime:
    """The start of the schedule slot ``now`` falls in (slots aligned on the epoch, UTC)."""
    step = timedelta(minutes=every_minutes)
    return _EPOCH + step * math.floor((now - _EPOCH) / step)


# ------------------------------------------------------------------ actions


def _params(value: object) -> Mapping[str, Scalar]:
    if not isinstance(value, Mapping):
        raise ValidationError("params", "must be a mapping", code="type", value=value)
    checked: dict[str, Scalar] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name:
            raise ValidationError("params", "names must be text", code="type", value=name)
        if item is not None and not isinstance(item, str | int | float | bool):
            raise ValidationError(
                f"params.{name}",
                "must be text, a number, true/false or None",
                code="type",
                value=item,
            )
        if isinstance(item, float) and not math.isfinite(item):
            raise ValidationError(f"params.{name}", "must be finite", code="not_finite", value=item)
        checked[name] = item
    return types.MappingProxyType(checked)


def _action_kind(value: object) -> str:
    if not isinstance(value, str) or not KEY_RE.fullmatch(value):
        raise ValidationError(
            "kind", "must be 1-64 lower-case letters, digits, '-' or '_'", code="key", value=value
        )
    return value


def _minutes(value: object, name: str) -> int:
    if not isinstance(value, timedelta):
        raise ValidationError(name, "must be a timedelta", code="type", value=value)
    minutes, rest = divmod(value, timedelta(minutes=1))
    if rest or not 0 <= minutes <= MAX_DUE_MINUTES:
        raise ValidationError(
            name, "must be whole minutes, from 0 to ten years", code="range", value=value
        )
    return int(minutes)


def _user(value: object, name: str) -> str | None:
    if value is None:
        return None
    found = getattr(value, "id", value)  # a User record or its id
    if not isinstance(found, UUID):
        raise ValidationError(name, "must be a user or a user id", code="type", value=value)
    return str(found)


@frozen
class Action:
    """One thing a rule does, by kind key, with JSON-safe parameters.

    Build the built-in ones with the named constructors; a plugin's kind
    (registered through ``crmkit_register_rule_actions``) with
    ``Action("send_sms", {"text": "Welcome"})``.

    Attributes:
        kind: the action kind's key.
        params: its parameters: text, numbers, booleans or ``None``.
    """

    kind: str = field(converter=_action_kind)
    params: Mapping[str, Scalar] = field(
        factory=dict, converter=_params, eq=False, hash=False, repr=False
    )
    _params_eq: tuple[tuple[str, Scalar], ...] = field(init=False, repr=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_params_eq", tuple(sorted(self.params.items())))

    def __repr__(self) -> str:
        return f"Action({self.kind!r}, {dict(self.params)!r})"

    @classmethod
    def plan_interaction(
        cls,
        kind: str = "call",
        *,
        due_in: timedelta = timedelta(days=1),
        subject: str | None = None,
        assignee: object = None,
    ) -> Action:
        """Plan an interaction about the record, due ``due_in`` after the firing.

        Args:
            kind: the interaction kind (``"call"``, ``"meeting"``...).
            due_in: how long after the firing it is scheduled (whole minutes).
            subject: its subject (default: the rule's name).
            assignee: a user (record or id); default: the record's owner
                (the opportunity's, lead's or case's owner, the interaction's
                assignee, or the organization's owner).
        """
        return cls(
            "plan_interaction",
            {
                "kind": _action_kind(kind),
                "due_in_minutes": _minutes(due_in, "due_in"),
                "subject": subject,
                "assignee": _user(assignee, "assignee"),
            },
        )

    @classmethod
    def apply_sequence(
        cls, sequence: str, *, assignee: object = None, delay: timedelta = timedelta(0)
    ) -> Action:
        """Apply a registered sequence (``crm.interactions.sequences``) for the record.

        Args:
            sequence: the sequence's key.
            assignee: a user (record or id); default: the record's owner.
            delay: how long after the firing the sequence starts.
        """
        return cls(
            "apply_sequence",
            {
                "sequence": _action_kind(sequence),
                "assignee": _user(assignee, "assignee"),
                "delay_minutes": _minutes(delay, "delay"),
            },
        )

    @classmethod
    def assign_owner(cls, user: object) -> Action:
        """Make ``user`` (record or id) the owner (assignee, for an interaction) of the record."""
        found = _user(user, "user")
        if found is None:
            raise ValidationError("user", "is required", code="required")
        return cls("assign_owner", {"user": found})

    @classmethod
    def notify(cls, note: str | None = None) -> Action:
        """Call the ``crmkit_rule_fired`` hook after the firing commits, with ``note``."""
        return cls("notify", {"note": note})

    @classmethod
    def send_template(
        cls,
        template: str,
        *,
        sender: str,
        sender_name: str | None = None,
        sender_user: object = None,
    ) -> Action:
        """E-mail a template to the record's contact (the lead, for a lead without one).

        The built-in ``send_template`` kind (:mod:`crmkit.plugins.builtin_mail`)
        renders it as ``crm.templates.render`` does and sends it through the
        ``crmkit_send_email`` hook once the firing commits; saving the rule
        checks that the template exists.

        Args:
            template: the template's name.
            sender: the ``From`` address.
            sender_name: the ``From`` display name.
            sender_user: the user the message is from (record or id): the
                template's ``sender`` variable.

        Raises:
            ValidationError: a bad sender address or user.
        """
        return cls(
            "send_template",
            {
                "template": template,
                "sender": email_item(sender, "sender").value,
                "sender_name": sender_name,
                "sender_user": _user(sender_user, "sender_user"),
            },
        )


@frozen
class RuleSubject:
    """The record a rule fires for, with what its actions need.

    Attributes:
        record: the opportunity, lead, interaction, case or organization.
        organization_id: the organization the condition is evaluated on.
        owner_id: the record's owner (an interaction's assignee).
        contact_id: the record's contact, if it has one.
    """

    record: Entity
    organization_id: OrganizationId | None
    owner_id: UserId | None
    contact_id: UUID | None = None

    @property
    def entity(self) -> str:
        """The record's entity type (``"opportunity"``)."""
        return self.record.ENTITY

    @classmethod
    def of(cls, record: Entity) -> RuleSubject:
        """The subject of any record, from its fields."""
        organization = record.id if record.ENTITY == "organization" else None
        organization = getattr(record, "organization_id", organization)
        owner = getattr(record, "owner_id", None) or getattr(record, "assignee_id", None)
        return cls(record, organization, owner, getattr(record, "contact_id", None))


@frozen(kw_only=True)
class ActionContext:
    """What an action kind's ``run`` receives.

    Attributes:
        crm: the :class:`~crmkit.CRM`; writes through it join the firing's
            transaction (all of a firing's effects commit together, or none).
        rule: the rule firing.
        action: the action being run (its ``params``).
        subject: the record it fires for.
        key: the firing's idempotency key.
        now: the firing's time.
        index: the action's position in the rule.
    """

    crm: Any
    rule: Rule
    action: Action
    subject: RuleSubject
    key: str
    now: datetime
    index: int = 0
    #: notes the ``notify`` action left for ``crmkit_rule_fired``
    notes: list[str | None] = attrs.Factory(list)
    #: work to do once the firing has committed (sending an e-mail): if one
    #: raises, the firing is recorded as failed (its committed effects stay)
    after_commit: list[Callable[[], object]] = attrs.Factory(list)
    #: what the actions chose not to do (a contact who opted out), kept in
    #: the journal entry's ``error`` of a done firing
    remarks: list[str] = attrs.Factory(list)


def _callable(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise ValidationError(attribute.name, "must be callable", code="type", value=value)


def _optional_callable(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _callable(instance, attribute, value)


@frozen(kw_only=True)
class ActionKind:
    """A kind of action rules can do (``crmkit_register_rule_actions``).

    Attributes:
        key: what :attr:`Action.kind` names (``"send_sms"``).
        run: does it, given an :class:`ActionContext`; raises to fail the
            firing (every effect of the firing is undone, the failure is
            recorded and reported).  Its return value is ignored.  Work
            that cannot be undone (an e-mail) goes on
            :attr:`ActionContext.after_commit` instead of being done here.
        check: checks an action's ``params`` when a rule is saved; raises
            :class:`~crmkit.ValidationError` for bad ones (optional).
        label: a human name.
    """

    key: str = field(converter=_action_kind)
    run: Callable[[ActionContext], object] = field(validator=_callable)
    check: Callable[[Mapping[str, Scalar]], None] | None = field(
        default=None, validator=_optional_callable
    )
    label: str = ""


# -------------------------------------------------------------------- rules


def _condition(value: object) -> Criteria:
    if not isinstance(value, CRITERIA_TYPES):
        raise ValidationError("condition", "must be a criteria tree", code="type", value=value)
    return value


def _trigger(value: object) -> Trigger:
    if not isinstance(value, Trigger):
        raise ValidationError("trigger", "must be a Trigger", code="type", value=value)
    return value


def _actions(value: object) -> tuple[Action, ...]:
    if isinstance(value, Action):
        value = (value,)
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError("actions", "must be a list of actions", code="type", value=value)
    items = tuple(value)
    if not items:
        raise ValidationError("actions", "a rule needs at least one action", code="required")
    if len(items) > MAX_ACTIONS:
        raise ValidationError(
            "actions", f"a rule has at most {MAX_ACTIONS} actions", code="too_many"
        )
    for i, item in enumerate(items):
        if not isinstance(item, Action):
            raise ValidationError(f"actions[{i}]", "must be an Action", code="type", value=item)
    return items


@frozen(kw_only=True)
class Rule(Entity):
    """An automation rule: when ``trigger``, if ``condition``, do ``actions``.

    ``condition`` is a segment criteria tree evaluated on the organization of
    the record the rule fires for; the empty ``And()`` (the default) always
    holds, even for a record without an organization (any other condition
    needs one).  A disabled rule never fires.
    """

    ENTITY: ClassVar[str] = "rule"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "name": FieldKind.TEXT,
        "enabled": FieldKind.BOOL,
    }
    UNIQUE: ClassVar[tuple[str, ...]] = ("external_ref", "name")

    id: RuleId = required_id()
    name: str = text("name", required=True, max_length=200)
    description: str | None = text("description", max_length=2000)
    trigger: Trigger = field(converter=_trigger)
    condition: Criteria = field(factory=And, converter=_condition)
    actions: tuple[Action, ...] = field(converter=_actions)
    enabled: bool = bool_field(default=True)


@frozen(kw_only=True)
class RuleSpec:
    """A rule a plugin contributes (``crmkit_register_rules``).

    Saved as a :class:`Rule` the first time a CRM opens with it (matched by
    name); never changed afterwards, so users may edit or disable it.
    """

    name: str = text("name", required=True, max_length=200)
    trigger: Trigger = field(converter=_trigger)
    actions: tuple[Action, ...] = field(converter=_actions)
    condition: Criteria = field(factory=And, converter=_condition)
    description: str | None = text("description", max_length=2000)
    enabled: bool = bool_field(default=True)


@frozen(kw_only=True)
class RuleFiring(Entity):
    """The journal entry of one rule firing for one record and trigger occurrence.

    ``key`` (``<rule id>:<trigger key>``) is unique: the same rule never
    fires twice for the same occurrence.  A failed firing keeps its entry
    (status ``failed``, with the error) and is tried again the next time the
    occurrence is seen; ``attempts`` counts the tries.
    """

    ENTITY: ClassVar[str] = "rule_firing"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "rule_id": FieldKind.ID,
        "key": FieldKind.TEXT,
        "status": FieldKind.ENUM,
        "record_id": FieldKind.ID,
        "fired_at": FieldKind.DATETIME,
    }
    UNIQUE: ClassVar[tuple[str, ...]] = ("external_ref", "key")
    REFERENCES: ClassVar[dict[str, type[Entity]]] = {"rule_id": Rule}

    id: RuleFiringId = required_id()
    rule_id: RuleId = required_id()
    key: str = text("key", required=True, max_length=500)
    trigger: TriggerKind = enum_field(TriggerKind, "trigger")
    record_entity: str | None = text("record_entity", max_length=64)
    record_id: UUID | None = optional_id()
    status: FiringStatus = enum_field(FiringStatus, "status", FiringStatus.DONE)
    attempts: int = 1
    error: str | None = text("error", max_length=2000)
    fired_at: datetime = aware_datetime()


@frozen
class AutomationReport:
    """What a round of rule firings did (``run_due``, or the rules a commit triggered).

    Attributes:
        fired: the journal entries of the firings that ran, in order.
        failed: the errors of the firings that failed (each undone and
            recorded with status ``failed``).
        skipped: firings not run because the journal shows them done
            already (a re-delivered event, a second ``run_due``).

    .. versionadded:: 0.1
    """

    fired: tuple[RuleFiring, ...] = ()
    failed: tuple[AutomationError, ...] = ()
    skipped: int = 0

    @property
    def ok(self) -> bool:
        """Whether no firing failed."""
        return not self.failed

    def __add__(self, other: AutomationReport) -> AutomationReport:
        return AutomationReport(
            self.fired + other.fired, self.failed + other.failed, self.skipped + other.skipped
        )
