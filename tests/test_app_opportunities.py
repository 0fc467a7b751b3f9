"""Opportunities through the facade: creation, moves, the ERP bridge, search."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

import crmkit
from crmkit import (
    HookError,
    InvalidTransition,
    Money,
    Opportunity,
    Range,
    StageKind,
    ValidationError,
    hookimpl,
)
from crmkit.stores.sql import SqlStore
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock

EUR = "EUR"


@pytest.fixture
def acme(any_crm: crmkit.CRM) -> crmkit.Organization:
    return any_crm.organizations.create(name="Acme S.A.")


def _opp(crm: crmkit.CRM, org: crmkit.Organization, **values: Any) -> Opportunity:
    return crm.opportunities.create(name="ERP para Acme", organization=org, **values)


def test_a_new_opportunity_starts_in_the_first_open_stage(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """Stage, status, probability and a one-entry history come from the pipeline."""
    opp = _opp(any_crm, acme)
    sales = any_crm.pipelines.get("sales")
    assert (sales.initial.key, StageKind.OPEN) == (opp.stage, opp.status)
    assert sales.initial.probability == opp.probability
    assert [(None, sales.initial.key)] == [(c.source, c.target) for c in opp.history]
    assert opp == any_crm.opportunities.get(opp.id)


def test_an_opportunity_needs_an_organization_or_a_contact(any_crm: crmkit.CRM) -> None:
    """Neither given: ValidationError on organization; a contact brings its organization."""
    with pytest.raises(ValidationError) as info:
        any_crm.opportunities.create(name="Orphan")
    assert ("organization", "required") == (info.value.field, info.value.code)
    org = any_crm.organizations.create(name="Globex")
    ana = any_crm.contacts.create(first_name="Ana", organization=org)
    opp = any_crm.opportunities.create_from(ana, name="Via Ana")
    assert (org.id, ana.id) == (opp.organization_id, opp.contact_id)


def test_an_unknown_pipeline_is_a_validation_error(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """pipeline="nope" names the field and changes nothing."""
    with pytest.raises(ValidationError) as info:
        _opp(any_crm, acme, pipeline="nope")
    assert "pipeline" == info.value.field
    assert 0 == any_crm.opportunities.count()


def test_an_illegal_move_names_both_stages_and_changes_nothing(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """lead -> negotiation is not a move the sales pipeline allows."""
    opp = _opp(any_crm, acme)
    with pytest.raises(InvalidTransition) as info:
        any_crm.opportunities.advance(opp.id, to="negotiation")
    assert (opp.stage, "negotiation") == (info.value.source, info.value.target)
    assert opp == any_crm.opportunities.get(opp.id)


def test_a_stage_requirement_is_enforced(any_crm: crmkit.CRM, acme: crmkit.Organization) -> None:
    """The proposal stage needs an amount."""
    opp = _opp(any_crm, acme)
    opp = any_crm.opportunities.advance(opp.id, to="qualified")
    with pytest.raises(ValidationError) as info:
        any_crm.opportunities.advance(opp.id, to="proposal")
    assert "amount" == info.value.field
    opp = any_crm.opportunities.update(
        opp.id, expected_version=opp.version, amount=Money("12000", EUR)
    )
    assert "proposal" == any_crm.opportunities.advance(opp.id, to="proposal").stage


def _to_negotiation(crm: crmkit.CRM, org: crmkit.Organization) -> Opportunity:
    opp = _opp(crm, org, amount=Money("12000", EUR), expected_close=date(2026, 3, 31))
    for stage in ("qualified", "proposal", "negotiation"):
        opp = crm.opportunities.advance(opp.id, to=stage)
    return opp


def test_winning_sets_probability_one_and_the_close_time(
    any_crm: crmkit.CRM, acme: crmkit.Organization, clock: FixedClock
) -> None:
    """A won opportunity has probability 1, closed_at now and a final stage."""
    opp = _to_negotiation(any_crm, acme)
    clock.advance(days=3)
    won = any_crm.opportunities.win(opp.id)
    assert (StageKind.WON, Decimal(1), clock.current) == (
        won.status,
        won.probability,
        won.closed_at,
    )
    with pytest.raises(InvalidTransition):
        any_crm.opportunities.advance(won.id, to="proposal")
    reopened = any_crm.opportunities.reopen(won.id)
    assert StageKind.OPEN == reopened.status
    assert ["create", "update", "update", "update", "update", "update"] == [
        e.action.value for e in any_crm.history(won.id)
    ]


class SalesOrders:
    """A host ERP: creates an order per won opportunity, or fails."""

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.seen_inside: list[bool] = []

    @hookimpl
    def crmkit_create_sales_order(self, crm: crmkit.CRM, opportunity: Opportunity) -> str:
        # the opportunity is not committed yet: this runs in the winning transaction
        self.seen_inside.append(crm.opportunities.get(opportunity.id).status is StageKind.OPEN)
        if self.fail:
            raise RuntimeError("ERP is down")
        return f"SO-{opportunity.name[:3].upper()}"


def test_a_won_opportunity_stores_the_hosts_sales_order_and_notifies_once(
    clock: FixedClock, backend_url: str
) -> None:
    """The reference is stored; stage_changed and won fire once, after commit."""
    erp, recorder = SalesOrders(), RecordingPlugin()
    with crmkit.open(backend_url, clock=clock, plugins=[erp, recorder]) as crm:
        org = crm.organizations.create(name="Acme")
        opp = _to_negotiation(crm, org)
        won = crm.opportunities.win(opp.id)
        assert "SO-ERP" == won.sales_order_ref
        assert "SO-ERP" == crm.opportunities.get(opp.id).sales_order_ref
        assert [True] == erp.seen_inside
        names = [c.name for c in recorder.calls]
        assert 1 == names.count("crmkit_opportunity_won")
        assert 4 == names.count("crmkit_opportunity_stage_changed")
        assert 0 == names.count("crmkit_opportunity_lost")


def _snapshot(crm: crmkit.CRM, opp: Opportunity) -> Any:
    """Every row of the opportunities and audit tables (SQL), or the records (memory)."""
    store = crm.store
    if isinstance(store, SqlStore):
        with store.engine.connect() as conn:
            return [
                conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1")).all()
                for t in ("opportunities", "audit_log")
            ]
    return (crm.opportunities.get(opp.id), crm.history(opp.id))


def test_a_failing_sales_order_rolls_the_win_back_row_by_row(
    clock: FixedClock, backend_url: str
) -> None:
    """HookError names the plugin; the opportunity, history and audit rows are as before."""
    erp = SalesOrders(fail=True)
    with crmkit.open(backend_url, clock=clock, plugins=[erp]) as crm:
        org = crm.organizations.create(name="Acme")
        opp = _to_negotiation(crm, org)
        before = _snapshot(crm, opp)
        with pytest.raises(HookError) as info:
            crm.opportunities.win(opp.id)
        assert "crmkit_create_sales_order" == info.value.hook
        assert not info.value.committed
        assert "ERP is down" in info.value.reason
        assert before == _snapshot(crm, opp)


def test_losing_needs_a_reason_and_other_needs_a_note(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """lose(reason="other") without a note is refused; with one it is lost."""
    opp = _opp(any_crm, acme)
    with pytest.raises(ValidationError):
        any_crm.opportunities.lose(opp.id, reason="nope")
    with pytest.raises(ValidationError) as info:
        any_crm.opportunities.lose(opp.id, reason="other")
    assert "note" == info.value.field
    lost = any_crm.opportunities.lose(opp.id, reason="other", note="went quiet")
    reason = any_crm.loss_reasons.get_by_key("other")
    assert (StageKind.LOST, Decimal(0), reason.id) == (
        lost.status,
        lost.probability,
        lost.close_reason_id,
    )


def test_hold_remembers_the_stage_and_resume_returns_to_it(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """Held from qualified, resumed to qualified."""
    opp = any_crm.opportunities.advance(_opp(any_crm, acme).id, to="qualified")
    held = any_crm.opportunities.hold(opp.id)
    assert (StageKind.ON_HOLD, "qualified") == (held.status, held.held_from)
    resumed = any_crm.opportunities.resume(opp.id)
    assert ("qualified", StageKind.OPEN, None) == (
        resumed.stage,
        resumed.status,
        resumed.held_from,
    )


class Veto:
    @hookimpl
    def crmkit_validate_transition(self, opportunity: Opportunity, target: str) -> None:
        if target == "qualified" and opportunity.amount is None:
            raise ValidationError("amount", "our policy: qualify only with an amount")


def test_a_plugin_validator_vetoes_a_move_before_anything_is_written(
    clock: FixedClock, backend_url: str
) -> None:
    """crmkit_validate_transition's ValidationError reaches the caller; nothing changes."""
    with crmkit.open(backend_url, clock=clock, plugins=[Veto()]) as crm:
        org = crm.organizations.create(name="Acme")
        opp = _opp(crm, org)
        with pytest.raises(ValidationError) as info:
            crm.opportunities.advance(opp.id, to="qualified")
        assert "amount" == info.value.field
        assert opp == crm.opportunities.get(opp.id)
        assert 1 == len(crm.history(opp.id))


