"""Access control on the other read paths: analytics, forecasts and targets,
exports, timeline, history, duplicates and segments.

The model-based test compares every path with the plain-Python oracle of
tests/test_app_access.py over random users, teams, zones and records, on
every store (the SQL stores with the analytics pushdown).
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from crmkit import AccessDenied, Eq, In, Money
from crmkit.app import CRM
from crmkit.core import analytics as core
from crmkit.core import insights
from crmkit.core.duplicates import ContactProfile, contact_spec, find_duplicates
from crmkit.core.entities import Contact, Organization, Role, User
from crmkit.core.ids import uuid7
from crmkit.core.interactions import Interaction, InteractionStatus
from crmkit.core.opportunities import Opportunity
from crmkit.core.pipelines import StageKind
from crmkit.core.segments import NoInteraction, Or
from crmkit.core.targets import SalesTarget, Team
from crmkit.stores import aggregates
from crmkit.stores.sql import SqlStore
from tests.test_app_access import build, oracle_sees, worlds

EUR = "EUR"


def populate(crm: CRM, world: dict[str, Any]) -> dict[str, Any]:
    """The records of a random world (as the oracle test of tests/test_app_access.py)."""
    tag = uuid7().hex[-12:]  # examples share the database: names stay unique
    zones = [crm.zones.create(key=f"z{i}-{tag}", name=f"Z{i} {tag}") for i in range(3)]
    users = [
        crm.users.create(
            name=f"U{i}",
            role=world["roles"][i % len(world["roles"])],
            zone_ids=[zones[z].id for z in sorted(world["user_zones"][i])],
        )
        for i in range(4)
    ]
    if world["archived_user"]:
        crm.users.archive(users[3].id, expected_version=users[3].version)
    made_teams = [
        crm.teams.create(name=f"T{n} {tag}", members=[users[m].id for m in sorted(members)])
        for n, members in enumerate(world["teams"])
    ]
    orgs = []
    for n, (owner, zone, archived) in enumerate(world["orgs"]):
        org = crm.organizations.create(
            name=f"O{n} {tag}",
            owner=None if owner is None else users[owner].id,
            zone=None if zone is None else zones[zone].id,
        )
        orgs.append(org)
        if archived:
            crm.organizations.archive(org.id, expected_version=org.version)
    for n, (org, owner) in enumerate(world["people"]):
        org_id = orgs[org].id if org is not None and org < len(orgs) else None
        owner_id = None if owner is None else users[owner].id
        # look-alike people, so that duplicate pairs cross visibility lines
        person = crm.contacts.create(
            first_name="Ana" if n % 2 else "Anna",
            last_name=f"Pérez {tag}",
            email=f"ana.{tag}@acme.es" if n % 3 else None,
            organization=org_id,
            owner=owner_id,
        )
        deal = crm.opportunities.create(
            name=f"D{n}",
            organization=org_id,
            contact=person.id,
            owner=owner_id,
            amount=Money(str(1000 * (n + 1)), EUR),
        )
        if n % 3 == 1:
            crm.opportunities.lose(deal.id, reason="price")
        elif n % 3 == 2:
            for stage in ("qualified", "proposal", "negotiation"):
                crm.opportunities.advance(deal.id, to=stage)
            crm.opportunities.win(deal.id, expected_close=date(2026, 1, 5))
        crm.interactions.plan(
            kind="call",
            scheduled_at=datetime(2026, 2, 1, 9, tzinfo=UTC),
            organization=org_id,
            contact=person.id,
            assignee=owner_id,
        )
        if n % 2 == 0:
            crm.interactions.log(
                kind="meeting", organization=org_id, contact=person.id, assignee=owner_id
            )
        crm.leads.create(first_name=f"L{n}", company=f"L{n} Co", owner=owner_id)
    for u in users[:2]:
        crm.targets.create(user=u.id, period="2026-Q1", amount=Money("5000", EUR))
    crm.targets.create(zone=zones[0].id, period="2026-Q1", amount=Money("9000", EUR))
    for team in made_teams:
        crm.targets.create(team=team.id, period="2026-Q1", amount=Money("7000", EUR))
    return {"users": users, "zones": zones, "orgs": orgs, "tag": tag, "teams": made_teams}


def target_seen(user: User, teams: list[Team], target: SalesTarget) -> bool:
    """The oracle for sales targets: own or one's team's, a teammate's (managers) or a zone's."""
    if user.archived or user.role is Role.GUEST:
        return False
    if user.role is Role.ADMIN:
        return True
    mine = target.user_id == user.id or any(
        target.team_id == t.id and user.id in t.member_ids for t in teams
    )
    zoned = target.zone_id is not None and target.zone_id in user.zone_ids
    if user.role is Role.MANAGER:
        mates = {m for t in teams if user.id in t.member_ids for m in t.member_ids} | {user.id}
        return mine or zoned or target.user_id in mates
    return mine or zoned


def pairs(matching: Any) -> set[tuple[Any, Any]]:
    return {(c.left, c.right) for c in matching.candidates}


@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: keep it fast
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds)
def test_every_read_path_shows_exactly_what_the_oracle_allows(
    any_crm: CRM, world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    crm = any_crm
    made = populate(crm, world)
    tag = made["tag"]
    # the truth, read by the system context (this example's records only)
    every_org = {o.id: o for o in crm.organizations.find(archived=None)}
    teams = [set(t.member_ids) for t in crm.teams.find(archived=None) if not t.archived]
    mine = Eq("last_name", f"Pérez {tag}")
    # examples share the database: the oracle reads every record of it
    every_contact = crm.contacts.find(archived=None)
    contacts = [c for c in every_contact if c.last_name == f"Pérez {tag}"]
    opportunities = crm.opportunities.find(archived=None)
    interactions = crm.interactions.find(archived=None)
    orgs = [every_org[o.id] for o in made["orgs"]]
    team_records = [t for t in crm.teams.find(archived=None) if not t.archived]
    targets = (
        crm.targets.find(In("user_id", tuple(u.id for u in made["users"])), archived=None)
        + crm.targets.find(Eq("zone_id", made["zones"][0].id), archived=None)
        + crm.targets.find(In("team_id", tuple(t.id for t in made["teams"])), archived=None)
    )
    model = crm.duplicates.model("contact")
    criteria = Or(In("id", tuple(o.id for o in orgs[:2])), NoInteraction(days=30))
    out = tmp_path_factory.mktemp("exports")
    differences: list[tuple[object, ...]] = []

    def check(role: Role, path: str, got: object, expected: object) -> None:
        if got != expected:
            differences.append((role.value, path, got, expected))

    for user in crm.users.find(In("id", tuple(u.id for u in made["users"])), archived=None):
        scoped = crm.as_user(user.id)
        role = user.role

        def sees(r: Any, user: User = user) -> bool:
            return oracle_sees(user, teams, every_org, r)

        opps = [o for o in opportunities if sees(o)]
        live = [o for o in opps if not o.archived]
        # analytics: pipeline and win rate (pushed down on the SQL stores)
        report = scoped.analytics.pipeline(currency=EUR)
        open_ = [o for o in live if o.status in (StageKind.OPEN, StageKind.ON_HOLD)]
        check(role, "pipeline.count", report.total.count, len(open_))
        value = sum((o.amount.amount for o in open_ if o.amount), start=0)
        check(role, "pipeline.value", report.total.value.amount, value)
        rate = scoped.analytics.win_rate(currency=EUR)
        won = sum(o.status is StageKind.WON for o in live)
        lost = sum(o.status is StageKind.LOST for o in live)
        check(role, "win_rate", (rate.won, rate.lost), (won, lost))
        # insights over the visible interactions (pure function, oracle inputs)
        acts = [i for i in interactions if sees(i)]
        book = core.Book(opportunities=opps, pipelines=list(crm.pipelines), zones={}, revisions=[])
        expected_results = insights.interaction_results(acts, book, as_of=crm.now())
        check(
            role,
            "interaction_results",
            scoped.analytics.interaction_results().total,
            expected_results.total,
        )
        # targets, and the forecast's attainments of the visible ones
        seen_targets = {t.id for t in targets if target_seen(user, team_records, t)}
        got_targets = {t.id for t in scoped.targets.for_period("2026-Q1")} & {t.id for t in targets}
        check(role, "targets", got_targets, seen_targets)
        attained = {a.target.id for a in scoped.forecast.attainments(period="2026-Q1")}
        check(role, "forecast.attainments", attained & {t.id for t in targets}, seen_targets)
        # export: the visible contacts, no other row
        path = out / f"{user.id}.csv"
        scoped.exports.csv(path, entity="contacts", where=[mine], archived=None)
        with path.open(encoding="utf-8") as f:
            exported = {row["id"] for row in csv.DictReader(f)}
        check(role, "export", exported, {str(c.id) for c in contacts if sees(c)})
        # duplicates: pairs among visible contacts only, as the pure search finds them
        visible_contacts = [c for c in every_contact if sees(c) and not c.archived]
        expected_pairs = pairs(
            find_duplicates(
                contact_spec(),
                [ContactProfile.of(c) for c in visible_contacts],
                model=model,
                threshold=0,
            )
        )
        found = scoped.duplicates.find("contact", threshold=0, model=model)
        check(role, "duplicates", pairs(found), expected_pairs)
        # segments: visible organizations; history criteria count visible interactions
        done_with = {
            i.organization_id
            for i in interactions
            if sees(i) and i.status is InteractionStatus.DONE and not i.archived
        }
        expected_members = {
            o.id
            for o in orgs
            if sees(o) and not o.archived and (o in orgs[:2] or o.id not in done_with)
        }
        got_members = set(scoped.segments.preview(criteria)) & {o.id for o in orgs}
        check(role, "segments", got_members, expected_members)
        # timeline and history of every record of the example
        ours = {c.id for c in contacts}
        deals = [o for o in opportunities if o.contact_id in ours]
        for record in [*orgs, *contacts, *deals]:
            if not sees(record):
                for read in (scoped.timeline, scoped.history):
                    try:
                        read(record.id)
                    except AccessDenied:
                        continue
                    differences.append((role.value, "hidden timeline/history", record.id))
                continue
            system = crm.timeline(record.id, limit=1000)
            visible_ids = {r.id for r in [*contacts, *opportunities, *interactions] if sees(r)}
            expected_items = [
                (e.kind, e.entity_id, e.at)
                for e in system
                if e.entity != "case"
                and (e.entity_id == record.id or e.entity_id in visible_ids or e.entity == "lead")
            ]
            got_items = [
                (e.kind, e.entity_id, e.at) for e in scoped.timeline(record.id, limit=1000)
            ]
            check(role, f"timeline {record.ENTITY}", got_items, expected_items)
            check(role, "history", scoped.history(record.id), crm.history(record.id))
    assert differences == []


# ------------------------------------------------------------ examples


def test_scoped_pipeline_is_pushed_down_with_the_restriction(
    any_crm: CRM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SqlStore the scoped pipeline is one restricted GROUP BY, equal to the pure path."""
    world = build(any_crm)
    calls: list[Any] = []
    original = aggregates.open_deal_groups

    def spy(conn: Any, query: Any, *, restricted: Any = ()) -> Any:
        calls.append((query.restrict, len(restricted)))
        return original(conn, query, restricted=restricted)

    monkeypatch.setattr(aggregates, "open_deal_groups", spy)
    for role in ("admin", "manager", "contributor", "guest"):
        scoped = any_crm.as_user(world.users[role])
        for by in (None, "zone", "owner"):
            pushed = scoped.analytics.pipeline(currency=EUR, by=by)
            pure = core.pipeline(scoped.analytics.book(), as_of=any_crm.now(), currency=EUR, by=by)
            assert pushed == pure
    counts = {
        r: any_crm.as_user(world.users[r]).analytics.pipeline(currency=EUR).total.count
        for r in ("admin", "manager", "contributor", "guest")
    }
    assert counts == {"admin": 3, "manager": 1, "contributor": 2, "guest": 0}
    if isinstance(any_crm.store, SqlStore):
        assert calls
        assert all(n == 1 for r, n in calls if r is not None)
        assert any(r is not None for r, _ in calls)
    else:
        assert calls == []


