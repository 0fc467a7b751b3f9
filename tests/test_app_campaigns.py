"""Campaigns through the facade: planning, launch, actions, attribution, results and ROI."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

import crmkit
from crmkit import (
    Campaign,
    CampaignId,
    CampaignKind,
    CampaignStatus,
    DuplicateError,
    Eq,
    InvalidTransition,
    Money,
    NotFoundError,
    ValidationError,
)
from crmkit.core.ids import uuid7
from tests.conftest import FixedClock

AT = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def retail(any_crm: crmkit.CRM) -> crmkit.Segment:
    """Three retail organizations (two in zone norte, one in sur), one bank, a segment of retail."""
    crm = any_crm
    crm.markets.create(key="retail", name="Retail")
    crm.markets.create(key="banca", name="Banca")
    crm.zones.create(key="norte", name="Norte")
    crm.zones.create(key="sur", name="Sur")
    crm.organizations.create(name="Acme", market="retail", zone="norte")
    crm.organizations.create(name="Beta", market="retail", zone="sur")
    crm.organizations.create(name="Cota", market="retail", zone="norte")
    crm.organizations.create(name="Banco", market="banca")
    return crm.segments.create(name="Retail", criteria=Eq("market", "retail"))


def _campaign(crm: crmkit.CRM, **values: Any) -> Campaign:
    arguments: dict[str, Any] = {
        "name": "Primavera",
        "kind": "email",
        "segment": "Retail",
        "budget": Money("2000", "EUR"),
        "actual_cost": Money("1000", "EUR"),
        **values,
    }
    return crm.campaigns.create(**arguments)


def _won(crm: crmkit.CRM, amount: str, **values: Any) -> crmkit.Opportunity:
    opp = crm.opportunities.create(
        name=f"deal {amount}",
        stage="negotiation",
        amount=Money(amount, "EUR"),
        expected_close=date(2026, 3, 1),
        **values,
    )
    return crm.opportunities.win(opp.id)


# ================================================================== planning


def test_create_plans_a_campaign_with_its_segment_budget_and_period(
    any_crm: crmkit.CRM, retail: crmkit.Segment
) -> None:
    """Segment by name, kind by value; status planned, no members yet; read back equal."""
    campaign = _campaign(any_crm, starts_on=date(2026, 3, 1), ends_on=date(2026, 3, 31))
    assert (CampaignKind.EMAIL, CampaignStatus.PLANNED, retail.id, ()) == (
        campaign.kind,
        campaign.status,
        campaign.segment_id,
        campaign.members,
    )
    assert campaign == any_crm.campaigns.get(campaign.id)
    assert campaign == any_crm.campaigns.get_by_name("Primavera")
    assert [campaign] == any_crm.campaigns.find(kind="email", budget=Money("2000", "EUR"))
    assert ["create"] == [e.action.value for e in any_crm.history(campaign.id)]


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"kind": "radio"}, "kind", "choice"),
        ({"segment": "nope"}, "segment", "reference"),
        ({"segment": uuid7()}, "segment", "reference"),
        ({"budget": Money("-1", "EUR")}, "budget", "range"),
        ({"starts_on": date(2026, 3, 2), "ends_on": date(2026, 3, 1)}, "ends_on", "range"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_create_names_the_argument_at_fault(
    any_crm: crmkit.CRM,
    retail: crmkit.Segment,
    values: dict[str, Any],
    field: str,
    code: str,
) -> None:
    """Unknown kind or segment, negative money, a period ending before it starts, no name."""
    with pytest.raises(ValidationError) as info:
        _campaign(any_crm, **values)
    assert (field, code) == (info.value.field, info.value.code)
    assert 0 == any_crm.campaigns.count()


def test_campaign_names_are_unique(any_crm: crmkit.CRM, retail: crmkit.Segment) -> None:
    """A second "Primavera": DuplicateError, one campaign."""
    _campaign(any_crm)
    with pytest.raises(DuplicateError):
        _campaign(any_crm)
    assert 1 == any_crm.campaigns.count()


# ==================================================================== launch


def test_launch_snapshots_the_segment_members(
    any_crm: crmkit.CRM, retail: crmkit.Segment, clock: FixedClock
) -> None:
    """Members are the segment's at launch; an organization joining later is not one."""
    campaign = any_crm.campaigns.launch(_campaign(any_crm))
    any_crm.organizations.create(name="Late", market="retail")
    assert (CampaignStatus.ACTIVE, clock()) == (campaign.status, campaign.launched_at)
    assert ["Acme", "Beta", "Cota"] == [o.name for o in any_crm.campaigns.members(campaign)]
    assert 4 == any_crm.segments.member_count(retail)
    assert ["create", "update"] == [e.action.value for e in any_crm.history(campaign.id)]


