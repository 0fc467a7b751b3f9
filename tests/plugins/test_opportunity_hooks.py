"""The opportunity hooks: pipelines, validation, the ERP bridge, notifications."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

import crmkit
from crmkit import (
    HookError,
    Money,
    Opportunity,
    Pipeline,
    PluginError,
    Stage,
    StageChange,
    StageKind,
    ValidationError,
    hookimpl,
)
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock


def _pipeline(key: str = "mini", *, dead_end: bool = False) -> Pipeline:
    stages = (
        Stage(key="start", label="Start", label_es="Inicio", probability=Decimal("0.3")),
        Stage(
            key="done", label="Done", label_es="Hecho", kind=StageKind.WON, probability=Decimal(1)
        ),
        Stage(key="gone", label="Gone", label_es="Perdido", kind=StageKind.LOST),
    )
    moves = {("start", "gone")} if dead_end else {("start", "done"), ("start", "gone")}
    if dead_end:  # "done" cannot be reached
        return Pipeline(key=key, name="Mini", name_es="Mini", stages=stages, transitions=moves)
    return Pipeline(key=key, name="Mini", name_es="Mini", stages=stages, transitions=moves)


class Pipelines:
    def __init__(self, *result: object) -> None:
        self.result = list(result)

    @hookimpl
    def crmkit_register_pipelines(self) -> object:
        return self.result


# ================================================== crmkit_register_pipelines


def test_register_pipelines_makes_a_plugins_pipeline_available(clock: FixedClock) -> None:
    """A registered pipeline is usable by key, beside the built-in ones."""
    with crmkit.open(":memory:", clock=clock, plugins=[Pipelines(_pipeline())]) as crm:
        assert {"sales", "gestion-comercial", "expediente", "mini"} <= set(crm.pipelines.keys())
        org = crm.organizations.create(name="Acme")
        opp = crm.opportunities.create(name="x", organization=org, pipeline="mini")
        assert "start" == opp.stage


def test_register_pipelines_rejects_an_unreachable_stage_at_open(clock: FixedClock) -> None:
    """A pipeline whose won stage cannot be reached is a PluginError at open()."""
    with pytest.raises(PluginError):
        crmkit.open(":memory:", clock=clock, plugins=[Pipelines(_pipeline(dead_end=True))])


def test_register_pipelines_rejects_a_key_registered_twice(clock: FixedClock) -> None:
    """Two plugins registering one key: PluginError."""
    with pytest.raises(PluginError):
        crmkit.open(":memory:", clock=clock, plugins=[Pipelines(_pipeline("sales"))])


def test_register_pipelines_rejects_something_else_than_pipelines(clock: FixedClock) -> None:
    """A plugin returning a dict is a PluginError."""
    with pytest.raises(PluginError):
        crmkit.open(":memory:", clock=clock, plugins=[Pipelines({"key": "x"})])


# ================================================= crmkit_validate_transition


class Refuse:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def crmkit_validate_transition(self, source: str, target: str) -> None:
        self.calls.append((source, target))
        raise self.error


def test_validate_transition_veto_reaches_the_caller_and_writes_nothing(
    clock: FixedClock,
) -> None:
    """A ValidationError vetoes the move; stage, version and history stay."""
    refuse = Refuse(ValidationError("stage", "not on Fridays"))
    with crmkit.open(":memory:", clock=clock, plugins=[refuse]) as crm:
        org = crm.organizations.create(name="Acme")
        opp = crm.opportunities.create(name="x", organization=org)
        with pytest.raises(ValidationError):
            crm.opportunities.advance(opp.id, to="qualified")
        assert [("lead", "qualified")] == refuse.calls
        assert opp == crm.opportunities.get(opp.id)


def test_validate_transition_failing_otherwise_is_a_hook_error(clock: FixedClock) -> None:
    """Any other exception becomes HookError (not committed); nothing written."""
    with crmkit.open(":memory:", clock=clock, plugins=[Refuse(KeyError("x"))]) as crm:
        org = crm.organizations.create(name="Acme")
        opp = crm.opportunities.create(name="x", organization=org)
        with pytest.raises(HookError) as info:
            crm.opportunities.hold(opp.id)
        assert not info.value.committed
        assert opp == crm.opportunities.get(opp.id)


# ================================================== crmkit_create_sales_order


def _negotiating(crm: crmkit.CRM) -> Opportunity:
    org = crm.organizations.create(name="Acme")
    opp = crm.opportunities.create(
        name="ERP",
        organization=org,
        amount=Money("12000", "EUR"),
        expected_close=date(2026, 3, 31),
    )
    for stage in ("qualified", "proposal", "negotiation"):
        opp = crm.opportunities.advance(opp.id, to=stage)
    return opp


class Orders:
    def __init__(self, result: object) -> None:
        self.result = result

    @hookimpl
    def crmkit_create_sales_order(self, opportunity: Opportunity) -> object:
        return self.result


def test_create_sales_order_reference_is_stored_on_the_won_opportunity(
    clock: FixedClock,
) -> None:
    """The first non-None reference wins and is stored."""
    with crmkit.open(":memory:", clock=clock, plugins=[Orders(None), Orders("SO-1")]) as crm:
        won = crm.opportunities.win(_negotiating(crm).id)
        assert "SO-1" == won.sales_order_ref


def test_create_sales_order_returning_nothing_leaves_no_reference(clock: FixedClock) -> None:
    """No plugin made an order: the win stands without a reference."""
    with crmkit.open(":memory:", clock=clock, plugins=[Orders(None)]) as crm:
        won = crm.opportunities.win(_negotiating(crm).id)
        assert (StageKind.WON, None) == (won.status, won.sales_order_ref)


def test_create_sales_order_returning_garbage_rolls_the_win_back(clock: FixedClock) -> None:
    """A reference that is not text is a HookError naming the plugin; still negotiating."""
    with crmkit.open(":memory:", clock=clock, plugins=[Orders(42)]) as crm:
        opp = _negotiating(crm)
        with pytest.raises(HookError) as info:
            crm.opportunities.win(opp.id)
        assert "crmkit_create_sales_order" == info.value.hook
        assert opp == crm.opportunities.get(opp.id)


# ======================================================= notifications


def test_stage_changed_won_and_lost_fire_once_after_commit(clock: FixedClock) -> None:
    """Each move notifies stage_changed once; wins and losses add won / lost."""
    recorder = RecordingPlugin()
    with crmkit.open(":memory:", clock=clock, plugins=[recorder]) as crm:
        won = crm.opportunities.win(_negotiating(crm).id)
        other = crm.opportunities.create(name="y", organization=won.organization_id)
        crm.opportunities.lose(other.id, reason="price")
        names = [c.name for c in recorder.calls if c.name.startswith("crmkit_opportunity")]
        assert 5 == names.count("crmkit_opportunity_stage_changed")
        assert 1 == names.count("crmkit_opportunity_won")
        assert 1 == names.count("crmkit_opportunity_lost")
        changes = [
            c.kwargs["change"]
            for c in recorder.calls
            if c.name == "crmkit_opportunity_stage_changed"
        ]
        assert all(isinstance(change, StageChange) for change in changes)
        assert ("negotiation", "won") == (changes[3].source, changes[3].target)


def test_notifications_do_not_fire_for_a_rolled_back_move(clock: FixedClock) -> None:
    """Moves inside a transaction that raises are never announced."""
    recorder = RecordingPlugin()
    with crmkit.open(":memory:", clock=clock, plugins=[recorder]) as crm:
        org = crm.organizations.create(name="Acme")
        opp = crm.opportunities.create(name="x", organization=org)
        recorder.calls.clear()

        def abandoned_loss() -> None:
            with crm.transaction():
                crm.opportunities.lose(opp.id, reason="price")
                raise RuntimeError("abandon")

        with pytest.raises(RuntimeError):
            abandoned_loss()
        assert [] == [c.name for c in recorder.calls if c.name.startswith("crmkit_opportunity")]
        assert StageKind.OPEN == crm.opportunities.get(opp.id).status