def test_campaign_roi_is_refused_in_a_scope(any_crm: CRM) -> None:
    world = build(any_crm)
    scoped = any_crm.as_user(world.users["admin"])
    with pytest.raises(AccessDenied, match=r"crm\.analytics\.campaign_roi"):
        scoped.analytics.campaign_roi(currency=EUR)


def test_a_hidden_target_looks_absent(any_crm: CRM) -> None:
    world = build(any_crm)
    theirs = any_crm.targets.create(
        user=world.users["other"].id, period="2026-Q1", amount=Money("10", EUR)
    )
    scoped = any_crm.as_user(world.users["contributor"])
    for target_id in (theirs.id, uuid7()):
        with pytest.raises(AccessDenied, match=r"^not allowed to read sales_target$"):
            scoped.targets.get(target_id)  # type: ignore[arg-type]
        with pytest.raises(AccessDenied):
            scoped.forecast.attainment(target_id)  # type: ignore[arg-type]
    assert not hasattr(scoped.targets, "create")
    # a team's target is its members' own
    sales = any_crm.teams.get_by_name("Sales")
    team_target = any_crm.targets.create(team=sales.id, period="2026-Q1", amount=Money("7", EUR))
    assert scoped.targets.get(team_target.id) == team_target
    assert any_crm.as_user(world.users["manager"]).targets.count() == 1
    with pytest.raises(AccessDenied):
        any_crm.as_user(world.users["other"]).targets.get(team_target.id)


