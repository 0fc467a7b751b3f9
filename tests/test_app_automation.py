"""Automation rules: saved as data, fired after commit, idempotent, failures recorded."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crmkit
from crmkit import (
    CRM,
    Action,
    ActionContext,
    ActionKind,
    And,
    AutomationError,
    AutomationReport,
    DuplicateError,
    Eq,
    FiringStatus,
    Money,
    NotFoundError,
    Opportunity,
    Organization,
    Rule,
    RuleSpec,
    Trigger,
    User,
    ValidationError,
    hookimpl,
)
from crmkit.core.automation import schedule_slot
from crmkit.core.events import StageChanged
from tests.conftest import FixedClock


def _book(crm: CRM, *, market: str = "retail") -> tuple[User, Organization, Opportunity]:
    """A user, an organization of ``market`` she owns, and an opportunity in ``lead``."""
    for key in ("retail", "industry"):
        crm.markets.create(key=key, name=key.title())
    ana = crm.users.create(name="Ana")
    acme = crm.organizations.create(name="Acme", market=market, owner=ana)
    deal = crm.opportunities.create(
        name="ERP for Acme", organization=acme, amount=Money("12000", "EUR"), owner=ana
    )
    return ana, acme, deal


def _to_negotiation(crm: CRM, deal: Opportunity) -> Opportunity:
    for stage in ("qualified", "proposal", "negotiation"):
        deal = crm.opportunities.advance(deal.id, to=stage)
    return deal


def _follow_up_rule(crm: CRM, **options: object) -> Rule:
    return crm.automation.create(
        name="Negotiation follow-up",
        trigger=Trigger.stage_changed("negotiation", pipeline="sales"),
        actions=[Action.plan_interaction("call", due_in=timedelta(days=2))],
        **options,  # type: ignore[arg-type]
    )


def _event(deal: Opportunity) -> StageChanged:
    """The stage change that brought ``deal`` where it is, as the commit delivered it."""
    return StageChanged(deal, deal.history[-1], ())


# ------------------------------------------------------------------ firing


def test_reaching_negotiation_schedules_a_follow_up_call_for_the_owner(
    any_crm: CRM, clock: FixedClock
) -> None:
    """The rule plans a call two days later, on the opportunity's owner's agenda."""
    ana, acme, deal = _book(any_crm)
    rule = _follow_up_rule(any_crm)

    deal = _to_negotiation(any_crm, deal)

    [call] = any_crm.interactions.find(status="planned")
    assert ("call", acme.id, deal.id, ana.id) == (
        call.kind,
        call.organization_id,
        call.opportunity_id,
        call.assignee_id,
    )
    assert clock.current + timedelta(days=2) == call.scheduled_at
    assert "Negotiation follow-up" == call.subject
    [firing] = any_crm.automation.firings(rule)
    assert (FiringStatus.DONE, deal.id, "opportunity", 1) == (
        firing.status,
        firing.record_id,
        firing.record_entity,
        firing.attempts,
    )
    assert any_crm.last_delivery.ok
    assert 1 == len(any_crm.automation.last_report.fired)


def test_other_stages_and_pipelines_do_not_fire(crm: CRM) -> None:
    """Moving to proposal, or to negotiation in a pipeline the rule does not name, fires nothing."""
    _, _, deal = _book(crm)
    crm.automation.create(
        name="Other pipeline",
        trigger=Trigger.stage_changed("negotiation", pipeline="sales"),
        actions=[Action.notify()],
        enabled=False,
    )
    _follow_up_rule(crm)
    crm.opportunities.advance(deal.id, to="qualified")
    crm.opportunities.advance(deal.id, to="proposal")

    assert [] == crm.interactions.find(status="planned")
    assert [] == crm.automation.firings()


def test_a_disabled_rule_does_not_fire(crm: CRM) -> None:
    """``disable`` stops a rule; ``enable`` brings it back."""
    _, _, deal = _book(crm)
    rule = _follow_up_rule(crm)
    crm.automation.disable(rule)

    _to_negotiation(crm, deal)

    assert [] == crm.automation.firings()
    assert crm.automation.enable(rule.name).enabled


def test_a_false_condition_does_nothing(any_crm: CRM) -> None:
    """The condition is checked on the organization: another market, no call and no journal."""
    _, _, deal = _book(any_crm, market="industry")
    _follow_up_rule(any_crm, condition=Eq("market", "retail"))

    _to_negotiation(any_crm, deal)

    assert [] == any_crm.interactions.find(status="planned")
    assert [] == any_crm.automation.firings()
    assert any_crm.automation.last_report.ok


def test_a_true_condition_fires(any_crm: CRM) -> None:
    """The same rule fires for an organization of the market it names."""
    _, _, deal = _book(any_crm, market="retail")
    _follow_up_rule(any_crm, condition=Eq("market", "retail"))

    _to_negotiation(any_crm, deal)

    assert 1 == len(any_crm.interactions.find(status="planned"))


def test_a_re_delivered_event_fires_nothing_new(any_crm: CRM) -> None:
    """Delivering the same stage change again finds its journal entry and skips it."""
    _, _, deal = _book(any_crm)
    _follow_up_rule(any_crm)
    deal = _to_negotiation(any_crm, deal)

    report = any_crm.automation.deliver([_event(deal)])

    assert ((), (), 1) == (report.fired, report.failed, report.skipped)
    assert 1 == len(any_crm.interactions.find(status="planned"))
    assert 1 == len(any_crm.automation.firings())


def test_a_new_visit_to_the_stage_fires_again(crm: CRM) -> None:
    """Leaving negotiation and coming back is a new occurrence: a second call."""
    _, _, deal = _book(crm)
    _follow_up_rule(crm)
    deal = _to_negotiation(crm, deal)
    deal = crm.opportunities.advance(deal.id, to="proposal")
    crm.opportunities.advance(deal.id, to="negotiation")

    assert 2 == len(crm.interactions.find(status="planned"))


def test_a_lead_created_rule_assigns_an_owner(any_crm: CRM) -> None:
    """A lead without an organization meets an unconditional rule; its owner is set."""
    luis = any_crm.users.create(name="Luis")
    any_crm.automation.create(
        name="Route web leads",
        trigger=Trigger.lead_created(),
        actions=[Action.assign_owner(luis)],
    )

    lead = any_crm.leads.create(first_name="Eva", company="Beta", email="eva@beta.es")

    assert luis.id == any_crm.leads.get(lead.id).owner_id


def test_a_conditional_rule_skips_records_without_an_organization(crm: CRM) -> None:
    """A condition needs an organization to look at; a bare lead does not meet it."""
    luis = crm.users.create(name="Luis")
    crm.automation.create(
        name="Route retail leads",
        trigger=Trigger.lead_created(),
        condition=Eq("name", "Acme"),
        actions=[Action.assign_owner(luis)],
    )

    lead = crm.leads.create(first_name="Eva", company="Beta")

    assert crm.leads.get(lead.id).owner_id is None


# -------------------------------------------------------------- failures


class _Flaky:
    """A plugin with an action kind that fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.failing = True
        self.runs: list[str] = []

    def _run(self, context: ActionContext) -> None:
        if self.failing:
            raise RuntimeError("the mail server is down")
        self.runs.append(context.key)

    @hookimpl
    def crmkit_register_rule_actions(self, crm: CRM) -> list[ActionKind]:
        return [ActionKind(key="send_sms", run=self._run)]


