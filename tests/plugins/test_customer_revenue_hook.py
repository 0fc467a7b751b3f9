"""The lookup hook crmkit_customer_revenue, behind crm.analytics.customer_value()."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

import crmkit
from crmkit import HookError, Money, Organization, ValidationError, hookimpl
from tests.conftest import FixedClock


class Erp:
    """Invoiced 500 EUR to the customer with external_ref C-1; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, datetime | None, datetime]] = []

    @hookimpl
    def crmkit_customer_revenue(
        self, organization: Organization, since: datetime | None, until: datetime
    ) -> Money | None:
        self.asked.append((organization.name, since, until))
        return Money("500", "EUR") if organization.external_ref == "C-1" else None


class Answers:
    """Returns ``value`` for every customer (or raises it, if it is an exception)."""

    def __init__(self, value: object) -> None:
        self.value = value

    @hookimpl
    def crmkit_customer_revenue(self) -> object:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def _book(crm: crmkit.CRM, clock: FixedClock) -> None:
    acme = crm.organizations.create(name="Acme", external_ref="C-1")
    globex = crm.organizations.create(name="Globex", external_ref="C-2")
    deal = crm.opportunities.create(
        name="ERP", organization=acme, stage="proposal", amount=Money("3000", "EUR"),
        expected_close=date(2026, 2, 1),
    )  # fmt: skip
    crm.opportunities.create(name="CRM", organization=globex, amount=Money("10", "EUR"))
    clock.advance(days=3)
    crm.opportunities.win(deal.id)


def test_customer_revenue_is_asked_per_customer_and_added_to_won_revenue(
    clock: FixedClock,
) -> None:
    """Acme: 3000 won + 500 invoiced; Globex: unknown to the ERP. The hook gets the window."""
    erp = Erp()
    with crmkit.open(":memory:", clock=clock, plugins=[erp]) as crm:
        _book(crm, clock)
        since = datetime(2026, 1, 1, tzinfo=UTC)
        report = crm.analytics.customer_value(currency="EUR", since=since)
    assert [
        ("Acme", Money("500", "EUR"), Money("3500", "EUR")),
        ("Globex", None, Money("0", "EUR")),
    ] == [(r.name, r.host_revenue, r.total) for r in report.rows]
    assert sorted(erp.asked) == [("Acme", since, clock()), ("Globex", since, clock())]


def test_customer_revenue_stops_at_the_first_answer(clock: FixedClock) -> None:
    """The newest plugin answers first; an older one is not needed."""
    with crmkit.open(":memory:", clock=clock, plugins=[Erp(), Answers(Money("7", "EUR"))]) as crm:
        _book(crm, clock)
        totals = {r.name: r.host_revenue for r in crm.analytics.customer_value(currency="EUR").rows}
    assert {"Acme": Money("7", "EUR"), "Globex": Money("7", "EUR")} == totals


@pytest.mark.parametrize("answer", [500, "500 EUR", RuntimeError("ERP down")])
def test_customer_revenue_wrong_answers_are_hook_errors(clock: FixedClock, answer: object) -> None:
    """Not Money, or an exception: a HookError naming the hook."""
    with crmkit.open(":memory:", clock=clock, plugins=[Answers(answer)]) as crm:
        _book(crm, clock)
        with pytest.raises(HookError) as caught:
            crm.analytics.customer_value(currency="EUR")
    assert "crmkit_customer_revenue" in str(caught.value)


def test_customer_revenue_crmkit_errors_pass_unchanged(clock: FixedClock) -> None:
    """A plugin's ValidationError reaches the caller as it is."""
    error = ValidationError("customer", "unknown in the ERP", code="invalid")
    with crmkit.open(":memory:", clock=clock, plugins=[Answers(error)]) as crm:
        _book(crm, clock)
        with pytest.raises(ValidationError) as caught:
            crm.analytics.customer_value(currency="EUR", as_of=clock() + timedelta(days=1))
    assert caught.value is error