def test_the_status_flow_refuses_illegal_moves(any_crm: crmkit.CRM, retail: crmkit.Segment) -> None:
    """planned -> active -> completed; launching again or cancelling a completed one fails."""
    campaign = _campaign(any_crm)
    with pytest.raises(InvalidTransition):
        any_crm.campaigns.complete(campaign.id)
    any_crm.campaigns.launch(campaign.id)
    with pytest.raises(InvalidTransition) as info:
        any_crm.campaigns.launch(campaign.id)
    assert ("active", "active") == (info.value.source, info.value.target)
    assert CampaignStatus.COMPLETED == any_crm.campaigns.complete("Primavera").status
    with pytest.raises(InvalidTransition):
        any_crm.campaigns.cancel(campaign.id)
    assert CampaignStatus.CANCELLED == any_crm.campaigns.cancel(_campaign(any_crm, name="B")).status


def test_an_unknown_campaign_is_not_found(any_crm: crmkit.CRM) -> None:
    """By name or id."""
    with pytest.raises(NotFoundError):
        any_crm.campaigns.launch("nope")
    with pytest.raises(NotFoundError):
        any_crm.campaigns.results(CampaignId(uuid7()))


# =================================================================== actions


def test_plan_actions_deals_members_round_robin_once(
    any_crm: crmkit.CRM, retail: crmkit.Segment
) -> None:
    """Three members, two users: Ana, Luis, Ana; running it again plans nothing."""
    ana, luis = any_crm.users.create(name="Ana"), any_crm.users.create(name="Luis")
    campaign = any_crm.campaigns.launch(_campaign(any_crm))
    planned = any_crm.campaigns.plan_actions(campaign, kind="call", at=AT, users=[ana, luis])
    assert [ana.id, luis.id, ana.id] == [i.assignee_id for i in planned]
    assert {campaign.id} == {i.campaign_id for i in planned}
    assert {"Primavera"} == {i.subject for i in planned}
    assert list(campaign.members) == [i.organization_id for i in planned]
    assert [] == any_crm.campaigns.plan_actions(campaign, kind="call", at=AT, users=[ana])
    assert 3 == any_crm.interactions.count(campaign_id=campaign.id)


def test_plan_actions_by_zone_owner(any_crm: crmkit.CRM, retail: crmkit.Segment) -> None:
    """Norte's members go to Ana, Sur's to Luis."""
    ana, luis = any_crm.users.create(name="Ana"), any_crm.users.create(name="Luis")
    campaign = any_crm.campaigns.launch(_campaign(any_crm))
    planned = any_crm.campaigns.plan_actions(
        campaign, kind="visit", at=AT, assign="zone", zone_owners={"norte": ana, "sur": luis}
    )
    assert [ana.id, luis.id, ana.id] == [i.assignee_id for i in planned]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"kind": "fax"}, "kind"),
        ({"users": []}, "users"),
        ({"assign": "zone"}, "zone_owners"),
        ({"assign": "random"}, "assign"),
        ({"at": datetime(2026, 2, 2)}, "at"),
    ],
)
def test_plan_actions_refuses_bad_arguments_and_plans_nothing(
    any_crm: crmkit.CRM, retail: crmkit.Segment, values: dict[str, Any], field: str
) -> None:
    """Unknown kind, no users to deal to, no zone owners, unknown strategy, naive time."""
    ana = any_crm.users.create(name="Ana")
    campaign = any_crm.campaigns.launch(_campaign(any_crm))
    arguments: dict[str, Any] = {"kind": "call", "at": AT, "users": [ana], **values}
    with pytest.raises(ValidationError) as info:
        any_crm.campaigns.plan_actions(campaign, **arguments)
    assert field == info.value.field
    assert 0 == any_crm.interactions.count()


def test_a_planned_campaign_plans_no_actions(any_crm: crmkit.CRM, retail: crmkit.Segment) -> None:
    """Not launched yet: ValidationError on campaign."""
    ana = any_crm.users.create(name="Ana")
    with pytest.raises(ValidationError) as info:
        any_crm.campaigns.plan_actions(_campaign(any_crm), kind="call", at=AT, users=[ana])
    assert ("campaign", "status") == (info.value.field, info.value.code)


# =============================================================== attribution


def test_leads_and_opportunities_must_name_an_existing_campaign(any_crm: crmkit.CRM) -> None:
    """A campaign id with no campaign record: ValidationError (reference), nothing written."""
    acme = any_crm.organizations.create(name="Acme")
    with pytest.raises(ValidationError) as info:
        any_crm.opportunities.create(name="x", organization=acme, campaign=CampaignId(uuid7()))
    assert ("campaign", "reference") == (info.value.field, info.value.code)
    with pytest.raises(ValidationError):
        any_crm.leads.create(company="Globex", campaign=CampaignId(uuid7()))
    assert (0, 0) == (any_crm.opportunities.count(), any_crm.leads.count())


