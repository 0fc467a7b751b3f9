"""The public API's types, as a type checker sees them.

mypy checks the ``assert_type`` calls below when it runs over ``tests/``; pytest
runs them too, so every snippet is also a working example.  The last test runs
mypy on code that mixes up id types and expects it to be rejected.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import assert_type

import pytest

import crmkit
from crmkit import (
    AuditEntry,
    Contact,
    ContactId,
    Forecast,
    Market,
    MarketId,
    Money,
    Organization,
    OrganizationId,
    Position,
    SalesTarget,
    SalesTargetId,
    Source,
    Team,
    TeamId,
    User,
    UserId,
    Zone,
)
from crmkit.serialization import converter
from crmkit.stores.base import Store
from crmkit.stores.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[2]


def test_organization_service_types(crm: crmkit.CRM) -> None:
    """create and get return Organization, find a list of them, count an int."""
    acme = crm.organizations.create(name="Acme")
    assert_type(acme, Organization)
    assert_type(acme.id, OrganizationId)
    assert_type(crm.organizations.get(acme.id), Organization)
    assert_type(crm.organizations.find(name="Acme"), list[Organization])
    assert_type(crm.organizations.count(), int)
    assert_type(crm.organizations.update(acme.id, expected_version=1, name="A"), Organization)
    assert_type(crm.organizations.archive(acme.id, expected_version=2), Organization)

    assert [acme.id] == [o.id for o in crm.organizations.find(archived=None)]


def test_contact_service_types(crm: crmkit.CRM) -> None:
    """Contacts come back as Contact; at() lists them."""
    acme = crm.organizations.create(name="Acme")
    ana = crm.contacts.create(first_name="Ana", organization=acme)
    assert_type(ana, Contact)
    assert_type(ana.id, ContactId)
    assert_type(ana.organization_id, OrganizationId | None)
    assert_type(crm.contacts.at(acme), list[Contact])
    assert_type(crm.contacts.at(acme.id), list[Contact])

    assert [ana] == crm.contacts.at(acme)


def test_master_service_types(crm: crmkit.CRM) -> None:
    """Each master service returns its own master type."""
    retail = crm.markets.create(name="Retail")
    assert_type(retail, Market)
    assert_type(retail.id, MarketId)
    assert_type(crm.markets.get_by_key("retail"), Market)
    assert_type(crm.sources.get_by_key("web"), Source)
    assert_type(crm.positions.find(), list[Position])
    assert_type(crm.zones.create(name="Norte"), Zone)
    assert_type(crm.users.create(name="Ana"), User)

    assert retail == crm.markets.get_by_key("retail")


def test_duplicate_service_types(crm: crmkit.CRM) -> None:
    from crmkit.core.duplicates import Candidate, Matching
    from crmkit.core.merge import MergeJournal, MergePlan

    ana = crm.contacts.create(first_name="Ana", email="ana@acme.es")
    copy = crm.contacts.create(first_name="Ana", email="ANA@acme.es")
    matching = assert_type(crm.duplicates.find("contact"), Matching)
    assert_type(matching.candidates, tuple[Candidate, ...])
    assert_type(matching.candidates[0].probability, float)
    plan = assert_type(crm.duplicates.plan_merge(ana.id, [copy.id]), MergePlan)
    journal = assert_type(crm.duplicates.merge(plan), MergeJournal)
    assert_type(crm.duplicates.undo(journal.id), MergeJournal)


def test_segment_and_campaign_service_types(crm: crmkit.CRM) -> None:
    segment = crm.segments.create(name="all", criteria=crmkit.And())
    assert_type(segment, crmkit.Segment)
    assert_type(segment.id, crmkit.SegmentId)
    assert_type(crm.segments.members(segment), list[Organization])
    assert_type(crm.segments.member_ids("all"), list[OrganizationId])
    campaign = crm.campaigns.create(name="c", segment=segment)
    assert_type(campaign.id, crmkit.CampaignId)
    assert_type(crm.campaigns.launch(campaign), crmkit.Campaign)
    assert_type(crm.campaigns.results(campaign.id), crmkit.CampaignResults)
    assert_type(crm.campaigns.results(campaign).roi, Decimal | None)


def test_team_target_and_forecast_service_types(crm: crmkit.CRM) -> None:
    """Teams, targets and forecasts come back as their own types."""
    ana = crm.users.create(name="Ana")
    team = crm.teams.create(name="Norte", members=[ana])
    assert_type(team, Team)
    assert_type(team.id, TeamId)
    assert_type(team.member_ids, tuple[UserId, ...])
    target = crm.targets.create(amount=Money("100", "EUR"), period="2027-Q1", team=team)
    assert_type(target, SalesTarget)
    assert_type(target.id, SalesTargetId)
    assert_type(crm.targets.for_period("2027-Q1"), list[SalesTarget])
    result = crm.forecast.forecast(period="2027-Q1", currency="EUR", simulations=10)
    assert_type(result, Forecast)
    assert_type(result.p50, Money)
    assert_type(crm.forecast.attainment(target, simulations=10).probability, Decimal)

    assert [team] == crm.teams.of_user(ana)


def test_money_arithmetic_types() -> None:
    """Money + Money and Money - Money are Money; amount is a Decimal."""
    total = Money("10.50", "EUR") + Money("2.25", "EUR")
    assert_type(total, Money)
    assert_type(total - Money("1", "EUR"), Money)
    assert_type(total.amount, Decimal)

    assert Money("12.75", "EUR") == total


def test_history_types(crm: crmkit.CRM) -> None:
    """crm.history returns AuditEntry objects."""
    acme = crm.organizations.create(name="Acme")
    history = crm.history(acme.id)
    assert_type(history, list[AuditEntry])

    assert ["create"] == [e.action.value for e in history]


def test_converter_structure_types(crm: crmkit.CRM) -> None:
    """converter.structure(data, Organization) is an Organization, and round-trips."""
    acme = crm.organizations.create(name="Acme", emails=["ventas@acme.es"])
    data = converter.unstructure(acme)
    again = converter.structure(data, Organization)
    assert_type(again, Organization)

    assert acme == again


MISUSE = """\
import crmkit


