"""Interaction, campaign and customer analytics over a book rebuilt as of a moment."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import Money, ValidationError
from crmkit.core import changes
from crmkit.core.analytics import PeriodKind, win_rates
from crmkit.core.campaigns import Campaign, results
from crmkit.core.entities import Organization
from crmkit.core.ids import OpportunityId, OrganizationId, OutcomeId, uuid7
from crmkit.core.insights import (
    ActivityDimension,
    Health,
    campaign_roi,
    customer_value,
    interaction_results,
    relationship_health,
    rep_performance,
    retention,
)
from crmkit.core.interactions import Interaction, InteractionStatus
from crmkit.core.leads import Lead, LeadStatus
from crmkit.core.transitions import lose, win
from tests.core.test_analytics import (
    CAMPAIGNS,
    EUR,
    LATER,
    ORGANIZATIONS,
    OWNERS,
    REASONS,
    T0,
    Deal,
    _book,
    _do,
    _opened,
    deals,
    moments,
)

ACME, GLOBEX, INITECH = ORGANIZATIONS
ANA, LUIS = OWNERS


def _done(days: float, **values: Any) -> Interaction:
    """A done call ``days`` after T0 with Acme."""
    fields: dict[str, Any] = {
        "kind": "call",
        "status": InteractionStatus.DONE,
        "occurred_at": T0 + timedelta(days=days),
        "organization_id": ACME,
    }
    fields.update(values)
    item, _ = changes.create(Interaction, id=uuid7(), now=T0, **fields)
    return item


def _won(org: OrganizationId, amount: str, opened: float, closed: float, **kw: Any) -> Deal:
    deal = _opened(
        at=T0 + timedelta(days=opened), stage="proposal", amount=EUR(amount),
        expected_close=(T0 + timedelta(days=closed)).date(), organization_id=org, **kw,
    )  # fmt: skip
    return _do(deal, win, closed)


def _organization(org_id: OrganizationId, name: str) -> Organization:
    org, _ = changes.create(Organization, id=org_id, now=T0, name=name)
    return org


# ================================================================= interactions


def test_an_interaction_led_to_an_opportunity_opened_after_it_within_the_window() -> None:
    """Call on day 1, deal on day 10: led. Call on day 20 about it: follow-up, not led."""
    deal = _opened(at=T0 + timedelta(days=10), organization_id=ACME, amount=EUR("5"))
    outcome = OutcomeId(uuid7())
    calls = [
        _done(1, outcome_id=outcome, assignee_id=ANA),
        _done(20, opportunity_id=deal.opp.id, assignee_id=ANA),
        _done(2, kind="email", organization_id=GLOBEX, assignee_id=LUIS),
        _done(-40),  # 50 days before the deal: outside the 30-day window
    ]
    planned, _ = changes.create(
        Interaction, id=uuid7(), now=T0, kind="call", organization_id=ACME,
        scheduled_at=T0 + timedelta(days=3),
    )  # fmt: skip

    report = interaction_results([*calls, planned], _book([deal]), as_of=LATER, by="kind")

    assert [("call", 3, 1, 1, 1), ("email", 1, 0, 0, 0)] == [
        (r.key, r.done, r.with_outcome, r.led_to_opportunity, r.opportunities) for r in report.rows
    ]
    assert (4, 1, Decimal("0.25")) == (
        report.total.done,
        report.total.led_to_opportunity,
        report.total.conversion,
    )
    by_user = interaction_results(calls, _book([deal]), as_of=LATER, by=ActivityDimension.USER)
    assert [str(ANA), str(LUIS), None] == [r.key for r in by_user.rows]
    by_month = interaction_results(calls, _book([deal]), as_of=LATER, by="month")
    assert ["2025-11", "2026-01"] == [r.key for r in by_month.rows]


def test_interactions_after_as_of_and_opportunities_opened_after_it_do_not_count() -> None:
    """As of day 5: the deal of day 10 did not exist yet, nor the call of day 20."""
    deal = _opened(at=T0 + timedelta(days=10), organization_id=ACME, amount=EUR("5"))
    report = interaction_results([_done(1), _done(20)], _book([deal]), as_of=T0 + timedelta(days=5))
    assert (1, 0) == (report.total.done, report.total.led_to_opportunity)


@settings(max_examples=50)
@given(st.lists(deals(), max_size=6), moments, st.sampled_from(ActivityDimension))
def test_interaction_groups_add_up_to_the_total(
    items: list[Deal], at: datetime, by: ActivityDimension
) -> None:
    """Every counted interaction is in one group; led never exceeds done."""
    calls = [_done(d, organization_id=org) for d, org in ((1, ACME), (30, GLOBEX), (200, INITECH))]
    report = interaction_results(calls, _book(items), as_of=at, by=by)
    assert sum(r.done for r in report.rows) == report.total.done
    assert sum(r.led_to_opportunity for r in report.rows) == report.total.led_to_opportunity
    assert all(r.led_to_opportunity <= r.done for r in report.rows)


def test_interaction_results_refuse_bad_arguments() -> None:
    """An unknown dimension or a window that is not positive is a ValidationError."""
    with pytest.raises(ValidationError) as caught:
        interaction_results([], _book([]), as_of=LATER, by="colour")
    assert "by" == caught.value.field
    with pytest.raises(ValidationError) as caught:
        interaction_results([], _book([]), as_of=LATER, window=timedelta(0))
    assert ("window", "range") == (caught.value.field, caught.value.code)


# ==================================================================== campaigns


def _campaign(name: str, cost: str | None) -> Campaign:
    campaign, _ = changes.create(
        Campaign, id=CAMPAIGNS[0] if name == "Feria" else CAMPAIGNS[1], now=T0, name=name,
        actual_cost=None if cost is None else EUR(cost),
    )  # fmt: skip
    return campaign


def _lead(campaign: Campaign, opportunity: OpportunityId | None = None) -> Lead:
    lead, _ = changes.create(
        Lead, id=uuid7(), now=T0, company="Globex", campaign_id=campaign.id,
        status=LeadStatus.CONVERTED if opportunity else LeadStatus.NEW, opportunity_id=opportunity,
    )  # fmt: skip
    return lead


def test_campaign_cost_counts_once_however_many_wins_and_join_rows() -> None:
    """Feria cost 1000 and brought two wins (3000 + 1000, one through a lead): ROI 3."""
    feria, web = _campaign("Feria", "1000"), _campaign("Web", None)
    direct = _won(ACME, "3000", 0, 5, campaign_id=feria.id)
    via_lead = _won(GLOBEX, "1000", 0, 6)
    lost = _do(_opened(amount=EUR("50"), campaign_id=web.id), lose, 4, reason=REASONS[0], note=None)
    leads = [_lead(feria, via_lead.opp.id), _lead(feria)]
    book = _book([direct, via_lead, lost])

    report = campaign_roi(book, [feria, web, feria], leads + leads, as_of=LATER, currency="EUR")

    rows = {r.name: r for r in report.rows}
    assert (2, 2, 2, EUR("4000"), EUR("1000"), Decimal("3.0000")) == (
        rows["Feria"].leads,
        rows["Feria"].opportunities,
        rows["Feria"].won,
        rows["Feria"].won_value,
        rows["Feria"].cost,
        rows["Feria"].roi,
    )
    assert (0, 1, 0, None, None) == (
        rows["Web"].leads, rows["Web"].opportunities, rows["Web"].won, rows["Web"].cost,
        rows["Web"].roi,
    )  # fmt: skip
    assert (EUR("4000"), EUR("1000"), Decimal("3.0000")) == (
        report.total.won_value,
        report.total.cost,
        report.total.roi,
    )
    classic = results(feria, leads, [d.opp for d in (direct, via_lead, lost)])
    assert (classic.won, classic.won_value, classic.roi) == (
        rows["Feria"].won,
        rows["Feria"].won_value,
        rows["Feria"].roi,
    )


def test_a_deal_of_two_campaigns_counts_once_in_the_total() -> None:
    """One 2000 win named by Web and converted from a Feria lead: in both rows, once in total."""
    feria, web = _campaign("Feria", "500"), _campaign("Web", "500")
    deal = _won(ACME, "2000", 0, 5, campaign_id=web.id)
    report = campaign_roi(
        _book([deal]), [feria, web], [_lead(feria, deal.opp.id)], as_of=LATER, currency="EUR"
    )
    assert [EUR("2000"), EUR("2000")] == [r.won_value for r in report.rows]
    assert (1, EUR("2000"), EUR("1000"), Decimal("1.0000")) == (
        report.total.won,
        report.total.won_value,
        report.total.cost,
        report.total.roi,
    )


def test_a_win_after_as_of_is_not_a_win_yet() -> None:
    """As of day 3 the deal won on day 5 was still open."""
    feria = _campaign("Feria", "1000")
    deal = _won(ACME, "3000", 0, 5, campaign_id=feria.id)
    report = campaign_roi(_book([deal]), [feria], [], as_of=T0 + timedelta(days=3), currency="EUR")
    assert (1, 0, Decimal("-1.0000")) == (
        report.rows[0].opportunities,
        report.rows[0].won,
        report.rows[0].roi,
    )


@settings(max_examples=50)
@given(st.lists(deals(), max_size=6), moments, st.integers(1, 3))
def test_repeated_rows_never_change_campaign_roi(
    items: list[Deal], at: datetime, times: int
) -> None:
    """Campaigns and leads given several times (rows of a join) count once."""
    feria, web = _campaign("Feria", "700"), _campaign("Web", None)
    leads = [_lead(feria, items[0].opp.id)] if items else [_lead(web)]
    book = _book(items)
    once = campaign_roi(book, [feria, web], leads, as_of=at, currency="EUR")
    again = campaign_roi(book, [feria, web] * times, leads * times, as_of=at, currency="EUR")
    assert once == again
    assert sum(r.won for r in once.rows) >= once.total.won
    assert once.total.cost == EUR("700")


# ==================================================================== customers


def test_customer_value_adds_host_revenue_and_sorts_by_total() -> None:
    """Acme won 3000 (+ 500 invoiced by the ERP); Globex won 1000 and has 200 open."""
    deals_ = [
        _won(ACME, "3000", 0, 5),
        _won(GLOBEX, "1000", 0, 6),
        _opened(amount=EUR("200"), organization_id=GLOBEX),
    ]
    report = customer_value(
        _book(deals_), as_of=LATER, currency="EUR",
        host_revenue={ACME: EUR("500"), INITECH: EUR("50")}, names={ACME: "Acme"},
    )  # fmt: skip
    assert [
        ("Acme", 1, EUR("3000"), EUR("500"), EUR("3500"), EUR("0")),
        ("", 1, EUR("1000"), None, EUR("1000"), EUR("200")),
        ("", 0, EUR("0"), EUR("50"), EUR("50"), EUR("0")),
    ] == [(r.name, r.won, r.won_value, r.host_revenue, r.total, r.open_value) for r in report.rows]
    since = customer_value(
        _book(deals_), as_of=LATER, currency="EUR", since=T0 + timedelta(days=5, hours=12)
    )
    assert [EUR("1000"), EUR("0")] == [r.won_value for r in since.rows]
    assert since.rows[1].first_won == T0 + timedelta(days=5)  # first win is all-time


def test_host_revenue_in_another_currency_needs_a_rate() -> None:
    """No silent sums: USD host revenue in an EUR report without a rate fails."""
    with pytest.raises(ValidationError) as caught:
        customer_value(
            _book([]), as_of=LATER, currency="EUR", host_revenue={ACME: Money("5", "USD")}
        )
    assert "no_rate" == caught.value.code


def test_retention_counts_customers_who_won_again_in_later_periods() -> None:
    """As of Q3 2026. Acme: first win Q1, again in Q3. Globex: Q1 only. Initech: first win Q2."""
    items = [
        _won(ACME, "1", 0, 10),
        _won(ACME, "1", 100, 200),
        _won(GLOBEX, "1", 0, 20),
        _won(INITECH, "1", 50, 120),
    ]
    report = retention(_book(items), as_of=T0 + timedelta(days=260), by="quarter")
    assert [("2026-Q1", 2, (0, 1)), ("2026-Q2", 1, (0,))] == [
        (c.period.label, c.customers, c.retained) for c in report.cohorts
    ]
    assert (Decimal(0), Decimal("0.5")) == report.cohorts[0].rates
    table = report.table()
    assert ("cohort", "customers", "+1", "+2") == table.columns
    assert ("2026-Q2", 1, Decimal(0), None) == table.rows[1]


@settings(max_examples=50)
@given(st.lists(deals(), max_size=8), moments, st.sampled_from(PeriodKind))
def test_no_cohort_retains_more_customers_than_it_has(
    items: list[Deal], at: datetime, kind: PeriodKind
) -> None:
    """Retained counts are between 0 and the cohort's size; cohorts partition the customers."""
    book = _book(items)
    report = retention(book, as_of=at, by=kind)
    customers = {
        d.organization_id for d in book.at(at) if d.status.value == "won" and d.organization_id
    }
    assert sum(c.customers for c in report.cohorts) == len(customers)
    for cohort in report.cohorts:
        assert all(0 <= n <= cohort.customers for n in cohort.retained)