def test_a_failing_action_is_reported_recorded_and_keeps_the_triggering_commit(
    backend_url: str, clock: FixedClock
) -> None:
    """The stage change stays; the firing's call is undone; the error is typed and journaled."""
    flaky = _Flaky()
    with crmkit.open(backend_url, clock=clock, plugins=[flaky]) as crm:
        _, _, deal = _book(crm)
        rule = crm.automation.create(
            name="Welcome",
            trigger=Trigger.stage_changed("negotiation"),
            actions=[Action.plan_interaction("call"), Action("send_sms", {"template": "welcome"})],
        )

        deal = _to_negotiation(crm, deal)

        assert "negotiation" == crm.opportunities.get(deal.id).stage
        assert [] == crm.interactions.find(status="planned")  # atomic: action 0 undone
        [error] = crm.automation.last_report.failed
        assert isinstance(error, AutomationError)
        assert ("Welcome", 1, "send_sms") == (error.rule, error.action, error.kind)
        assert isinstance(error.__cause__, RuntimeError)
        [failure] = crm.last_delivery.failures
        assert error is failure.exception
        [firing] = crm.automation.firings(rule, status="failed")
        assert 1 == firing.attempts
        assert "the mail server is down" in (firing.error or "")

        flaky.failing = False
        report = crm.automation.deliver([_event(deal)])

        assert 1 == len(report.fired)
        [firing] = crm.automation.firings(rule)
        assert (FiringStatus.DONE, 2, None) == (firing.status, firing.attempts, firing.error)
        assert 1 == len(crm.interactions.find(status="planned"))
        assert [firing.key] == flaky.runs


