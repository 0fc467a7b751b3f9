"""The hooks of automation rules, called the way plugins rely on.

Hooks tested here by name: ``crmkit_register_rule_actions``,
``crmkit_register_rules``, ``crmkit_rule_fired``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import crmkit
from crmkit import (
    CRM,
    Action,
    ActionContext,
    ActionKind,
    Entity,
    PluginError,
    Rule,
    RuleFiring,
    RuleSpec,
    Trigger,
    hookimpl,
)
from crmkit.core.events import Created
from tests.conftest import FixedClock


class Sender:
    """A plugin that registers a ``send_sms`` action kind."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def _send(self, context: ActionContext) -> None:
        self.sent.append((str(context.action.params["template"]), context.subject.entity))

    @hookimpl
    def crmkit_register_rule_actions(self, crm: CRM) -> list[ActionKind]:
        return [ActionKind(key="send_sms", run=self._send, label="Send a text message")]


class Rules:
    """A plugin contributing one rule."""

    def __init__(self, *specs: RuleSpec) -> None:
        self.specs = list(specs) or [
            RuleSpec(
                name="Welcome new leads",
                trigger=Trigger.lead_created(),
                actions=[Action("send_sms", {"template": "welcome"}), Action.notify("welcomed")],
            )
        ]

    @hookimpl
    def crmkit_register_rules(self, crm: CRM) -> list[RuleSpec]:
        return self.specs


class Listener:
    """A plugin recording ``crmkit_rule_fired``."""

    def __init__(self, fail: bool = False) -> None:
        self.heard: list[tuple[str, str, str | None, str]] = []
        self.fail = fail

    @hookimpl
    def crmkit_rule_fired(
        self, crm: CRM, rule: Rule, firing: RuleFiring, record: Entity, note: str | None
    ) -> None:
        self.heard.append((rule.name, firing.key, note, record.ENTITY))
        if self.fail:
            raise RuntimeError("listener down")


# =================================================== crmkit_register_rule_actions


def test_register_rule_actions_adds_a_kind_rules_can_use(clock: FixedClock) -> None:
    """The plugin's kind is listed with the built-in ones and runs when its rule fires."""
    sender = Sender()
    with crmkit.open(":memory:", plugins=[sender], clock=clock) as crm:
        assert {
            "plan_interaction",
            "apply_sequence",
            "assign_owner",
            "notify",
            "send_template",
            "send_sms",
        } == set(crm.automation.actions.keys())
        crm.automation.create(
            name="Welcome",
            trigger=Trigger.lead_created(),
            actions=[Action("send_sms", {"template": "welcome"})],
        )
        crm.leads.create(first_name="Eva", company="Beta")

    assert [("welcome", "lead")] == sender.sent


def test_register_rule_actions_refuses_a_key_registered_twice(clock: FixedClock) -> None:
    """Two plugins registering the same kind is a PluginError at open()."""
    with pytest.raises(PluginError):
        crmkit.open(":memory:", plugins=[Sender(), Sender()], clock=clock)


def test_register_rule_actions_refuses_a_built_in_key(clock: FixedClock) -> None:
    """A plugin cannot take over a built-in kind."""

    class Notify:
        @hookimpl
        def crmkit_register_rule_actions(self, crm: CRM) -> list[ActionKind]:
            return [ActionKind(key="notify", run=lambda c: None)]

    with pytest.raises(PluginError):
        crmkit.open(":memory:", plugins=[Notify()], clock=clock)


# ========================================================== crmkit_register_rules


def test_register_rules_saves_the_rule_once(tmp_path: object, clock: FixedClock) -> None:
    """A plugin's rule is saved when the CRM opens, kept on reopening, and fires."""
    db = f"{tmp_path}/crm.db"
    sender = Sender()
    with crmkit.open(db, plugins=[sender, Rules()], clock=clock) as crm:
        [rule] = crm.automation.find()
        crm.automation.disable(rule)  # users may change a plugin's rule
    with crmkit.open(db, plugins=[sender, Rules()], clock=clock) as crm:
        [again] = crm.automation.find()
        assert (rule.id, False) == (again.id, again.enabled)
        crm.leads.create(first_name="Eva")

    assert [] == sender.sent


def test_register_rules_refuses_a_name_registered_twice(clock: FixedClock) -> None:
    """Two rules with one name is a PluginError at open()."""
    spec = RuleSpec(name="Same", trigger=Trigger.lead_created(), actions=[Action.notify()])
    with pytest.raises(PluginError):
        crmkit.open(":memory:", plugins=[Rules(spec, spec)], clock=clock)


def test_register_rules_refuses_something_else_than_a_rule_spec(clock: FixedClock) -> None:
    """The hook returns RuleSpec items."""

    class Wrong:
        @hookimpl
        def crmkit_register_rules(self, crm: CRM) -> list[object]:
            return [{"name": "x"}]

    with pytest.raises(PluginError):
        crmkit.open(":memory:", plugins=[Wrong()], clock=clock)


# ============================================================== crmkit_rule_fired


def test_rule_fired_is_called_once_after_commit_with_the_note(clock: FixedClock) -> None:
    """The notify action calls the hook once, after the firing committed."""
    listener = Listener()
    with crmkit.open(":memory:", plugins=[Sender(), Rules(), listener], clock=clock) as crm:
        lead = crm.leads.create(first_name="Eva")
        [firing] = crm.automation.firings()
        crm.automation.deliver([Created(lead)])  # re-delivered: nothing new

    assert [("Welcome new leads", firing.key, "welcomed", "lead")] == listener.heard


def test_rule_fired_failing_is_reported_and_keeps_the_firing(clock: FixedClock) -> None:
    """A listener that raises does not undo the firing; the failure is in last_delivery."""
    listener = Listener(fail=True)
    with crmkit.open(":memory:", plugins=[Sender(), Rules(), listener], clock=clock) as crm:
        crm.leads.create(first_name="Eva")

        [firing] = crm.automation.firings()
        assert crmkit.FiringStatus.DONE is firing.status
        assert ["crmkit_rule_fired"] == [f.hook for f in crm.last_delivery.failures]


def test_a_sequence_action_plans_every_step(clock: FixedClock) -> None:
    """apply_sequence plans the sequence's steps for the record's organization."""
    from crmkit.core.interactions import Sequence, SequenceStep

    with crmkit.open(":memory:", clock=clock) as crm:
        crm.interactions.sequences.register(
            Sequence(
                key="onboarding",
                name="Onboarding",
                steps=(
                    SequenceStep(kind="call"),
                    SequenceStep(kind="visit", after=timedelta(days=3)),
                ),
            )
        )
        crm.automation.create(
            name="Onboard",
            trigger=Trigger.stage_changed("qualified"),
            actions=[Action.apply_sequence("onboarding")],
        )
        acme = crm.organizations.create(name="Acme")
        deal = crm.opportunities.create(name="Deal", organization=acme)
        crm.opportunities.advance(deal.id, to="qualified")

        planned = crm.interactions.find(status="planned", order_by="scheduled_at")
        assert ["call", "visit"] == [i.kind for i in planned]
        assert {deal.id} == {i.opportunity_id for i in planned}