# ======================================================================== reps


@settings(max_examples=50)
@given(st.lists(deals(), max_size=8), moments)
def test_rep_performance_agrees_with_win_rates_by_owner(items: list[Deal], at: datetime) -> None:
    """Won, lost and won value per owner are those of win_rates(by="owner")."""
    book = _book(items)
    reps = {r.owner_id: r for r in rep_performance(book, [], as_of=at, currency="EUR").rows}
    for group in win_rates(book, by="owner", as_of=at, currency="EUR"):
        rep = reps[group.key]
        assert (rep.won, rep.lost, rep.won_value) == (group.won, group.lost, group.won_value)
        assert rep.win_rate == group.by_count
        assert rep.weighted <= rep.open_value


def test_rep_performance_counts_activity_per_assignee() -> None:
    """Ana won 3000 and made two calls; Luis made one call and has nothing else."""
    deal = _won(ACME, "3000", 0, 5, owner_id=ANA)
    calls = [_done(1, assignee_id=ANA), _done(2, assignee_id=ANA), _done(3, assignee_id=LUIS)]
    rows = rep_performance(_book([deal]), calls, as_of=LATER, currency="EUR").rows
    assert [(str(ANA), 1, EUR("3000"), 2), (str(LUIS), 0, EUR("0"), 1)] == [
        (r.owner_id, r.won, r.won_value, r.activities) for r in rows
    ]