def test_notification_errors_raise_reports_a_failed_rule_as_a_committed_hook_error(
    clock: FixedClock,
) -> None:
    """In strict mode the caller hears of the failure, the change being committed."""
    flaky = _Flaky()
    with crmkit.open(":memory:", clock=clock, plugins=[flaky], notification_errors="raise") as crm:
        _, _, deal = _book(crm)
        crm.automation.create(
            name="Welcome",
            trigger=Trigger.stage_changed("proposal"),
            actions=[Action("send_sms", {"template": "welcome"})],
        )
        crm.opportunities.advance(deal.id, to="qualified")
        with pytest.raises(crmkit.HookError) as info:
            crm.opportunities.advance(deal.id, to="proposal")

        assert info.value.committed
        assert "proposal" == crm.opportunities.get(deal.id).stage


def test_a_plugin_action_kind_runs_with_its_params(crm: CRM) -> None:
    """A kind registered through the API gets the action's params and the record."""
    seen: list[tuple[Mapping[str, object], str]] = []
    crm.automation.actions.register(
        ActionKind(
            key="send_sms",
            run=lambda c: seen.append((dict(c.action.params), c.subject.entity)),
        )
    )
    crm.automation.create(
        name="Welcome",
        trigger=Trigger.lead_created(),
        actions=[Action("send_sms", {"template": "welcome", "language": "es"})],
    )

    crm.leads.create(first_name="Eva", company="Beta")

    assert [({"template": "welcome", "language": "es"}, "lead")] == seen


# ----------------------------------------------------------- validation


def test_an_unknown_action_kind_is_refused_when_saved(crm: CRM) -> None:
    """A kind no plugin registers cannot be saved; nothing is written."""
    with pytest.raises(ValidationError) as info:
        crm.automation.create(
            name="Welcome",
            trigger=Trigger.lead_created(),
            actions=[Action.notify(), Action("send_sms", {"template": "welcome"})],
        )

    assert ("actions[1].kind", "reference") == (info.value.field, info.value.code)
    assert 0 == crm.automation.count()


def test_an_unknown_stage_or_pipeline_is_refused(crm: CRM) -> None:
    """The trigger names a stage some pipeline has (the named one, if any)."""
    with pytest.raises(ValidationError) as info:
        crm.automation.create(
            name="x", trigger=Trigger.stage_changed("negociacion"), actions=[Action.notify()]
        )
    assert ("trigger.stage", "reference") == (info.value.field, info.value.code)
    with pytest.raises(ValidationError) as info:
        crm.automation.create(
            name="x",
            trigger=Trigger.stage_changed("negotiation", pipeline="nope"),
            actions=[Action.notify()],
        )
    assert ("trigger.pipeline", "reference") == (info.value.field, info.value.code)


def test_a_bad_condition_names_its_path(crm: CRM) -> None:
    """Condition errors carry the path inside the condition."""
    with pytest.raises(ValidationError) as info:
        crm.automation.create(
            name="x",
            trigger=Trigger.lead_created(),
            condition=Eq("colour", "blue"),
            actions=[Action.notify()],
        )
    assert info.value.field.startswith("condition")


def test_bad_triggers_and_actions_are_refused() -> None:
    """Triggers and actions check themselves when built."""
    with pytest.raises(ValidationError):
        Trigger.schedule(timedelta(seconds=30))
    with pytest.raises(ValidationError):
        Trigger("stage_changed")
    with pytest.raises(ValidationError):
        Trigger("sometimes")
    with pytest.raises(ValidationError):
        Action("notify", {"note": object()})
    with pytest.raises(ValidationError):
        Action.plan_interaction("call", due_in=timedelta(seconds=5))


def test_rule_names_are_unique(any_crm: CRM) -> None:
    """A second rule with the same name is a DuplicateError naming the field."""
    _follow_up_rule(any_crm)
    with pytest.raises(DuplicateError) as info:
        _follow_up_rule(any_crm)
    assert ("rule", "name") == (info.value.entity, info.value.field)


