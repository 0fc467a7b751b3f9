"""Access control: ``crm.as_user(user)`` on every store.

A matrix over the covered mutating operations x every role lacking the right
(nothing changes: records, audit, hook calls), and a model-based test comparing
the visible set with a plain-Python oracle of the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crmkit
from crmkit import AccessDenied, Contains, In, Money, NotFoundError, ValidationError
from crmkit.app import CRM
from crmkit.core.entities import Contact, Organization, Role, User
from crmkit.core.ids import uuid7
from crmkit.core.interactions import Interaction, InteractionKind
from crmkit.core.leads import Lead
from crmkit.core.opportunities import Opportunity
from crmkit.services.access import ScopedCRM
from crmkit.stores.memory import MemoryStore
from crmkit.stores.sql import SqlStore
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock

EUR = Money("1000", "EUR")


@attrs.define
class World:
    """Users of each role, and records some of them may not touch."""

    users: dict[str, User]
    org: dict[str, Organization]
    contact: dict[str, Contact]
    opp: dict[str, Opportunity]
    task: dict[str, Interaction]
    lead: dict[str, Lead]


def build(crm: CRM) -> World:
    north = crm.zones.create(key="north", name="North")
    south = crm.zones.create(key="south", name="South")
    users = {
        "admin": crm.users.create(name="Ada", role="admin"),
        "manager": crm.users.create(name="Max", role="manager", zone_ids=[south.id]),
        "contributor": crm.users.create(name="Cris", role="contributor", zone_ids=[north.id]),
        "other": crm.users.create(name="Otto", role="contributor"),
        "guest": crm.users.create(name="Gus", role="guest"),
    }
    crm.teams.create(name="Sales", members=[users["manager"].id, users["contributor"].id])
    org = {
        # the contributor's own organization, outside their zone
        "own": crm.organizations.create(name="Own", owner=users["contributor"].id),
        # in the contributor's zone, owned by someone else: visible, not writable
        "zoned": crm.organizations.create(name="Zoned", owner=users["other"].id, zone=north.id),
        # someone else's, no zone: hidden from the contributor
        "hidden": crm.organizations.create(name="Hidden", owner=users["other"].id),
    }
    contact = {
        k: crm.contacts.create(first_name=k, last_name="X", organization=o.id, owner=o.owner_id)
        for k, o in org.items()
    }
    opp = {
        k: crm.opportunities.create(name=k, organization=o.id, owner=o.owner_id, amount=EUR)
        for k, o in org.items()
    }
    task = {
        k: crm.interactions.plan(
            kind="call",
            scheduled_at=datetime(2026, 2, 1, 9, tzinfo=UTC),
            organization=o.id,
            assignee=o.owner_id,
        )
        for k, o in org.items()
    }
    lead = {
        k: crm.leads.create(first_name=k, last_name="Lead", company=f"{k} Co", owner=o.owner_id)
        for k, o in org.items()
    }
    return World(users, org, contact, opp, task, lead)


def audit_rows(crm: CRM) -> list[tuple[Any, ...]]:
    store = crm.store
    if isinstance(store, SqlStore):
        with store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM audit_log ORDER BY seq")).all()
            return [tuple(r) for r in rows]
    assert isinstance(store, MemoryStore)
    return [attrs.astuple(e) for e in store._state.audit]  # no public full audit listing


def snapshot(crm: CRM) -> dict[str, Any]:
    """Every record of every covered type, every user, and the whole audit table."""
    return {
        "organizations": crm.organizations.find(archived=None),
        "contacts": crm.contacts.find(archived=None),
        "opportunities": crm.opportunities.find(archived=None),
        "interactions": crm.interactions.find(archived=None),
        "leads": crm.leads.find(archived=None),
        "users": crm.users.find(archived=None),
        "audit": audit_rows(crm),
    }


Op = Callable[[ScopedCRM, World], object]


def _org_ops(key: str) -> dict[str, Op]:
    def update(s: ScopedCRM, w: World) -> object:
        o = w.org[key]
        return s.organizations.update(o.id, expected_version=o.version, name="Renamed")

    def archive(s: ScopedCRM, w: World) -> object:
        o = w.org[key]
        return s.organizations.archive(o.id, expected_version=o.version)

    def contact_update(s: ScopedCRM, w: World) -> object:
        c = w.contact[key]
        return s.contacts.update(c.id, expected_version=c.version, first_name="Renamed")

    def contact_archive(s: ScopedCRM, w: World) -> object:
        c = w.contact[key]
        return s.contacts.archive(c.id, expected_version=c.version)

    return {
        f"organizations.update[{key}]": update,
        f"organizations.archive[{key}]": archive,
        f"contacts.update[{key}]": contact_update,
        f"contacts.archive[{key}]": contact_archive,
    }


def _opp_ops(key: str) -> dict[str, Op]:
    def oid(w: World) -> Any:
        return w.opp[key].id

    return {
        f"opportunities.update[{key}]": lambda s, w: s.opportunities.update(
            oid(w), expected_version=w.opp[key].version, name="Renamed"
        ),
        f"opportunities.advance[{key}]": lambda s, w: s.opportunities.advance(
            oid(w), to="qualified"
        ),
        f"opportunities.win[{key}]": lambda s, w: s.opportunities.win(oid(w)),
        f"opportunities.lose[{key}]": lambda s, w: s.opportunities.lose(oid(w), reason="price"),
        f"opportunities.hold[{key}]": lambda s, w: s.opportunities.hold(oid(w)),
        f"opportunities.archive[{key}]": lambda s, w: s.opportunities.archive(
            oid(w), expected_version=w.opp[key].version
        ),
    }


def _activity_ops(key: str) -> dict[str, Op]:
    def tid(w: World) -> Any:
        return w.task[key].id

    def lid(w: World) -> Any:
        return w.lead[key].id

    return {
        f"interactions.update[{key}]": lambda s, w: s.interactions.update(
            tid(w), expected_version=w.task[key].version, subject="Renamed"
        ),
        f"interactions.complete[{key}]": lambda s, w: s.interactions.complete(tid(w)),
        f"interactions.cancel[{key}]": lambda s, w: s.interactions.cancel(tid(w)),
        f"interactions.reassign[{key}]": lambda s, w: s.interactions.reassign(
            tid(w), to=w.users["contributor"].id
        ),
        f"leads.update[{key}]": lambda s, w: s.leads.update(
            lid(w), expected_version=w.lead[key].version, company="Renamed"
        ),
        f"leads.qualify[{key}]": lambda s, w: s.leads.qualify(lid(w)),
        f"leads.disqualify[{key}]": lambda s, w: s.leads.disqualify(lid(w), reason="spam"),
        f"leads.convert[{key}]": lambda s, w: s.leads.convert(lid(w), create_opportunity=True),
        f"leads.archive[{key}]": lambda s, w: s.leads.archive(
            lid(w), expected_version=w.lead[key].version
        ),
    }


def _create_ops(owner: str) -> dict[str, Op]:
    def org(s: ScopedCRM, w: World) -> object:
        return s.organizations.create(name="New", owner=w.users[owner].id)

    def bulk(s: ScopedCRM, w: World) -> object:
        items = [{"name": f"New {i}", "owner": w.users[owner].id} for i in range(3)]
        return s.organizations.bulk_create(items)

    def contact(s: ScopedCRM, w: World) -> object:
        return s.contacts.create(first_name="New", last_name="X", owner=w.users[owner].id)

    def opp(s: ScopedCRM, w: World) -> object:
        return s.opportunities.create(
            name="New", organization=w.org["own"].id, owner=w.users[owner].id, amount=EUR
        )

    def log(s: ScopedCRM, w: World) -> object:
        return s.interactions.log(
            kind="call", organization=w.org["own"].id, assignee=w.users[owner].id
        )

    def lead(s: ScopedCRM, w: World) -> object:
        return s.leads.create(first_name="New", company="New Co", owner=w.users[owner].id)

    return {
        f"interactions.log[owner={owner}]": log,
        f"leads.create[owner={owner}]": lead,
        f"organizations.create[owner={owner}]": org,
        f"organizations.bulk_create[owner={owner}]": bulk,
        f"contacts.create[owner={owner}]": contact,
        f"opportunities.create[owner={owner}]": opp,
    }


def _register_kind(s: ScopedCRM, w: World) -> object:
    return s.interactions.register_kind(InteractionKind(key="fax", name="Fax"))


def _owner_change(s: ScopedCRM, w: World) -> object:
    o = w.opp["own"]
    return s.opportunities.update(o.id, expected_version=o.version, owner=w.users["other"].id)


#: role -> the operations that role has no right to perform
DENIED: dict[str, dict[str, Op]] = {
    "guest": {
        **_create_ops("guest"),
        **_org_ops("own"),
        **_org_ops("zoned"),
        **_opp_ops("own"),
        **_opp_ops("zoned"),
        **_activity_ops("own"),
        "interactions.register_kind": _register_kind,
    },
    "contributor": {
        **_create_ops("other"),
        **_org_ops("zoned"),
        **_org_ops("hidden"),
        **_opp_ops("zoned"),
        **_opp_ops("hidden"),
        **_activity_ops("zoned"),
        **_activity_ops("hidden"),
        "opportunities.update[owner]": _owner_change,  # protected field
        "interactions.register_kind": _register_kind,
    },
    "manager": {
        **_opp_ops("hidden"),
        **_activity_ops("hidden"),
        "interactions.register_kind": _register_kind,
    },
}


def denied_outcomes(
    crm: CRM, recorder: RecordingPlugin, world: World, ops_by_role: dict[str, dict[str, Op]]
) -> dict[str, str]:
    """Each operation run by its role: ``"denied"`` when it raised ``AccessDenied``
    with no hook called and the database unchanged, else what happened."""
    before = snapshot(crm)
    outcomes: dict[str, str] = {}
    for role, ops in ops_by_role.items():
        scoped = crm.as_user(world.users[role])
        for name, op in ops.items():
            recorder.clear()
            try:
                op(scoped, world)
            except AccessDenied:
                outcome = "denied"
            except Exception as error:
                outcome = f"raised {type(error).__name__}: {error}"
            else:
                outcome = "ALLOWED"
            if outcome == "denied" and recorder.calls:
                outcome = f"denied after hooks {recorder.names()}"
            if outcome == "denied" and snapshot(crm) != before:
                outcome = "denied after a change"
            outcomes[f"{role}: {name}"] = outcome
    return outcomes


def test_every_denied_write_changes_nothing_and_calls_no_hook(
    recorded: tuple[CRM, RecordingPlugin],
) -> None:
    crm, recorder = recorded
    outcomes = denied_outcomes(crm, recorder, build(crm), DENIED)
    assert len(outcomes) == 98
    assert {k: v for k, v in outcomes.items() if v != "denied"} == {}


def test_allowed_writes_go_through_and_are_audited_as_the_user(any_crm: CRM) -> None:
    world = build(any_crm)
    cris = world.users["contributor"]
    scoped = any_crm.as_user(cris)
    org = scoped.organizations.create(name="Mine", owner=cris.id)
    moved = scoped.opportunities.advance(world.opp["own"].id, to="qualified")
    for stage in ("proposal", "negotiation"):
        moved = scoped.opportunities.advance(moved.id, to=stage)
    won = scoped.opportunities.win(moved.id, expected_close=date(2026, 3, 1))
    assert won.status.value == "won"
    # the win made the organization (the contributor's own) a customer
    assert any_crm.organizations.get(world.org["own"].id).lifecycle.value == "customer"
    assert any_crm.history(org.id)[-1].actor == f"user:{cris.id}"
    manager = any_crm.as_user(world.users["manager"])
    # a teammate's opportunity is the manager's to move
    deal = any_crm.opportunities.create(
        name="Team deal", organization=world.org["own"].id, owner=cris.id, amount=EUR
    )
    assert manager.opportunities.hold(deal.id).status.value == "on_hold"
    assert any_crm.opportunities.get(deal.id).history[-1].by == f"user:{manager.principal.user_id}"


def test_hidden_and_absent_records_give_the_same_error(any_crm: CRM) -> None:
    world = build(any_crm)
    scoped = any_crm.as_user(world.users["contributor"])
    errors = []
    for record_id in (world.org["hidden"].id, uuid7()):
        with pytest.raises(AccessDenied) as caught:
            scoped.organizations.get(record_id)  # type: ignore[arg-type]
        errors.append((type(caught.value), str(caught.value), caught.value.args))
    assert errors[0] == errors[1]
    assert str(errors[0][1]) == "not allowed to read organization"
    crm_ref = any_crm.organizations.update(
        world.org["hidden"].id, expected_version=world.org["hidden"].version, external_ref="H-1"
    )
    assert crm_ref.external_ref == "H-1"
    for ref in ("H-1", "nothing"):
        with pytest.raises(AccessDenied, match=r"^not allowed to read organization$"):
            scoped.organizations.get_by_external_ref(ref)
    # the system context still tells absent from present
    with pytest.raises(NotFoundError):
        any_crm.organizations.get(uuid7())  # type: ignore[arg-type]


def test_a_scope_exposes_only_access_aware_services(any_crm: CRM) -> None:
    world = build(any_crm)
    scoped = any_crm.as_user(world.users["admin"])
    for name in ("agenda", "campaigns", "cases", "store", "users"):
        with pytest.raises(AccessDenied, match=f"crm.{name}"):
            getattr(scoped, name)
    assert len(scoped.organizations.find()) == 3


def test_a_guest_sees_nothing(any_crm: CRM) -> None:
    world = build(any_crm)
    scoped = any_crm.as_user(world.users["guest"])
    assert scoped.organizations.count() == scoped.contacts.count() == 0
    assert scoped.opportunities.find() == []


def test_an_archived_user_has_no_rights(any_crm: CRM) -> None:
    world = build(any_crm)
    cris = world.users["contributor"]
    any_crm.users.archive(cris.id, expected_version=cris.version)
    assert any_crm.as_user(cris.id).organizations.count(archived=None) == 0


def test_a_scoped_call_joins_the_system_transaction(any_crm: CRM) -> None:
    world = build(any_crm)
    cris = world.users["contributor"]
    scoped = any_crm.as_user(cris)

    def both() -> None:
        with any_crm.transaction():
            scoped.organizations.create(name="Mine", owner=cris.id)
            scoped.organizations.create(name="Not mine", owner=world.users["other"].id)

    with pytest.raises(AccessDenied):
        both()
    assert any_crm.organizations.count(name="Mine") == 0


# ------------------------------------------------------ model-based test


def oracle_sees(user: User, teams: list[set[Any]], orgs: dict[Any, Organization], r: Any) -> bool:
    """The rules of docs/guides/access-control.md, written out plainly."""
    if user.archived:
        return False
    if user.role is Role.ADMIN:
        return True
    if user.role is Role.GUEST:
        return False
    owner = r.assignee_id if isinstance(r, Interaction) else r.owner_id
    own = owner == user.id
    if isinstance(r, Organization):
        zone = r.zone_id
    else:
        org = orgs.get(r.organization_id)
        zone = org.zone_id if org is not None else None
    in_zone = zone is not None and zone in user.zone_ids
    if user.role is Role.MANAGER:
        if isinstance(r, Organization | Contact):
            return True
        mates = set().union(*(t for t in teams if user.id in t)) | {user.id}
        return own or owner in mates or in_zone
    return own or in_zone


worlds = st.fixed_dictionaries(
    {
        "roles": st.lists(st.sampled_from(list(Role)), min_size=1, max_size=4),
        "user_zones": st.lists(st.sets(st.integers(0, 2), max_size=2), min_size=4, max_size=4),
        "teams": st.lists(st.sets(st.integers(0, 3), max_size=3), max_size=2),
        "archived_user": st.booleans(),
        "orgs": st.lists(
            st.tuples(st.none() | st.integers(0, 3), st.none() | st.integers(0, 2), st.booleans()),
            max_size=5,
        ),
        "people": st.lists(
            st.tuples(st.none() | st.integers(0, 4), st.none() | st.integers(0, 3)), max_size=5
        ),
    }
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds)
def test_crmkit_shows_exactly_what_the_oracle_allows(any_crm: CRM, world: dict[str, Any]) -> None:
    crm = any_crm
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
    for n, members in enumerate(world["teams"]):
        crm.teams.create(name=f"T{n} {tag}", members=[users[m].id for m in sorted(members)])
    orgs = [
        crm.organizations.create(
            name=f"O{n}",
            owner=None if owner is None else users[owner].id,
            zone=None if zone is None else zones[zone].id,
        )
        for n, (owner, zone, _) in enumerate(world["orgs"])
    ]
    for o, (_, _, archived) in zip(orgs, world["orgs"], strict=True):
        if archived:
            crm.organizations.archive(o.id, expected_version=o.version)
    for n, (org, owner) in enumerate(world["people"]):
        org_id = orgs[org].id if org is not None and org < len(orgs) else None
        owner_id = None if owner is None else users[owner].id
        person = crm.contacts.create(
            first_name=f"P{n}", last_name="X", organization=org_id, owner=owner_id
        )
        crm.opportunities.create(
            name=f"D{n}", organization=org_id, contact=person.id, owner=owner_id, amount=EUR
        )
        crm.interactions.plan(
            kind="call",
            scheduled_at=datetime(2026, 2, 1, 9, tzinfo=UTC),
            organization=org_id,
            contact=person.id,
            assignee=owner_id,
        )
        crm.leads.create(first_name=f"L{n}", company=f"L{n} Co", owner=owner_id)

    # the truth, read by the system context
    every_org = {o.id: o for o in crm.organizations.find(archived=None)}
    teams = [set(t.member_ids) for t in crm.teams.find(archived=None) if not t.archived]
    records: dict[str, list[Any]] = {
        "organizations": list(every_org.values()),
        "contacts": crm.contacts.find(archived=None),
        "opportunities": crm.opportunities.find(archived=None),
        "interactions": crm.interactions.find(archived=None),
        "leads": crm.leads.find(archived=None),
    }
    differences: list[tuple[object, ...]] = []
    for user in crm.users.find(In("id", tuple(u.id for u in users)), archived=None):
        scoped = crm.as_user(user.id)
        for service, all_records in records.items():
            expected = {r.id for r in all_records if oracle_sees(user, teams, every_org, r)}
            svc = getattr(scoped, service)
            found = {r.id for r in svc.find(archived=None)}
            counted = svc.count(archived=None)
            got = set()
            for r in all_records:
                try:
                    svc.get(r.id)
                except AccessDenied:
                    continue
                got.add(r.id)
            for path, seen in (("find", found), ("get", got)):
                if seen != expected:
                    differences.append((user.role, service, path, seen ^ expected))
            if counted != len(expected):
                differences.append((user.role, service, "count", counted, len(expected)))
    assert differences == []


def test_one_user_per_zone_refuses_a_second_user_in_a_zone(
    backend_url: str, clock: FixedClock
) -> None:
    with crmkit.open(backend_url, clock=clock, one_user_per_zone=True) as crm:
        north = crm.zones.create(key="north", name="North")
        south = crm.zones.create(key="south", name="South")
        ana = crm.users.create(name="Ana", zone_ids=[north.id])
        with pytest.raises(ValidationError) as caught:
            crm.users.create(name="Bo", zone_ids=[south.id, north.id])
        assert (caught.value.field, caught.value.code) == ("zone_ids", "zone_taken")
        assert crm.users.count() == 1
        bo = crm.users.create(name="Bo", zone_ids=[south.id])
        with pytest.raises(ValidationError, match="already has its user"):
            crm.users.update(bo.id, expected_version=bo.version, zone_ids=[north.id])
        # Ana may keep (re-save) her own zone; once she is archived, it is free
        ana = crm.users.update(ana.id, expected_version=ana.version, name="Ana M.")
        crm.users.archive(ana.id, expected_version=ana.version)
        bo = crm.users.update(bo.id, expected_version=bo.version, zone_ids=[north.id])
        assert bo.zone_ids == (north.id,)


def test_users_may_share_zones_by_default(any_crm: CRM) -> None:
    north = any_crm.zones.create(key="north", name="North")
    any_crm.users.create(name="Ana", zone_ids=[north.id])
    assert any_crm.users.create(name="Bo", zone_ids=[north.id]).zone_ids == (north.id,)


def test_paging_counts_only_visible_records(any_crm: CRM) -> None:
    """The restriction is part of the store query: limit and offset page the visible set."""
    world = build(any_crm)
    cris = world.users["contributor"]
    for n in range(4):
        any_crm.organizations.create(name=f"A{n} hidden", owner=world.users["other"].id)
        any_crm.organizations.create(name=f"A{n} mine", owner=cris.id)
    scoped = any_crm.as_user(cris)
    page = scoped.organizations.find(order_by="name", limit=2, offset=1)
    assert [o.name for o in page] == ["A1 mine", "A2 mine"]
    assert scoped.organizations.count(Contains("name", "hidden")) == 0


def test_history_shows_only_visible_records(any_crm: CRM) -> None:
    world = build(any_crm)
    scoped = any_crm.as_user(world.users["contributor"])
    own = world.org["own"]
    assert [e.entity_id for e in scoped.history(own.id)] == [own.id]
    errors = set()
    for hidden in (world.org["hidden"].id, world.users["other"].id, uuid7()):
        with pytest.raises(AccessDenied) as caught:
            scoped.history(hidden)
        errors.add(str(caught.value))
    assert errors == {"not allowed to read record"}
