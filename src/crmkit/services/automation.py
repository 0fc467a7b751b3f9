"""Automation rules (reglas de automatización): saved, fired after commit, idempotent.

:class:`AutomationService` (``crm.automation``) saves :class:`~crmkit.Rule`
records and runs them:

* rules on a domain event (an opportunity entering a stage, a lead created)
  run right after the write that caused it commits, never inside it: a rule
  that fails cannot undo that write;
* rules on time (overdue planned interactions, cases past their SLA,
  schedules) run when the host calls :meth:`AutomationService.run_due` from
  its scheduler (``crmkit automation run`` from cron does the same).

Each firing (one rule, one record, one occurrence of the trigger) runs its
actions and writes its :class:`~crmkit.RuleFiring` journal entry in one
transaction, so its effects commit together or not at all; the entry's
unique key makes a re-delivered event or a second ``run_due`` a no-op.  A
failing action undoes the firing, is recorded (status ``failed``), logged on
the ``crmkit.automation`` logger and reported as an
:class:`~crmkit.AutomationError`; the firing is tried again the next time
its occurrence is seen.  Work an action cannot undo (``send_template``'s
e-mail) waits on ``ActionContext.after_commit`` and runs once the firing
has committed; if it fails, the committed entry turns ``failed`` (retried
the same way) and the firing's effects stay.

Action kinds are pluggable (``crmkit_register_rule_actions``); the built-in
ones come from :mod:`crmkit.plugins.builtin_automation`.

.. versionadded:: 0.1
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast
from uuid import UUID

import attrs

from crmkit.core import changes
from crmkit.core.automation import (
    Action,
    ActionContext,
    ActionKind,
    AutomationReport,
    FiringStatus,
    Rule,
    RuleFiring,
    RuleSpec,
    RuleSubject,
    Trigger,
    TriggerKind,
    schedule_slot,
)
from crmkit.core.entities import Entity, Organization
from crmkit.core.errors import (
    AutomationError,
    CrmkitError,
    DuplicateError,
    NotFoundError,
    ValidationError,
)
from crmkit.core.events import Created, StageChanged
from crmkit.core.fields import to_enum
from crmkit.core.ids import RuleId, uuid7
from crmkit.core.leads import Lead
from crmkit.core.opportunities import Opportunity
from crmkit.core.query import Eq, In, Order, Query
from crmkit.core.segments import And, Criteria
from crmkit.services.base import (
    UNSET,
    Event,
    Notice,
    Unset,
    _check_uuid,
    _check_version,
    _expect,
    _Service,
)
from crmkit.services.registry import Registry
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.plugins.host import DeliveryFailure

__all__ = ["AutomationService", "RuleRef", "logger"]

#: Where failed firings are logged (at ERROR level, with the traceback).
logger: Final = logging.getLogger("crmkit.automation")

#: What a rule argument accepts: the record, its id or its name.
RuleRef = Rule | RuleId | str

#: How deep rules may trigger rules (a rule's effect firing another rule...).
MAX_DEPTH: Final = 4

#: The report of a round in which nothing was due.
_NOTHING: Final = AutomationReport()

#: How many journal keys one query looks up.
_CHUNK: Final = 500


class AutomationService(_Service[Rule, RuleId]):
    """Automation rules: when a trigger happens, if a condition holds, do actions.

    Attributes:
        actions: the registered :class:`~crmkit.ActionKind` (by key).
        registered: the :class:`~crmkit.RuleSpec` plugins contributed
            (``crmkit_register_rules``); :func:`crmkit.open` saves the missing
            ones as rules.
    """

    _cls = Rule

    def __init__(self, crm: CRM):
        super().__init__(crm)
        self.actions: Registry[ActionKind] = Registry(ActionKind, "rule action kind", "kind")
        self.registered: list[RuleSpec] = []
        self._depth: ContextVar[int] = ContextVar(f"crmkit-automation-{id(self)}", default=0)
        self._heard: ContextVar[list[DeliveryFailure]] = ContextVar(
            f"crmkit-automation-heard-{id(self)}"
        )
        self._report: ContextVar[AutomationReport] = ContextVar(
            f"crmkit-automation-report-{id(self)}", default=_NOTHING
        )

    # --------------------------------------------------------------- writes
    def create(
        self,
        *,
        name: str,
        trigger: Trigger,
        actions: Sequence[Action] | Action,
        condition: Criteria | None = None,
        description: str | None = None,
        enabled: bool = True,
        external_ref: str | None = None,
    ) -> Rule:
        """Save a rule.

        Args:
            name: unique name.
            trigger: when it fires (:class:`~crmkit.Trigger`).
            actions: what it does, in order (:class:`~crmkit.Action`).
            condition: a segment criteria tree the record's organization must
                meet (friendly references allowed, as in ``crm.segments``);
                ``None``: always.
            description: what it is for.
            enabled: whether it fires.
            external_ref: the host system's id for it.

        Raises:
            ValidationError: a bad trigger (an unknown pipeline or stage:
                ``trigger.stage``, code ``reference``), condition
                (``condition...``), or action (an unregistered kind:
                ``actions[i].kind``, code ``reference``; bad parameters:
                ``actions[i].params...``).
            DuplicateError: the name or ``external_ref`` is taken.
        """

        def run(uow: UnitOfWork, events: list[Event]) -> Rule:
            values = self._checked(
                uow,
                {
                    "name": name,
                    "trigger": trigger,
                    "actions": actions,
                    "condition": And() if condition is None else condition,
                    "description": description,
                    "enabled": enabled,
                    "external_ref": external_ref,
                },
            )
            rule, event = changes.create(Rule, id=uuid7(), now=self._crm.now(), **values)
            self._repo(uow).add(self._validated(rule, None))
            self._crm._record(uow, events, event)
            return rule

        return self._crm._write(run)

    def update(
        self,
        id: RuleId,
        *,
        expected_version: int,
        name: str | Unset = UNSET,
        trigger: Trigger | Unset = UNSET,
        actions: Sequence[Action] | Action | Unset = UNSET,
        condition: Criteria | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        enabled: bool | Unset = UNSET,
        external_ref: str | Unset | None = UNSET,
    ) -> Rule:
        """Change a rule (``condition=None`` makes it unconditional).

        Raises:
            NotFoundError: no such rule.
            ConcurrencyError: it changed since ``expected_version``.
            ValidationError: as for :meth:`create`.
        """
        values: dict[str, Any] = {
            "name": name,
            "trigger": trigger,
            "actions": actions,
            "condition": And() if condition is None else condition,
            "description": description,
            "enabled": enabled,
            "external_ref": external_ref,
        }
        values = {k: v for k, v in values.items() if v is not UNSET}
        _check_uuid(id, "id")
        _check_version(expected_version)

        def run(uow: UnitOfWork, events: list[Event]) -> Rule:
            repo = self._repo(uow)
            current = repo.get(id)
            _expect(current, expected_version)
            new, event = changes.update(current, self._checked(uow, values), now=self._crm.now())
            if event is not None:
                repo.update(self._validated(new, current), expected_version=current.version)
                self._crm._record(uow, events, event)
            return new

        return self._crm._write(run)

    def enable(self, rule: RuleRef) -> Rule:
        """Let a rule fire again (a no-op if it does).

        Raises:
            NotFoundError: no such rule.
        """
        return self._switch(rule, True)

    def disable(self, rule: RuleRef) -> Rule:
        """Stop a rule from firing (its journal stays).

        Raises:
            NotFoundError: no such rule.
        """
        return self._switch(rule, False)

    # ---------------------------------------------------------------- reads
    def get_by_name(self, name: str) -> Rule:
        """The rule called ``name``.

        Raises:
            NotFoundError: there is none.
        """
        return self._crm._read(lambda uow: self._get(uow, name))

    def firings(
        self,
        rule: RuleRef | None = None,
        *,
        status: FiringStatus | str | None = None,
        record: Entity | UUID | None = None,
        limit: int | None = None,
    ) -> list[RuleFiring]:
        """The firing journal, oldest first.

        Args:
            rule: only this rule's firings (record, id or name).
            status: only ``done`` or ``failed`` ones.
            record: only those for this record (or record id).
            limit: at most this many.

        Raises:
            NotFoundError: no such rule.
            ValidationError: an unknown status, a bad limit.
        """

        def read(uow: UnitOfWork) -> list[RuleFiring]:
            filters: list[Any] = []
            if rule is not None:
                filters.append(Eq("rule_id", self._get(uow, rule).id))
            if status is not None:
                filters.append(Eq("status", to_enum(FiringStatus, status, "status")))
            if record is not None:
                filters.append(Eq("record_id", getattr(record, "id", record)))
            query = Query(
                filters=tuple(filters),
                order=(Order("fired_at"), Order("id")),
                limit=limit,
            )
            return uow.repository(RuleFiring).find(query)

        return self._crm._read(read)

    @property
    def last_report(self) -> AutomationReport:
        """What the last round of firings did (``run_due``, or the rules a commit triggered).

        Kept per thread (per :mod:`contextvars` context), like
        :attr:`crmkit.CRM.last_delivery`.
        """
        return self._report.get()

    # -------------------------------------------------------------- running
    def run_due(self, now: datetime | None = None) -> AutomationReport:
        """Fire the time-based rules that are due at ``now``.

        Checks every enabled rule whose trigger is ``interaction_overdue``
        (planned interactions scheduled before ``now``),
        ``case_sla_breached`` (open cases whose SLA was due before ``now``)
        or ``schedule`` (the slot ``now`` falls in, once per organization
        meeting the rule's condition).  Occurrences already fired are
        skipped, so calling it twice, or from two processes at once, fires
        each only once.  The host calls it from its scheduler (or cron runs
        ``crmkit automation run``).

        Args:
            now: the instant to check at (default: the CRM's clock).

        Returns:
            What fired, what failed (recorded, never raised) and how many
            occurrences were skipped as done already; also kept as
            :attr:`last_report`.

        Raises:
            ValidationError: a naive ``now``.
        """
        when = self._crm.agenda._now(now)
        report = AutomationReport()
        rules = [r for r in self._enabled() if not r.trigger.is_event]
        for rule in rules:
            report += self._run(rule, self._due(rule, when), when)
        self._report.set(report)
        return report

    def deliver(self, events: Iterable[object]) -> AutomationReport:
        """Run the event rules of committed domain events (again).

        crmkit calls it itself after every commit; call it to re-deliver
        events (from a host's outbox, say): occurrences fired already are
        skipped.

        Args:
            events: domain events (:class:`~crmkit.StageChanged`, a
                :class:`~crmkit.Created` lead); others are ignored.

        Returns:
            What fired, failed and was skipped; also kept as :attr:`last_report`.
        """
        occurrences = [found for e in events if (found := _occurrence(e)) is not None]
        if not occurrences:
            return AutomationReport()
        depth = self._depth.get()
        if depth >= MAX_DEPTH:
            logger.warning("rules triggered rules %d levels deep; stopping there", depth)
            return AutomationReport()
        token = self._depth.set(depth + 1)
        try:
            report = AutomationReport()
            rules = [r for r in self._enabled() if r.trigger.is_event]
            now = self._crm.now()
            for rule in rules:
                due = [
                    (key, subject)
                    for kind, key, subject, event in occurrences
                    if kind is rule.trigger.kind and _matches(rule.trigger, event)
                ]
                if due:
                    report += self._run(rule, due, now)
        finally:
            self._depth.reset(token)
        self._report.set(report)
        return report

    # -------------------------------------------------------------- helpers
    def _after_commit(self, events: Sequence[object]) -> list[DeliveryFailure]:
        """Hear a commit's events; the failures as delivery failures (never raised)."""
        if not any(_occurrence(e) is not None for e in events):
            return []
        from crmkit.plugins.host import DeliveryFailure

        heard: list[DeliveryFailure] = []
        token = self._heard.set(heard)
        try:
            report = self.deliver(events)
        except CrmkitError as exc:  # the rules could not even be read: report it
            logger.exception("automation rules could not run after a commit")
            return [DeliveryFailure("automation", "crmkit.automation", f"{exc}", exc)]
        finally:
            self._heard.reset(token)
        failed = [
            DeliveryFailure("automation", f"rule {error.rule}", f"{error}", error)
            for error in report.failed
        ]
        return failed + heard

    def _enabled(self) -> list[Rule]:
        query = Query(filters=(Eq("enabled", True),), order=(Order("name"),))
        return self._crm._read(lambda uow: self._repo(uow).find(query))

    def _due(self, rule: Rule, now: datetime) -> list[tuple[str, RuleSubject]]:
        """The occurrences of a time-based rule's trigger at ``now``: (key, subject)."""
        kind = rule.trigger.kind
        agenda = self._crm.agenda
        if kind is TriggerKind.INTERACTION_OVERDUE:
            return [
                (f"{kind.value}:{i.id}:{_utc(i.scheduled_at)}", RuleSubject.of(i))
                for i in agenda.overdue(now=now, limit=None)
                if i.scheduled_at is not None
            ]
        if kind is TriggerKind.CASE_SLA_BREACHED:
            return [
                (f"{kind.value}:{c.id}:{_utc(c.sla_due)}", RuleSubject.of(c))
                for c in agenda.overdue_cases(now=now, limit=None)
            ]
        every = rule.trigger.every_minutes
        assert every is not None  # a schedule
        slot = _utc(schedule_slot(every, now))
        members = self._crm._read(
            lambda uow: self._crm.segments._evaluate(uow, rule.condition, now)
        )
        organizations = self._crm._read(lambda uow: uow.repository(Organization).get_many(members))
        return [
            (f"{kind.value}:{slot}:{m}", RuleSubject.of(organizations[m]))
            for m in members
            if m in organizations
        ]

    def _run(
        self, rule: Rule, due: Sequence[tuple[str, RuleSubject]], now: datetime
    ) -> AutomationReport:
        """Fire ``rule`` for each new occurrence whose organization meets the condition."""
        keys = {key: f"{rule.id}:{key}" for key, _ in due}
        done = self._done(list(keys.values()))
        todo = [(keys[key], subject) for key, subject in due if keys[key] not in done]
        skipped = len(due) - len(todo)
        if todo and rule.condition != And() and rule.trigger.kind is not TriggerKind.SCHEDULE:
            todo = self._meeting(rule, todo, now)
        fired: list[RuleFiring] = []
        failed: list[AutomationError] = []
        for key, subject in todo:
            outcome = self._fire(rule, subject, key, now)
            if isinstance(outcome, RuleFiring):
                fired.append(outcome)
            elif isinstance(outcome, AutomationError):
                failed.append(outcome)
            else:
                skipped += 1
        return AutomationReport(tuple(fired), tuple(failed), skipped)

    def _done(self, keys: list[str]) -> set[str]:
        """The keys among ``keys`` the journal shows fired (status done)."""
        found: set[str] = set()
        for start in range(0, len(keys), _CHUNK):
            chunk = tuple(keys[start : start + _CHUNK])
            query = Query(filters=(In("key", chunk), Eq("status", FiringStatus.DONE)))
            found.update(f.key for f in self._crm._read(functools.partial(_find_firings, query)))
        return found

    def _meeting(
        self, rule: Rule, todo: list[tuple[str, RuleSubject]], now: datetime
    ) -> list[tuple[str, RuleSubject]]:
        """The occurrences whose record's organization meets the rule's condition."""
        ids = {s.organization_id for _, s in todo if s.organization_id is not None}
        if not ids:
            return []
        segments = self._crm.segments
        if len(ids) == 1:  # one organization: ask about it alone
            tree: Criteria = And(In("id", tuple(ids)), rule.condition)
        else:
            tree = rule.condition
        members = set(self._crm._read(lambda uow: segments._evaluate(uow, tree, now)))
        return [(k, s) for k, s in todo if s.organization_id in members]

    def _fire(
        self, rule: Rule, subject: RuleSubject, key: str, now: datetime
    ) -> RuleFiring | AutomationError | None:
        """Run the rule's actions for one occurrence, with its journal entry, atomically.

        Returns:
            The journal entry; the error if an action failed (recorded as
            failed); ``None`` if the journal shows it done already.
        """
        crm = self._crm
        failing: list[tuple[int | None, str | None]] = [(None, None)]
        pending: list[tuple[int, str, Callable[[], object]]] = []
        nested = crm._tx.get() is not None  # called inside crm.transaction()

        def run(uow: UnitOfWork, events: list[Event]) -> RuleFiring | None:
            pending.clear()
            repo = uow.repository(RuleFiring)
            current = repo.get_by("key", key)
            if current is not None and current.status is FiringStatus.DONE:
                return None
            context = ActionContext(
                crm=crm, rule=rule, action=rule.actions[0], subject=subject, key=key, now=now
            )
            for i, action in enumerate(rule.actions):
                failing[0] = (i, action.kind)
                kind = self.actions.get(action.kind)
                context = _with(context, action, i)
                before = len(context.after_commit)
                kind.run(context)
                pending.extend((i, action.kind, work) for work in context.after_commit[before:])
                if nested and pending:
                    raise ValidationError(
                        "transaction",
                        f"a {action.kind} action works after its firing commits: "
                        "deliver or run_due outside crm.transaction()",
                        code="transaction",
                    )
            failing[0] = (None, None)
            remarks = "; ".join(context.remarks) or None
            firing = self._journal(
                uow, events, rule, subject, key, current, FiringStatus.DONE, remarks
            )
            record = subject.record
            for note in context.notes:
                events.append(
                    Notice(
                        lambda note=note: crm.plugins.rule_fired(  # type: ignore[misc]
                            crm, rule, firing, record, note
                        )
                    )
                )
            return firing

        error: Exception
        after = [False]  # the firing committed; its after-commit work is running
        try:
            fired = crm._write(run)
            heard = self._heard.get(None)
            if fired is not None and heard is not None:  # crmkit_rule_fired may have failed
                heard.extend(crm.last_delivery.failures)
            if fired is None:
                return None
            after[0] = True
            _run_after(pending, failing)
            return fired
        except DuplicateError as exc:
            if exc.entity == RuleFiring.ENTITY and exc.field == "key" and not after[0]:
                return None  # another process fired it at the same moment
            error = exc
        except Exception as exc:
            error = exc
        return self._failed(rule, subject, key, failing[0], error, committed=after[0])

    def _failed(
        self,
        rule: Rule,
        subject: RuleSubject,
        key: str,
        failing: tuple[int | None, str | None],
        error: Exception,
        *,
        committed: bool,
    ) -> AutomationError:
        """Log and journal a failed firing (``committed``: its after-commit work failed)."""
        crm = self._crm
        index, kind = failing
        failure = AutomationError(rule.name, key, index, kind, f"{type(error).__name__}: {error}")
        failure.__cause__ = error
        logger.error(
            "automation rule %r failed for %s %s; %s",
            rule.name,
            subject.entity,
            subject.record.id,
            "recorded (its effects had committed)" if committed else "it is undone and recorded",
            exc_info=error,
            extra={"rule": rule.name, "key": key},
        )

        def record(uow: UnitOfWork, events: list[Event]) -> None:
            current = uow.repository(RuleFiring).get_by("key", key)
            if current is not None and current.status is FiringStatus.DONE and not committed:
                return
            self._journal(
                uow,
                events,
                rule,
                subject,
                key,
                current,
                FiringStatus.FAILED,
                str(failure),
                attempt=not committed,
            )

        try:
            crm._write(record)
        except CrmkitError:  # the journal could not be written: still reported
            logger.exception("could not record the failure of rule %r", rule.name)
        return failure

    def _journal(
        self,
        uow: UnitOfWork,
        events: list[Event],
        rule: Rule,
        subject: RuleSubject,
        key: str,
        current: RuleFiring | None,
        status: FiringStatus,
        error: str | None,
        *,
        attempt: bool = True,
    ) -> RuleFiring:
        """Write (or update) the journal entry of a firing (``attempt``: count a new try)."""
        repo = uow.repository(RuleFiring)
        now = self._crm.now()
        if current is None:
            firing, created = changes.create(
                RuleFiring,
                id=uuid7(),
                now=now,
                rule_id=rule.id,
                key=key,
                trigger=rule.trigger.kind,
                record_entity=subject.entity,
                record_id=subject.record.id,
                status=status,
                attempts=1,
                error=_clip(error),
                fired_at=now,
            )
            repo.add(firing)
            self._crm._record(uow, events, created)
            return firing
        values = {
            "status": status,
            "attempts": current.attempts + (1 if attempt else 0),
            "error": _clip(error),
            "fired_at": now,
        }
        firing, updated = changes.update(current, values, now=now)
        repo.update(firing, expected_version=current.version)
        self._crm._record(uow, events, updated)
        return firing

    def _seed(self) -> list[Rule]:
        """Save the plugins' rules that are not saved yet (by name); existing ones stay."""
        if not self.registered:
            return []

        def run(uow: UnitOfWork, events: list[Event]) -> list[Rule]:
            created = []
            for spec in self.registered:
                if self._repo(uow).get_by("name", spec.name) is not None:
                    continue
                created.append(
                    self.create(
                        name=spec.name,
                        trigger=spec.trigger,
                        actions=spec.actions,
                        condition=spec.condition,
                        description=spec.description,
                        enabled=spec.enabled,
                    )
                )
            return created

        return self._crm._write(run)

    def _switch(self, rule: RuleRef, enabled: bool) -> Rule:
        def run(uow: UnitOfWork, events: list[Event]) -> Rule:
            current = self._get(uow, rule)
            new, event = changes.update(current, {"enabled": enabled}, now=self._crm.now())
            if event is not None:
                self._repo(uow).update(
                    self._validated(new, current), expected_version=current.version
                )
                self._crm._record(uow, events, event)
            return new

        return self._crm._write(run)

    def _get(self, uow: UnitOfWork, rule: object) -> Rule:
        repo = self._repo(uow)
        if isinstance(rule, Rule):
            return repo.get(rule.id)
        if isinstance(rule, str):
            found = repo.get_by("name", rule)
            if found is None:
                raise NotFoundError(Rule.ENTITY, rule)
            return found
        _check_uuid(rule, "rule")
        return repo.get(cast(RuleId, rule))

    def _prepare(
        self, uow: UnitOfWork, values: Mapping[str, Any], resolve: Any = None
    ) -> dict[str, Any]:
        """``bulk_create`` items are checked as :meth:`create` checks its arguments."""
        values = dict(values)
        if "condition" in values and values["condition"] is None:
            values["condition"] = And()
        return super()._prepare(uow, self._checked(uow, values), resolve)

    def _checked(self, uow: UnitOfWork, values: Mapping[str, Any]) -> dict[str, Any]:
        """The rule's values with its condition resolved and its trigger and actions checked."""
        values = dict(values)
        if "trigger" in values:
            self._check_trigger(values["trigger"])
        if "condition" in values:
            try:
                values["condition"] = self._crm.segments._resolve(uow, values["condition"])
            except ValidationError as error:
                field = "condition" + error.field.removeprefix("criteria")
                raise ValidationError(
                    field, error.reason, code=error.code, value=error.value
                ) from None
        if "actions" in values:
            actions = values["actions"]
            items = (actions,) if isinstance(actions, Action) else actions
            if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
                raise ValidationError(
                    "actions", "must be a list of actions", code="type", value=actions
                )
            items = tuple(items)
            for i, action in enumerate(items):
                if not isinstance(action, Action):
                    raise ValidationError(
                        f"actions[{i}]", "must be an Action", code="type", value=action
                    )
                try:
                    kind = self.actions.get(action.kind)
                except ValidationError as error:
                    raise error.at(f"actions[{i}]") from None
                try:
                    if kind.check is not None:
                        kind.check(action.params)
                    if action.kind == "plan_interaction":  # its kind must exist now
                        self._crm.interactions.kinds.get(str(action.params.get("kind")))
                except ValidationError as error:
                    raise error.at(f"actions[{i}].params") from None
            values["actions"] = items
        return values

    def _check_trigger(self, trigger: object) -> None:
        if not isinstance(trigger, Trigger):
            raise ValidationError("trigger", "must be a Trigger", code="type", value=trigger)
        if trigger.kind is not TriggerKind.STAGE_CHANGED:
            return
        pipelines = list(self._crm.pipelines)
        if trigger.pipeline is not None:
            pipelines = [p for p in pipelines if p.key == trigger.pipeline]
            if not pipelines:
                raise ValidationError(
                    "trigger.pipeline",
                    "there is no pipeline with that key",
                    code="reference",
                    value=trigger.pipeline,
                )
        if not any(trigger.stage in [s.key for s in p.stages] for p in pipelines):
            raise ValidationError(
                "trigger.stage",
                "no pipeline has a stage with that key",
                code="reference",
                value=trigger.stage,
            )


def _with(context: ActionContext, action: Action, index: int) -> ActionContext:
    """The context for the next action (the notes list is shared)."""
    return attrs.evolve(context, action=action, index=index)


def _run_after(
    pending: Sequence[tuple[int, str, Callable[[], object]]],
    failing: list[tuple[int | None, str | None]],
) -> None:
    """Do a committed firing's after-commit work, in order; ``failing`` names the one running."""
    for position, kind, work in pending:
        failing[0] = (position, kind)
        work()


def _find_firings(query: Query, uow: UnitOfWork) -> list[RuleFiring]:
    return uow.repository(RuleFiring).find(query)


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:2000]


def _occurrence(event: object) -> tuple[TriggerKind, str, RuleSubject, object] | None:
    """(trigger kind, occurrence key, subject, event) of a domain event rules hear."""
    if isinstance(event, StageChanged):
        opportunity: Opportunity = event.entity
        key = f"{TriggerKind.STAGE_CHANGED.value}:{opportunity.id}:{opportunity.version}"
        return TriggerKind.STAGE_CHANGED, key, RuleSubject.of(opportunity), event
    if isinstance(event, Created) and isinstance(event.entity, Lead):
        lead: Lead = event.entity
        key = f"{TriggerKind.LEAD_CREATED.value}:{lead.id}"
        return TriggerKind.LEAD_CREATED, key, RuleSubject.of(lead), event
    return None


def _matches(trigger: Trigger, event: object) -> bool:
    if isinstance(event, StageChanged):
        return event.change.target == trigger.stage and (
            trigger.pipeline is None or trigger.pipeline == event.entity.pipeline
        )
    return True