def test_a_rule_reads_back_as_saved_and_updates(any_crm: CRM) -> None:
    """Trigger, condition and actions round-trip through the store; update bumps the version."""
    _book(any_crm)
    rule = _follow_up_rule(any_crm, condition=Eq("market", "retail"))

    assert rule == any_crm.automation.get(rule.id)
    assert rule == any_crm.automation.get_by_name("Negotiation follow-up")
    changed = any_crm.automation.update(
        rule.id, expected_version=rule.version, actions=[Action.notify("hi")], condition=None
    )
    assert 2 == changed.version
    assert changed == any_crm.automation.get(rule.id)
    with pytest.raises(NotFoundError):
        any_crm.automation.get_by_name("nope")


# ---------------------------------------------------------------- run_due


def test_run_due_follows_up_an_overdue_interaction_once(any_crm: CRM, clock: FixedClock) -> None:
    """An overdue planned call gets an e-mail follow-up; running again adds nothing."""
    ana, acme, _ = _book(any_crm)
    call = any_crm.interactions.plan(
        kind="call",
        scheduled_at=clock.current + timedelta(hours=1),
        organization=acme,
        assignee=ana,
    )
    any_crm.automation.create(
        name="Chase overdue calls",
        trigger=Trigger.interaction_overdue(),
        condition=Eq("market", "retail"),
        actions=[Action.plan_interaction("email", due_in=timedelta(days=1))],
    )

    assert () == any_crm.automation.run_due(clock.current).fired  # not overdue yet
    later = clock.advance(hours=2)
    first = any_crm.automation.run_due(later)
    second = any_crm.automation.run_due(later + timedelta(minutes=1))

    [email] = any_crm.interactions.find(kind="email")
    assert (call.id, ana.id) == (email.follow_up_of, email.assignee_id)
    assert later + timedelta(days=1) == email.scheduled_at
    assert (1, 0) == (len(first.fired), first.skipped)
    assert 0 == len(second.fired)
    assert second.skipped >= 1


def test_run_due_reassigns_a_case_past_its_sla_once(any_crm: CRM, clock: FixedClock) -> None:
    """A case past its SLA goes to the escalation user, once."""
    ana, acme, _ = _book(any_crm)
    boss = any_crm.users.create(name="Boss")
    case = any_crm.cases.open(subject="Broken", case_type="incident", organization=acme, owner=ana)
    any_crm.automation.create(
        name="Escalate",
        trigger=Trigger.case_sla_breached(),
        actions=[Action.assign_owner(boss), Action.notify("escalated")],
    )

    late = case.sla_due + timedelta(minutes=1)
    assert 1 == len(any_crm.automation.run_due(late).fired)
    assert 0 == len(any_crm.automation.run_due(late + timedelta(days=1)).fired)
    assert boss.id == any_crm.cases.get(case.id).owner_id


def test_run_due_fires_a_schedule_once_per_slot_and_organization(
    any_crm: CRM, clock: FixedClock
) -> None:
    """A daily rule fires once per member per day, whatever the number of runs."""
    _book(any_crm)
    any_crm.organizations.create(name="Beta", market="industry")
    rule = any_crm.automation.create(
        name="Daily check",
        trigger=Trigger.schedule(timedelta(days=1)),
        condition=Eq("market", "retail"),
        actions=[Action.notify()],
    )
    now = clock.current
    fired = [
        len(any_crm.automation.run_due(at).fired)
        for at in (now, now + timedelta(hours=1), now + timedelta(days=1), now)
    ]

    assert [1, 0, 1, 0] == fired
    assert 2 == len(any_crm.automation.firings(rule))


def test_run_due_refuses_a_naive_time(crm: CRM) -> None:
    """``now`` must be timezone-aware."""
    with pytest.raises(ValidationError):
        crm.automation.run_due(datetime(2026, 1, 1))