def test_timeline_of_a_passed_record_is_checked_again(any_crm: CRM) -> None:
    """A hidden record handed in as an object gets the error of an absent id."""
    world = build(any_crm)
    scoped = any_crm.as_user(world.users["contributor"])
    hidden: Organization = world.org["hidden"]
    for target in (hidden, world.contact["hidden"], world.opp["hidden"], uuid7()):
        with pytest.raises(AccessDenied, match=r"^not allowed to read record$"):
            scoped.timeline(target)
    assert scoped.timeline(world.org["zoned"])


def test_a_cases_events_stay_out_of_a_scoped_timeline(any_crm: CRM) -> None:
    world = build(any_crm)
    own = world.org["own"]
    any_crm.cases.open(subject="Broken", case_type="claim", organization=own.id)
    kinds = {e.kind for e in any_crm.timeline(own.id)}
    assert "case_opened" in kinds
    scoped = any_crm.as_user(world.users["contributor"])
    assert "case_opened" not in {e.kind for e in scoped.timeline(own.id)}


def test_a_static_segment_lists_only_visible_members(any_crm: CRM) -> None:
    world = build(any_crm)
    every = tuple(o.id for o in world.org.values())
    segment = any_crm.segments.create(name="All three", criteria=In("id", every))
    any_crm.segments.snapshot(segment.id)
    scoped = any_crm.as_user(world.users["contributor"])
    expected = sorted([world.org["own"].id, world.org["zoned"].id])
    assert sorted(scoped.segments.member_ids("All three")) == expected
    assert sorted(o.id for o in scoped.segments.members("All three")) == expected
    assert scoped.segments.member_count("All three") == 2
    assert any_crm.segments.member_count("All three") == 3
    for name in ("create", "get", "find", "snapshot"):
        assert not hasattr(scoped.segments, name)


