"""crm.analytics on every store: interaction, campaign and customer analytics."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

import crmkit
from crmkit import Money, hookimpl
from crmkit.core.insights import Health
from tests.conftest import FixedClock


def EUR(amount: str) -> Money:  # noqa: N802
    """``amount`` euros."""
    return Money(amount, "EUR")


@pytest.fixture
def book(any_crm: crmkit.CRM, clock: FixedClock) -> crmkit.CRM:
    """Ana calls Acme (interés inicial) and a deal follows 3 days later, won on day 10
    through the Feria campaign (cost 1000); Globex was never called."""
    crm = any_crm
    ana = crm.users.create(name="Ana", email="ana@example.com")
    acme = crm.organizations.create(name="Acme")
    crm.organizations.create(name="Globex")
    feria = crm.campaigns.create(name="Feria", actual_cost=EUR("1000"))
    crm.interactions.log(
        kind="call", organization=acme, outcome="initial-interest", assignee=ana,
        occurred_at=clock(), campaign=feria,
    )  # fmt: skip
    clock.advance(days=3)
    deal = crm.opportunities.create(
        name="ERP", organization=acme, stage="proposal", amount=EUR("3000"), owner=ana,
        expected_close=date(2026, 2, 1), campaign=feria,
    )  # fmt: skip
    clock.advance(days=7)
    crm.opportunities.win(deal.id)
    clock.advance(days=1)
    return crm


def test_interaction_results_through_the_facade(book: crmkit.CRM) -> None:
    """One call, with an outcome, that led to the deal."""
    report = book.analytics.interaction_results(by="kind")
    assert [("call", 1, 1, 1)] == [
        (r.key, r.done, r.with_outcome, r.led_to_opportunity) for r in report.rows
    ]
    before = book.analytics.interaction_results(as_of=book.now() - timedelta(days=9))
    assert (1, 0) == (before.total.done, before.total.led_to_opportunity)


def test_campaign_roi_through_the_facade(book: crmkit.CRM) -> None:
    """Feria: 3000 won for 1000: ROI 2."""
    [row] = book.analytics.campaign_roi(currency="EUR").rows
    assert ("Feria", 1, EUR("3000"), EUR("1000"), Decimal("2.0000")) == (
        row.name,
        row.won,
        row.won_value,
        row.cost,
        row.roi,
    )


def test_customers_reps_retention_and_health_through_the_facade(book: crmkit.CRM) -> None:
    """Acme is worth 3000; Ana won it with one call; Acme is active, Globex never called."""
    [acme] = book.analytics.customer_value(currency="EUR").rows
    assert ("Acme", EUR("3000")) == (acme.name, acme.total)
    [ana] = book.analytics.rep_performance(currency="EUR").rows
    assert (1, EUR("3000"), 1) == (ana.won, ana.won_value, ana.activities)
    [cohort] = book.analytics.retention(by="month").cohorts
    assert ("2026-01", 1, ()) == (cohort.period.label, cohort.customers, cohort.retained)
    health = book.analytics.relationship_health()
    assert [("Globex", Health.NEVER), ("Acme", Health.ACTIVE)] == [
        (r.name, r.health) for r in health.rows
    ]


class Rates:
    """USD -> EUR at 0.9 every day."""

    @hookimpl
    def crmkit_exchange_rate(self, base: str, quote: str, on: date) -> Decimal | None:
        return Decimal("0.9") if (base, quote) == ("USD", "EUR") else None


def test_dollar_costs_and_wins_convert_through_the_rate_plugin(
    backend_url: str, clock: FixedClock
) -> None:
    """A USD 1000 campaign that won USD 3000: EUR 900 cost, EUR 2700 won, ROI 2; no rate, no sum."""
    with crmkit.open(backend_url, clock=clock, plugins=[Rates()]) as crm:
        acme = crm.organizations.create(name="Acme")
        fair = crm.campaigns.create(name="Fair", actual_cost=Money("1000", "USD"))
        deal = crm.opportunities.create(
            name="ERP", organization=acme, stage="proposal", amount=Money("3000", "USD"),
            expected_close=date(2026, 2, 1), campaign=fair,
        )  # fmt: skip
        crm.opportunities.win(deal.id)
        [row] = crm.analytics.campaign_roi(currency="EUR").rows
        assert (EUR("2700"), EUR("900"), Decimal("2.0000")) == (row.won_value, row.cost, row.roi)
        [customer] = crm.analytics.customer_value(currency="EUR").rows
        assert EUR("2700") == customer.total
        with pytest.raises(crmkit.ValidationError) as caught:
            crm.analytics.campaign_roi(currency="GBP")
        assert "no_rate" == caught.value.code