@settings(max_examples=40)
@given(
    st.lists(
        st.datetimes(
            min_value=datetime(2026, 1, 1),
            max_value=datetime(2026, 3, 1),
            timezones=st.just(UTC),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([60, 720, 1440, 10080]),
)
def test_run_due_is_idempotent_for_any_clock(times: list[datetime], every: int) -> None:
    """Whatever the run times, each slot fires once; running them all again fires nothing."""
    with crmkit.open(":memory:") as crm:
        crm.organizations.create(name="Acme")
        crm.automation.create(
            name="Tick",
            trigger=Trigger.schedule(timedelta(minutes=every)),
            actions=[Action.notify()],
        )
        first = sum(len(crm.automation.run_due(t).fired) for t in times)
        again = sum(len(crm.automation.run_due(t).fired) for t in times)

        assert len({schedule_slot(every, t) for t in times}) == first
        assert 0 == again
        assert first == len(crm.automation.firings())


# ----------------------------------------------------------------- plugins


class _RulesPlugin:
    @hookimpl
    def crmkit_register_rules(self, crm: CRM) -> list[RuleSpec]:
        return [
            RuleSpec(
                name="Negotiation follow-up",
                trigger=Trigger.stage_changed("negotiation"),
                actions=[Action.plan_interaction("call", due_in=timedelta(days=1))],
            )
        ]


def test_a_plugin_rule_is_saved_once_and_fires(backend_url: str, clock: FixedClock) -> None:
    """The plugin's rule is saved when the CRM opens, not twice, and fires like any other."""
    with crmkit.open(backend_url, clock=clock, plugins=[_RulesPlugin()]) as crm:
        assert [] == crm.automation._seed()  # saved by open() already
        [rule] = crm.automation.find()
        assert "Negotiation follow-up" == rule.name
        _, _, deal = _book(crm)

        _to_negotiation(crm, deal)

        assert 1 == len(crm.interactions.find(status="planned"))


# ------------------------------------------------------------- concurrency


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_two_processes_running_due_rules_at_once_fire_each_once(
    backend: str, tmp_path: object, request: pytest.FixtureRequest
) -> None:
    """Two CRMs (own connections) race on run_due: one firing, one planned call, no error."""
    import threading

    url = (
        f"{tmp_path}/crm.db"
        if backend == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    with crmkit.open(url, clock=lambda: now) as setup:
        setup.organizations.create(name="Acme")
        setup.automation.create(
            name="Hourly call",
            trigger=Trigger.schedule(timedelta(hours=1)),
            actions=[Action.plan_interaction("call")],
        )
    crms = [crmkit.open(url, clock=lambda: now) for _ in range(2)]
    barrier = threading.Barrier(2)
    reports: list[AutomationReport] = []

    def run(crm: CRM) -> None:
        barrier.wait()
        reports.append(crm.automation.run_due(now))

    threads = [threading.Thread(target=run, args=(crm,)) for crm in crms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        fired = sum(len(r.fired) for r in reports)
        failed = sum(len(r.failed) for r in reports)
        assert (1, 0, 2) == (fired, failed, len(reports))
        assert 1 == len(crms[0].automation.firings())
        assert 1 == crms[0].interactions.count(kind="call")
    finally:
        for crm in crms:
            crm.close()


def test_bulk_create_checks_rules_as_create_does(crm: CRM) -> None:
    """Conditions are resolved and action kinds checked for each item; a bad one writes none."""
    crm.markets.create(key="retail", name="Retail")
    notify = [Action.notify()]
    [first, second] = crm.automation.bulk_create(
        [
            {"name": "a", "trigger": Trigger.lead_created(), "actions": notify},
            {
                "name": "b",
                "trigger": Trigger.lead_created(),
                "actions": notify,
                "condition": Eq("market", "retail"),
            },
        ]
    )
    assert And() == first.condition
    assert Eq("market_id", crm.markets.get_by_key("retail").id) == second.condition
    with pytest.raises(ValidationError) as info:
        crm.automation.bulk_create(
            [{"name": "c", "trigger": Trigger.lead_created(), "actions": [Action("mail")]}]
        )
    assert ("[0].actions[0].kind", "reference") == (info.value.field, info.value.code)
    assert 2 == crm.automation.count()


def test_rules_run_after_the_outermost_commit_only(crm: CRM) -> None:
    """Inside a transaction nothing fires yet; a rolled-back move fires nothing at all."""
    _, _, deal = _book(crm)
    _follow_up_rule(crm)
    deal = crm.opportunities.advance(deal.id, to="qualified")
    deal = crm.opportunities.advance(deal.id, to="proposal")

    def change_my_mind() -> None:
        with crm.transaction():
            crm.opportunities.advance(deal.id, to="negotiation")
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        change_my_mind()
    assert [] == crm.automation.firings()

    with crm.transaction():
        crm.opportunities.advance(deal.id, to="negotiation")
        assert [] == crm.interactions.find(status="planned")  # not yet: not committed
    assert 1 == len(crm.interactions.find(status="planned"))