def test_results_count_leads_opportunities_wins_cost_per_lead_and_roi(
    any_crm: crmkit.CRM, retail: crmkit.Segment
) -> None:
    """4 leads, 3 opportunities (2 won: 1500 + 1000), cost 1000: 250 per lead, ROI 1.5."""
    campaign = any_crm.campaigns.launch(_campaign(any_crm))
    acme = any_crm.organizations.find(name="Acme")[0]
    for company in ("L1", "L2", "L3"):
        any_crm.leads.create(company=company, campaign=campaign)
    lead = any_crm.leads.create(company="Converted", campaign=campaign.id)
    converted = any_crm.leads.convert(lead.id, opportunity_name="from lead")
    assert converted.opportunity is not None
    assert campaign.id == converted.opportunity.campaign_id  # the lead's campaign carries over
    _won(any_crm, "1500", organization=acme, campaign=campaign.id)
    _won(any_crm, "1000", organization=acme, campaign=campaign.id)
    _won(any_crm, "9999", organization=acme)  # not this campaign's
    results = any_crm.campaigns.results(campaign)
    assert (3, 4, 1, 3, 2) == (
        results.members,
        results.leads,
        results.converted_leads,
        results.opportunities,
        results.won,
    )
    assert Money("2500", "EUR") == results.won_value
    assert Money("250", "EUR") == results.cost_per_lead
    assert Decimal("1.5") == results.roi
    assert Decimal("0.6667") == results.conversion_rate


def test_roi_is_unchanged_when_a_win_is_reached_by_two_paths(
    any_crm: crmkit.CRM, retail: crmkit.Segment
) -> None:
    """The SuiteCRM bug: a won opportunity that names the campaign and comes from one of its
    leads, with several campaign interactions, counts once."""
    campaign = any_crm.campaigns.launch(_campaign(any_crm))
    lead = any_crm.leads.create(company="Globex", campaign=campaign)
    conversion = any_crm.leads.convert(lead.id, opportunity_name="Globex ERP")
    assert conversion.opportunity is not None
    opp = conversion.opportunity
    opp = any_crm.opportunities.update(
        opp.id,
        expected_version=opp.version,
        amount=Money("3000", "EUR"),
        expected_close=date(2026, 3, 1),
    )
    for _ in range(3):
        any_crm.interactions.log(
            kind="call", organization=opp.organization_id, campaign=campaign.id
        )
    for stage in ("qualified", "proposal", "negotiation"):
        any_crm.opportunities.advance(opp.id, to=stage)
    won = any_crm.opportunities.win(opp.id)
    assert campaign.id == won.campaign_id
    results = any_crm.campaigns.results(campaign)
    assert (1, 1, Money("3000", "EUR"), Decimal("2")) == (
        results.opportunities,
        results.won,
        results.won_value,
        results.roi,
    )


def test_results_without_a_cost_have_no_roi(any_crm: crmkit.CRM) -> None:
    """No actual cost: no cost per lead, no ROI; the won value uses the budget's currency."""
    campaign = any_crm.campaigns.create(name="Web", kind="web", budget=Money("10", "EUR"))
    any_crm.leads.create(company="A", campaign=campaign)
    results = any_crm.campaigns.results(campaign)
    assert (1, None, None, Money("0", "EUR")) == (
        results.leads,
        results.cost_per_lead,
        results.roi,
        results.won_value,
    )


def test_update_records_the_actual_cost(any_crm: crmkit.CRM, retail: crmkit.Segment) -> None:
    """actual_cost changes, audited with old and new value."""
    campaign = _campaign(any_crm)
    updated = any_crm.campaigns.update(
        campaign.id, expected_version=campaign.version, actual_cost=Money("1200", "EUR")
    )
    assert Money("1200", "EUR") == updated.actual_cost
    (change,) = [c for c in any_crm.history(campaign.id)[-1].changes if c.field == "actual_cost"]
    assert ({"amount": "1000.00", "currency": "EUR"}, {"amount": "1200.00", "currency": "EUR"}) == (
        change.old,
        change.new,
    )


def test_campaign_is_serializable_by_the_converter(
    any_crm: crmkit.CRM, retail: crmkit.Segment
) -> None:
    """A launched campaign survives unstructure/structure unchanged."""
    from crmkit.serialization import converter

    campaign = any_crm.campaigns.launch(_campaign(any_crm, tags=["q1"]))
    assert campaign == converter.structure(converter.unstructure(campaign), Campaign)


def test_plan_actions_skips_members_archived_since_the_launch(
    any_crm: crmkit.CRM, retail: crmkit.Segment
) -> None:
    """Beta archived (or merged away) after the launch: only Acme and Cota get a call."""
    ana = any_crm.users.create(name="Ana")
    campaign = any_crm.campaigns.launch(_campaign(any_crm))
    beta = any_crm.organizations.find(name="Beta")[0]
    any_crm.organizations.archive(beta.id, expected_version=beta.version)
    planned = any_crm.campaigns.plan_actions(campaign, kind="call", at=AT, users=[ana])
    names: dict[object, str] = {o.id: o.name for o in any_crm.organizations.find(archived=None)}
    assert ["Acme", "Cota"] == [names[i.organization_id] for i in planned]
