"""crm.teams and crm.targets on every store."""

from __future__ import annotations

from datetime import date

import pytest

import crmkit
from crmkit import (
    ConcurrencyError,
    DuplicateError,
    Money,
    NotFoundError,
    SalesTarget,
    TargetScope,
    Team,
    ValidationError,
)
from crmkit.core.analytics import PeriodKind
from crmkit.core.ids import UserId, uuid7


def record_counts(crm: crmkit.CRM) -> tuple[int, int, int]:
    """Teams, targets and users, archived included."""
    return (
        crm.teams.count(archived=None),
        crm.targets.count(archived=None),
        crm.users.count(archived=None),
    )


def test_a_team_is_created_found_updated_and_archived(any_crm: crmkit.CRM) -> None:
    crm = any_crm
    ana, luis = crm.users.create(name="Ana"), crm.users.create(name="Luis")
    norte = crm.teams.create(name="Norte", members=[ana, luis.id], description="North reps")
    assert (ana.id, luis.id) == norte.member_ids
    assert norte == crm.teams.get(norte.id) == crm.teams.get_by_name("Norte")
    assert [norte] == crm.teams.find(name="Norte")
    smaller = crm.teams.update(norte.id, expected_version=norte.version, members=[luis])
    assert ((luis.id,), 2) == (smaller.member_ids, smaller.version)
    archived = crm.teams.archive(norte.id, expected_version=smaller.version)
    assert archived.archived
    assert [] == crm.teams.find()


def test_a_user_may_be_in_several_teams(any_crm: crmkit.CRM) -> None:
    crm = any_crm
    ana = crm.users.create(name="Ana")
    crm.teams.create(name="Norte", members=[ana])
    crm.teams.create(name="Grandes cuentas", members=[ana])
    crm.teams.create(name="Sur")
    assert ["Grandes cuentas", "Norte"] == [t.name for t in crm.teams.of_user(ana)]


def test_a_team_member_must_be_a_user_and_a_refused_team_writes_nothing(
    any_crm: crmkit.CRM,
) -> None:
    crm = any_crm
    before = record_counts(crm)
    with pytest.raises(ValidationError) as caught:
        crm.teams.create(name="Norte", members=[UserId(uuid7())])
    assert ("members[0]", "reference") == (caught.value.field, caught.value.code)
    ana = crm.users.create(name="Ana")
    with pytest.raises(ValidationError) as caught:
        crm.teams.create(name="Norte", members=[ana, ana])
    assert ("member_ids", "duplicate") == (caught.value.field, caught.value.code)
    assert (before[0], before[1], before[2] + 1) == record_counts(crm)


def test_team_names_are_unique_and_updates_check_the_version(any_crm: crmkit.CRM) -> None:
    crm = any_crm
    team = crm.teams.create(name="Norte")
    with pytest.raises(DuplicateError):
        crm.teams.create(name="Norte")
    crm.teams.update(team.id, expected_version=1, description="changed")
    with pytest.raises(ConcurrencyError):
        crm.teams.update(team.id, expected_version=1, description="stale")
    with pytest.raises(NotFoundError):
        crm.teams.get_by_name("Sur")


def test_a_target_is_set_for_a_user_a_team_or_a_zone(any_crm: crmkit.CRM) -> None:
    crm = any_crm
    ana = crm.users.create(name="Ana")
    crm.teams.create(name="Norte", members=[ana])
    zone = crm.zones.create(key="norte", name="Norte")
    mine = crm.targets.create(amount=Money("50000", "EUR"), period="2027-Q1", user=ana)
    ours = crm.targets.create(amount=Money("90000", "EUR"), period="2027-Q1", team="Norte")
    zonal = crm.targets.create(amount=Money("20000", "EUR"), period="2027-03", zone="norte")
    assert [TargetScope.USER, TargetScope.TEAM, TargetScope.ZONE] == [
        t.scope for t in (mine, ours, zonal)
    ]
    assert (PeriodKind.QUARTER, date(2027, 1, 1)) == (mine.period_kind, mine.period_start)
    assert mine == crm.targets.get(mine.id)
    assert {mine.id, ours.id} == {t.id for t in crm.targets.for_period("2027-Q1")}
    assert [zonal] == crm.targets.find(zone=zone)
    assert [ours] == crm.targets.find(team="Norte")
    raised = crm.targets.update(mine.id, expected_version=1, amount=Money("60000", "EUR"))
    assert Money("60000", "EUR") == crm.targets.get(raised.id).amount


def test_a_fiscal_year_target_keeps_its_fiscal_start(any_crm: crmkit.CRM) -> None:
    crm = any_crm
    ana = crm.users.create(name="Ana")
    target = crm.targets.create(
        amount=Money("1000", "EUR"), period="FY2027-Q1", fiscal_start=7, user=ana
    )
    stored = crm.targets.get(target.id)
    assert ("FY2027-Q1", date(2026, 7, 1)) == (stored.period.label, stored.period_start)
    assert [stored] == crm.targets.for_period("FY2027-Q1", fiscal_start=7)
    assert [] == crm.targets.for_period("2026-Q3")


#: bad creation arguments, and the field and code of the error each gets
BAD_TARGETS: list[tuple[dict[str, object], str, str]] = [
    ({}, "scope", "scope"),
    ({"user": "ana", "zone": "norte"}, "scope", "scope"),
    ({"user": "ana", "period": "2027-Q5"}, "period", "period"),
    ({"user": "ana", "amount": Money("0", "EUR")}, "amount", "range"),
    ({"team": "Nadie"}, "team", "reference"),
    ({"zone": "sur"}, "zone", "reference"),
]


def test_a_bad_target_is_refused_and_writes_nothing(any_crm: crmkit.CRM) -> None:
    crm = any_crm
    ana = crm.users.create(name="Ana")
    crm.zones.create(key="norte", name="Norte")
    before = record_counts(crm)
    for arguments, field, code in BAD_TARGETS:
        values: dict[str, object] = {"amount": Money("1000", "EUR"), "period": "2027-Q1"}
        values.update(arguments)
        if values.get("user") == "ana":
            values["user"] = ana
        with pytest.raises(ValidationError) as caught:
            crm.targets.create(**values)  # type: ignore[arg-type]
        assert (field, code) == (caught.value.field, caught.value.code)
    assert before == record_counts(crm)


def test_teams_and_targets_are_exported_types() -> None:
    assert issubclass(Team, crmkit.core.entities.Entity)
    assert issubclass(SalesTarget, crmkit.core.entities.Entity)