# ========================================================= relationship health


def test_relationship_health_by_recency_and_frequency() -> None:
    """Acme last seen 10 days ago (3 in 90 days), Globex 60, Initech 200, a fourth never."""
    at = T0 + timedelta(days=300)
    quiet = OrganizationId(uuid7())
    calls = [
        _done(290),
        _done(250),
        _done(220),
        _done(100),
        _done(240, organization_id=GLOBEX),
        _done(100, organization_id=INITECH),
        _done(299, organization_id=INITECH, status=InteractionStatus.CANCELLED),
        _done(301, organization_id=quiet),  # after as_of
    ]
    orgs = [
        _organization(ACME, "Acme"),
        _organization(GLOBEX, "Globex"),
        _organization(INITECH, "Initech"),
        _organization(quiet, "Quiet"),
    ]
    report = relationship_health(orgs, calls, as_of=at)
    assert [
        ("Quiet", None, 0, Health.NEVER),
        ("Initech", 200, 0, Health.COLD),
        ("Globex", 60, 1, Health.COOLING),
        ("Acme", 10, 3, Health.ACTIVE),
    ] == [(r.name, r.days_since, r.recent, r.health) for r in report.rows]
    assert {Health.ACTIVE: 1, Health.COOLING: 1, Health.COLD: 1, Health.NEVER: 1} == (
        report.counts()
    )


def test_relationship_health_refuses_an_active_span_longer_than_the_window() -> None:
    """active_within must fit in window."""
    with pytest.raises(ValidationError) as caught:
        relationship_health([], [], as_of=LATER, active_within=timedelta(days=100))
    assert ("active_within", "range") == (caught.value.field, caught.value.code)


def test_every_insight_is_a_table() -> None:
    """Each result gives a DataFrame with its table's columns."""
    book = _book([_won(ACME, "3000", 0, 5, owner_id=ANA)])
    reports = [
        interaction_results([_done(1)], book, as_of=LATER, by="outcome"),
        campaign_roi(book, [_campaign("Feria", "10")], [], as_of=LATER, currency="EUR"),
        customer_value(book, as_of=LATER, currency="EUR"),
        retention(book, as_of=LATER),
        rep_performance(book, [], as_of=LATER, currency="EUR"),
        relationship_health([_organization(ACME, "Acme")], [_done(1)], as_of=LATER),
    ]
    for report in reports:
        assert list(report.table().columns) == list(report.to_pandas().columns)
        assert "<table>" in report._repr_html_()