def test_a_scoped_export_writes_only_visible_rows(any_crm: CRM, tmp_path: Path) -> None:
    world = build(any_crm)
    scoped = any_crm.as_user(world.users["contributor"])
    written = scoped.exports.jsonl(tmp_path / "orgs.jsonl", entity="organizations")
    assert written == 2
    text = (tmp_path / "orgs.jsonl").read_text(encoding="utf-8")
    assert str(world.org["hidden"].id) not in text
    assert (
        any_crm.as_user(world.users["guest"]).exports.csv(tmp_path / "none.csv", entity="contacts")
        == 0
    )


def test_duplicate_pairs_never_name_a_hidden_record(any_crm: CRM) -> None:
    world = build(any_crm)
    hidden = world.org["hidden"]
    twin = any_crm.contacts.create(
        first_name="own", last_name="X", organization=hidden.id, owner=hidden.owner_id
    )
    assert any(
        twin.id in (c.left, c.right) for c in any_crm.duplicates.find(threshold=0).candidates
    )
    scoped = any_crm.as_user(world.users["contributor"])
    seen = {c.id for c in scoped.contacts.find()}
    found = scoped.duplicates.find(threshold=0)
    assert all({c.left, c.right} <= seen for c in found.candidates)
    for candidate in scoped.duplicates.candidates_for(twin):
        assert {candidate.left, candidate.right} - {twin.id} <= seen
    assert isinstance(world.contact["own"], Contact)
    assert isinstance(world.opp["own"], Opportunity)
    assert isinstance(world.task["own"], Interaction)