def misuse(crm: crmkit.CRM, contact: crmkit.Contact) -> None:
    crm.organizations.update(contact.id, expected_version=1, name="X")
    crm.contacts.at(contact.id)


def fine(crm: crmkit.CRM, organization: crmkit.Organization) -> None:
    crm.organizations.update(organization.id, expected_version=1, name="X")
    crm.contacts.at(organization.id)
"""


@pytest.mark.slow
def test_mypy_rejects_a_contact_id_where_an_organization_id_belongs(tmp_path: Path) -> None:
    """Passing a ContactId for an OrganizationId is an arg-type error; the right id is not."""
    snippet = tmp_path / "misuse.py"
    snippet.write_text(MISUSE, encoding="utf-8")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-error-summary",
            "--show-error-codes",
            "--no-pretty",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),  # leave the project's cache alone
            str(snippet),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert 1 == result.returncode, result.stdout + result.stderr
    assert [5, 6] == [int(line.split(":")[1]) for line in errors], result.stdout
    assert all(line.endswith("[arg-type]") for line in errors), result.stdout
    assert all('"ContactId"' in line and "OrganizationId" in line for line in errors)


def test_store_backend_types() -> None:
    """A StoreBackend's open takes the URL and gives a Store; its scheme is text."""

    def shared(url: str) -> MemoryStore:
        return MemoryStore()

    backend = crmkit.StoreBackend(scheme="shared-memory", open=shared)
    assert_type(backend.scheme, str)
    assert_type(backend.open, Callable[[str], Store])

    assert isinstance(backend.open("shared-memory://x"), MemoryStore)


def test_analytics_result_types(crm: crmkit.CRM) -> None:
    """Reports are typed results; their tables hold plain cells; charts are figures."""
    from matplotlib.figure import Figure

    from crmkit.analysis import funnel_chart
    from crmkit.core.analytics import Funnel, PipelineReport, StageTimes, WinRate, WinRates
    from crmkit.core.insights import CampaignReport, InteractionResults, RelationshipHealth
    from crmkit.core.tables import Cell, Table

    report = assert_type(crm.analytics.pipeline(currency="EUR", by="stage"), PipelineReport)
    table = assert_type(report.table(), Table)
    assert_type(table.rows, tuple[tuple[Cell, ...], ...])
    rates = assert_type(crm.analytics.win_rates(by="owner", currency="EUR"), WinRates)
    for rate in rates:
        assert_type(rate, WinRate)
    assert_type(crm.analytics.time_in_stage(), StageTimes)
    funnel = assert_type(crm.analytics.funnel(), Funnel)
    assert_type(funnel_chart(funnel), Figure)
    assert_type(crm.analytics.interaction_results(by="kind"), InteractionResults)
    assert_type(crm.analytics.campaign_roi(currency="EUR"), CampaignReport)
    assert_type(crm.analytics.relationship_health(), RelationshipHealth)