def test_stale_expected_version_on_a_move_is_a_concurrency_error(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """A move given the version the caller saw refuses to apply to a newer record."""
    opp = _opp(any_crm, acme)
    any_crm.opportunities.advance(opp.id, to="qualified")
    with pytest.raises(crmkit.ConcurrencyError):
        any_crm.opportunities.lose(opp.id, reason="price", expected_version=opp.version)


@pytest.fixture
def book(any_crm: crmkit.CRM) -> dict[str, Opportunity]:
    ana = any_crm.users.create(name="Ana")
    acme = any_crm.organizations.create(name="Acme")
    globex = any_crm.organizations.create(name="Globex")
    crm = any_crm
    return {
        "small": crm.opportunities.create(
            name="small",
            organization=acme,
            amount=Money("500", EUR),
            owner=ana,
            expected_close=date(2026, 2, 1),
        ),
        "big": crm.opportunities.create(
            name="big",
            organization=globex,
            amount=Money("90000", EUR),
            expected_close=date(2026, 6, 30),
            pipeline="gestion-comercial",
        ),
        "dollars": crm.opportunities.create(
            name="dollars",
            organization=acme,
            amount=Money("1000", "USD"),
            expected_close=date(2026, 3, 15),
        ),
        "none": crm.opportunities.create(name="none", organization=globex),
    }


def test_find_by_pipeline_owner_organization_dates_and_amounts(
    any_crm: crmkit.CRM, book: dict[str, Opportunity]
) -> None:
    """The issue's searches, the same on every store."""
    find = any_crm.opportunities.find

    def names(found: list[Opportunity]) -> list[str]:
        return [o.name for o in found]

    assert ["big"] == names(find(pipeline="gestion-comercial"))
    assert ["small"] == names(find(owner=book["small"].owner_id))
    assert ["dollars", "small"] == names(
        find(organization=book["small"].organization_id, order_by="name")
    )
    assert ["dollars", "small"] == names(
        find(Range("expected_close", date(2026, 1, 1), date(2026, 4, 1)), order_by="name")
    )
    assert ["small"] == names(find(Range("amount", Money("100", EUR), Money("1000", EUR))))
    assert ["big", "small"] == names(find(Range("amount", Money("0", EUR), None), order_by="name"))
    # money sorts by currency, then amount; no amount last
    assert ["small", "big", "dollars", "none"] == names(find(order_by="amount"))
    assert 4 == any_crm.opportunities.count(status="open")