def test_a_scoped_segment_is_evaluated_by_the_store_over_visible_history(
    any_crm: CRM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History criteria count only visible interactions, in the store's own evaluator."""
    world = build(any_crm)
    zoned = world.org["zoned"]
    # a done meeting with the zoned organization, assigned to someone the manager cannot see
    any_crm.interactions.log(
        kind="meeting", organization=zoned.id, assignee=world.users["other"].id
    )

    def no_pure_path(*args: object, **kwargs: object) -> object:
        raise AssertionError("a scope evaluated the segment in the service")

    monkeypatch.setattr("crmkit.services.segments.evaluate", no_pure_path)
    quiet = NoInteraction(days=30)
    assert zoned.id not in any_crm.segments.preview(quiet)
    manager = any_crm.as_user(world.users["manager"])
    assert zoned.id in manager.segments.preview(quiet)  # the meeting is hidden from them
    contributor = any_crm.as_user(world.users["contributor"])  # sees it through the zone
    assert zoned.id not in contributor.segments.preview(quiet)
    assert world.org["hidden"].id not in contributor.segments.preview(quiet)


def test_a_scoped_pipeline_by_team_names_the_owners_teams(any_crm: CRM) -> None:
    """Memory (pure path) and SQL (pushdown) alike: the scope's book knows the teams."""
    ana = any_crm.users.create(name="Ana", role="contributor")
    bo = any_crm.users.create(name="Bo", role="contributor")
    north = any_crm.teams.create(name="North", members=[ana.id, bo.id])
    for user in (ana, bo):
        org = any_crm.organizations.create(name=f"Org {user.name}", owner=user.id)
        any_crm.opportunities.create(
            name="Deal", organization=org.id, owner=user.id, amount=Money("1000", EUR)
        )
    rows = any_crm.as_user(ana).analytics.pipeline(currency=EUR, by="team").table().rows
    assert [(row[0], row[1]) for row in rows] == [(str(north.id), 1)]
    assert any_crm.analytics.pipeline(currency=EUR, by="team").table().rows[0][1] == 2


def test_a_scoped_frame_has_exactly_the_rows_the_scoped_find_returns(any_crm: CRM) -> None:
    """On SqlStore the frame is read column by column, restricted like ``find``."""
    world = build(any_crm)
    for role in ("admin", "manager", "contributor", "guest"):
        scoped = any_crm.as_user(world.users[role])
        for service in (scoped.organizations, scoped.contacts, scoped.opportunities):
            frame = service.to_pandas(
                columns=["id", "name"] if service is not scoped.contacts else ["id"]
            )
            assert sorted(frame["id"]) == sorted(str(r.id) for r in service.find())
