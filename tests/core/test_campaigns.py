"""Campaign results as a pure function: attribution, duplicates, cost per lead, ROI."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit import (
    Campaign,
    CampaignStatus,
    CurrencyMismatchError,
    Lead,
    LeadStatus,
    Money,
    Opportunity,
    StageKind,
    ValidationError,
)
from crmkit.core import changes
from crmkit.core.campaigns import CAMPAIGN_FLOW, check_move, results
from crmkit.core.ids import OrganizationId, uuid7

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _campaign(**values: object) -> Campaign:
    campaign, _ = changes.create(Campaign, id=uuid7(), now=NOW, name="Feria", **values)
    return campaign


def _opp(campaign: Campaign | None, amount: str, status: StageKind = StageKind.WON) -> Opportunity:
    opp, _ = changes.create(
        Opportunity,
        id=uuid7(),
        now=NOW,
        name="deal",
        organization_id=OrganizationId(uuid7()),
        pipeline="sales",
        stage=status.value,
        status=status,
        amount=Money(amount, "EUR"),
        closed_at=NOW if status is not StageKind.OPEN else None,
        campaign_id=None if campaign is None else campaign.id,
    )
    return opp


def _lead(campaign: Campaign, opportunity: Opportunity | None = None) -> Lead:
    lead, _ = changes.create(
        Lead,
        id=uuid7(),
        now=NOW,
        company="Globex",
        campaign_id=campaign.id,
        status=LeadStatus.CONVERTED if opportunity else LeadStatus.NEW,
        opportunity_id=None if opportunity is None else opportunity.id,
    )
    return lead


def test_results_add_up_wins_and_divide_cost() -> None:
    """Won 3000 + 1000 for a cost of 1000 over 4 leads: 250 per lead, ROI 3."""
    campaign = _campaign(actual_cost=Money("1000", "EUR"))
    opps = [_opp(campaign, "3000"), _opp(campaign, "1000"), _opp(campaign, "500", StageKind.LOST)]
    leads = [_lead(campaign) for _ in range(4)]
    got = results(campaign, leads, opps)
    assert (Money("4000", "EUR"), Money("250", "EUR"), Decimal("3"), 2, 3) == (
        got.won_value,
        got.cost_per_lead,
        got.roi,
        got.won,
        got.opportunities,
    )


@given(copies=st.lists(st.integers(1, 4), min_size=3, max_size=3))
def test_roi_is_unchanged_when_rows_are_duplicated_by_joins(copies: list[int]) -> None:
    """The SuiteCRM bug: each opportunity and lead repeated n times (as joins repeat rows),
    and a won opportunity reached both directly and through a converted lead: same results."""
    campaign = _campaign(actual_cost=Money("800", "EUR"))
    direct, via_lead, other = _opp(campaign, "1000"), _opp(None, "600"), _opp(None, "9999")
    leads = [_lead(campaign, via_lead), _lead(campaign, direct), _lead(campaign)]
    once = results(campaign, leads, [direct, via_lead, other])
    duplicated = results(
        campaign,
        leads * copies[0],
        [direct] * copies[1] + [via_lead] * copies[2] + [other, direct],
    )
    assert once == duplicated
    assert (Money("1600", "EUR"), Decimal("1"), 2, 3) == (
        once.won_value,
        once.roi,
        once.won,
        once.leads,
    )


def test_a_win_in_another_currency_needs_a_conversion() -> None:
    """USD won against a EUR cost: converted when asked, an error otherwise."""
    campaign = _campaign(actual_cost=Money("100", "EUR"))
    usd, _ = changes.create(
        Opportunity,
        id=uuid7(),
        now=NOW,
        name="deal",
        organization_id=OrganizationId(uuid7()),
        pipeline="sales",
        stage="won",
        status=StageKind.WON,
        amount=Money("110", "USD"),
        closed_at=NOW,
        campaign_id=campaign.id,
    )

    def convert(money: Money, currency: str, on: date) -> Money:
        assert (currency, on) == ("EUR", NOW.date())
        return Money(money.amount / Decimal("1.1"), currency)

    assert Money("100", "EUR") == results(campaign, [], [usd], convert=convert).won_value
    with pytest.raises(CurrencyMismatchError):
        results(campaign, [], [usd])


def test_without_cost_or_leads_there_is_no_ratio() -> None:
    """No cost: no ROI and no cost per lead; no opportunities: no conversion rate."""
    got = results(_campaign(), [], [])
    assert (None, None, None, None) == (
        got.roi,
        got.cost_per_lead,
        got.conversion_rate,
        got.won_value,
    )


def test_the_status_flow_ends_in_completed_or_cancelled() -> None:
    """Only planned -> active -> completed, and cancelling before the end."""
    campaign = _campaign()
    check_move(campaign, CampaignStatus.ACTIVE)
    assert set() == set(CAMPAIGN_FLOW[CampaignStatus.COMPLETED])
    assert set() == set(CAMPAIGN_FLOW[CampaignStatus.CANCELLED])


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"starts_on": date(2026, 3, 2), "ends_on": date(2026, 3, 1)}, "ends_on"),
        ({"actual_cost": Money("-5", "EUR")}, "actual_cost"),
        ({"members": ["not an id"]}, "members[0]"),
    ],
)
def test_an_invalid_campaign_cannot_exist(values: dict[str, object], field: str) -> None:
    """A period ending before it starts, a negative cost, a member that is not an id."""
    with pytest.raises(ValidationError) as info:
        _campaign(**values)
    assert field == info.value.field
