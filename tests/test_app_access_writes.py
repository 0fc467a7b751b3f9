"""Access control on the write paths beyond single records: bulk update, import,
merge, reassign, archive, elevation; and what a refusal may reveal.

Extends the matrix of ``tests/test_app_access.py`` (every mutating operation x
every role lacking the right: ``AccessDenied``, nothing changes, no hook call).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crmkit
from crmkit import (
    AccessDenied,
    BulkUpdateReport,
    ConcurrencyError,
    DuplicateError,
    In,
    NotFoundError,
    Policy,
    Principal,
    ScopedCRM,
    ValidationError,
)
from crmkit.app import CRM
from crmkit.core.audit import AuditAction
from crmkit.core.entities import Role, User
from crmkit.core.ids import uuid7
from crmkit.core.opportunities import Opportunity
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock
from tests.test_app_access import EUR, Op, World, build, denied_outcomes, snapshot

# ------------------------------------------------------------- the matrix


def _bulk_ops(key: str) -> dict[str, Op]:
    """``bulk_update`` of one record of each covered type (atomic: the default)."""

    def org(s: ScopedCRM, w: World) -> object:
        return s.organizations.bulk_update([(w.org[key].id, {"name": "Renamed"})])

    def contact(s: ScopedCRM, w: World) -> object:
        return s.contacts.bulk_update([(w.contact[key].id, {"first_name": "Renamed"})])

    def opp(s: ScopedCRM, w: World) -> object:
        return s.opportunities.bulk_update([(w.opp[key].id, {"name": "Renamed"})])

    def task(s: ScopedCRM, w: World) -> object:
        return s.interactions.bulk_update([(w.task[key].id, {"subject": "Renamed"})])

    def lead(s: ScopedCRM, w: World) -> object:
        return s.leads.bulk_update([(w.lead[key].id, {"company": "Renamed"})])

    def restore(s: ScopedCRM, w: World) -> object:
        o = w.opp[key]
        return s.opportunities.restore(o.id, expected_version=o.version)

    return {
        f"organizations.bulk_update[{key}]": org,
        f"contacts.bulk_update[{key}]": contact,
        f"opportunities.bulk_update[{key}]": opp,
        f"interactions.bulk_update[{key}]": task,
        f"leads.bulk_update[{key}]": lead,
        f"opportunities.restore[{key}]": restore,
    }


def _merge_op(survivor: str, merged: str) -> dict[str, Op]:
    def merge(s: ScopedCRM, w: World) -> object:
        plan = s.plan_merge(w.org[survivor].id, [w.org[merged].id], entity="organization")
        return s.merge(plan)

    def contacts(s: ScopedCRM, w: World) -> object:
        plan = s.plan_merge(w.contact[survivor].id, [w.contact[merged].id])
        return s.merge(plan)

    return {
        f"merge[organization {survivor}<-{merged}]": merge,
        f"merge[contact {survivor}<-{merged}]": contacts,
    }


def _import_op(tmp: Path, key: str) -> dict[str, Op]:
    """A CSV import updating one record the user may not change (matched by its id)."""

    def run(s: ScopedCRM, w: World) -> object:
        path = tmp / f"orgs-{key}.csv"
        path.write_text(f"id,name\n{w.org[key].id},Renamed\n", encoding="utf-8")
        report = s.imports.csv(path, entity="organizations")
        if report.errors and {e.code for e in report.errors} == {"denied"}:
            raise AccessDenied("import", "organization")  # every row refused: the matrix's outcome
        return report

    return {f"imports.csv[{key}]": run}


def _import_create_op(tmp: Path, owner: str) -> dict[str, Op]:
    def run(s: ScopedCRM, w: World) -> object:
        path = tmp / f"new-{owner}.csv"
        path.write_text(f"name,owner\nNew,{w.users[owner].id}\n", encoding="utf-8")
        report = s.imports.csv(path, entity="organizations", mode="partial")
        if report.errors and {e.code for e in report.errors} == {"denied"}:
            raise AccessDenied("import", "organization")
        return report

    return {f"imports.csv[new, owner={owner}]": run}


def _elevate(s: ScopedCRM, w: World) -> object:
    with s.elevated(reason="month-end clean-up") as system:
        return system.organizations.count()


def _reassign_all(s: ScopedCRM, w: World) -> object:
    # reassigning several at once: one refused, none moves
    ids = [w.task["own"].id, w.task["hidden"].id]
    return s.interactions.reassign(ids, to=w.users["contributor"].id)


def denied(tmp: Path) -> dict[str, dict[str, Op]]:
    """role -> the new operations that role has no right to perform."""
    return {
        "guest": {
            **_bulk_ops("own"),
            **_merge_op("own", "zoned"),
            **_import_op(tmp, "own"),
            **_import_create_op(tmp, "guest"),
            "elevated": _elevate,
        },
        "contributor": {
            **_bulk_ops("zoned"),
            **_bulk_ops("hidden"),
            **_merge_op("own", "zoned"),  # visible, not theirs to archive
            **_merge_op("own", "hidden"),
            **_merge_op("hidden", "own"),
            **_import_op(tmp, "zoned"),
            **_import_create_op(tmp, "other"),
            "interactions.reassign[own, hidden]": _reassign_all,
            "elevated": _elevate,
        },
        "manager": {
            "opportunities.bulk_update[hidden]": _bulk_ops("hidden")[
                "opportunities.bulk_update[hidden]"
            ],
            "leads.bulk_update[hidden]": _bulk_ops("hidden")["leads.bulk_update[hidden]"],
            "interactions.bulk_update[hidden]": _bulk_ops("hidden")[
                "interactions.bulk_update[hidden]"
            ],
            "elevated": _elevate,
        },
    }


def test_every_denied_bulk_import_merge_and_elevation_changes_nothing(
    recorded: tuple[CRM, RecordingPlugin], tmp_path: Path
) -> None:
    crm, recorder = recorded
    outcomes = denied_outcomes(crm, recorder, build(crm), denied(tmp_path))
    assert len(outcomes) == 37
    assert {k: v for k, v in outcomes.items() if v != "denied"} == {}


# ------------------------------------------------------------ bulk update


def test_a_partial_bulk_update_shows_plugins_only_the_allowed_items(
    recorded: tuple[CRM, RecordingPlugin],
) -> None:
    crm, recorder = recorded
    world = build(crm)
    scoped = crm.as_user(world.users["contributor"])
    before = snapshot(crm)
    recorder.clear()
    refused = scoped.organizations.bulk_update(
        [(world.org["zoned"].id, {"name": "X"}), (world.org["hidden"].id, {"name": "X"})],
        mode="partial",
    )
    assert (refused.updated, [r.code for r in refused.refused]) == ((), ["denied", "denied"])
    assert (recorder.calls, snapshot(crm)) == ([], before)
    own = world.org["own"]
    report = scoped.organizations.bulk_update(
        [(world.org["hidden"].id, {"name": "X"}), (own.id, {"name": "Own 2"})], mode="partial"
    )
    assert report.updated == (own.id,)
    validated = recorder.calls_to("crmkit_validate_organization")
    assert [c.kwargs["organization"].id for c in validated] == [own.id]


class _Veto:
    """Refuses any organization named "Vetoed"."""

    @crmkit.hookimpl
    def crmkit_validate_organization(self, crm: CRM, organization: Any, previous: Any) -> None:
        if organization.name == "Vetoed":
            raise ValidationError("name", "vetoed by a plugin", code="invalid")


def test_a_plugin_veto_refuses_one_bulk_item(backend_url: str, clock: FixedClock) -> None:
    with crmkit.open(backend_url, clock=clock, plugins=[_Veto()]) as crm:
        a = crm.organizations.create(name="A")
        b = crm.organizations.create(name="B")
        changes = [(a.id, {"name": "A2"}), (b.id, {"name": "Vetoed"})]
        with pytest.raises(ValidationError) as caught:
            crm.organizations.bulk_update(changes)
        assert (caught.value.field, caught.value.code) == ("[1].name", "invalid")
        assert crm.organizations.get(a.id).name == "A"
        report = crm.organizations.bulk_update(changes, mode="partial")
        assert report.updated == (a.id,)
        assert [(r.index, r.code, r.field) for r in report.refused] == [(1, "invalid", "name")]
        assert crm.organizations.get(b.id).version == 1


def test_bulk_update_of_1000_records_10_percent_not_allowed(any_crm: CRM) -> None:
    """Atomic changes none; partial changes exactly the allowed ones and reports the rest."""
    world = build(any_crm)
    cris, other = world.users["contributor"], world.users["other"]
    north = any_crm.zones.get_by_key("north")
    items: list[dict[str, Any]] = []
    for n in range(1000):
        if n % 20 == 0:  # hidden from her
            items.append({"name": f"B{n:04}", "owner": other.id})
        elif n % 20 == 10:  # visible through her zone, not hers to change
            items.append({"name": f"B{n:04}", "owner": other.id, "zone": north.id})
        else:
            items.append({"name": f"B{n:04}", "owner": cris.id})
    orgs = any_crm.organizations.bulk_create(items)
    allowed = [o.id for o in orgs if o.owner_id == cris.id]
    refused = [o.id for o in orgs if o.owner_id != cris.id]
    assert (len(allowed), len(refused)) == (900, 100)
    scoped = any_crm.as_user(cris)
    changes = [(o.id, {"notes": "bulk", "tags": ["q1"]}) for o in orgs]

    before = snapshot(any_crm)
    with pytest.raises(AccessDenied) as caught:
        scoped.organizations.bulk_update(changes)
    assert (caught.value.action, caught.value.entity) == ("update", "organization")
    assert snapshot(any_crm) == before

    report = scoped.organizations.bulk_update(changes, mode="partial")
    assert isinstance(report, BulkUpdateReport)
    assert list(report.updated) == allowed
    assert report.refused_ids == refused
    assert {(r.code, r.message) for r in report.refused} == {
        ("denied", "not allowed to update organization")
    }
    assert [r.index for r in report.refused] == [n for n in range(1000) if n % 10 == 0]
    after = {o.id: o for o in any_crm.organizations.find(In("id", [o.id for o in orgs]))}
    assert {i for i, o in after.items() if o.notes == "bulk"} == set(allowed)
    assert all(after[i].version == 1 and after[i].notes is None for i in refused)
    assert any_crm.history(allowed[0])[-1].actor == f"user:{cris.id}"


def test_bulk_update_refuses_hidden_and_absent_ids_alike(any_crm: CRM) -> None:
    world = build(any_crm)
    scoped = any_crm.as_user(world.users["contributor"])
    hidden, absent = world.org["hidden"].id, uuid7()
    report = scoped.organizations.bulk_update(
        [(hidden, {"name": "X"}), (absent, {"name": "X"})],  # type: ignore[list-item]
        mode="partial",
    )
    first, second = report.refused
    assert (first.code, first.field, first.message) == (second.code, second.field, second.message)
    errors = []
    for id in (hidden, absent):
        with pytest.raises(AccessDenied) as caught:
            scoped.organizations.bulk_update([(id, {"name": "X"})])  # type: ignore[list-item]
        errors.append(str(caught.value))
    assert errors[0] == errors[1] == "not allowed to update organization"


def test_a_bulk_item_changing_nothing_is_still_refused_when_not_the_users(any_crm: CRM) -> None:
    world = build(any_crm)
    scoped = any_crm.as_user(world.users["contributor"])
    zoned, own = world.org["zoned"], world.org["own"]
    report = scoped.organizations.bulk_update(
        [(zoned.id, {"name": zoned.name}), (own.id, {"name": own.name})], mode="partial"
    )
    assert (report.unchanged, report.refused_ids) == ((own.id,), [zoned.id])


def test_bulk_update_in_the_system_context(any_crm: CRM) -> None:
    a = any_crm.organizations.create(name="A")
    b = any_crm.organizations.create(name="B", external_ref="ERP-B")
    c = any_crm.organizations.create(name="C")
    before = snapshot(any_crm)
    # atomic: the first refused item raises, naming its index; nothing changes
    with pytest.raises(ValidationError) as invalid:
        any_crm.organizations.bulk_update([(a.id, {"name": "A2"}), (c.id, {"name": ""})])
    assert invalid.value.field.startswith("[1].")
    with pytest.raises(ConcurrencyError):
        any_crm.organizations.bulk_update(
            [(a.id, {"name": "A2"}), (c.id, {"name": "C2", "expected_version": 7})]
        )
    with pytest.raises(DuplicateError):
        any_crm.organizations.bulk_update([(a.id, {"name": "A2", "external_ref": "ERP-B"})])
    with pytest.raises(NotFoundError):
        any_crm.organizations.bulk_update([(uuid7(), {"name": "X"})])  # type: ignore[list-item]
    assert snapshot(any_crm) == before
    # partial: the others go through, each refusal with its code
    report = any_crm.organizations.bulk_update(
        [
            (a.id, {"name": "A2", "external_ref": "ERP-B"}),
            (b.id, {"name": "B2"}),
            (c.id, {"name": "C2", "expected_version": 7}),
            (uuid7(), {"name": "X"}),  # type: ignore[list-item]
            (uuid7(), {"nom": "X"}),  # type: ignore[list-item]
        ],
        mode="partial",
    )
    assert report.updated == (b.id,)
    assert [(r.index, r.code) for r in report.refused] == [
        (0, "duplicate"),
        (2, "conflict"),
        (3, "not_found"),
        (4, "unknown_field"),
    ]
    assert any_crm.organizations.get(b.id).name == "B2"
    assert any_crm.organizations.get(a.id).version == 1
    # nothing different: unchanged, no new version
    again = any_crm.organizations.bulk_update([(b.id, {"name": "B2"})])
    assert (again.updated, again.unchanged) == ((), (b.id,))
    with pytest.raises(ValidationError, match="names a record another item names"):
        any_crm.organizations.bulk_update([(b.id, {}), (b.id, {})])
    with pytest.raises(ValidationError) as mode:
        any_crm.organizations.bulk_update([], mode="some")  # type: ignore[arg-type]
    assert mode.value.code == "choice"


def test_bulk_update_inside_a_transaction_is_rolled_back_with_it(any_crm: CRM) -> None:
    a = any_crm.organizations.create(name="A")

    def both() -> None:
        with any_crm.transaction():
            any_crm.organizations.bulk_update([(a.id, {"name": "A2"})])
            raise RuntimeError

    with pytest.raises(RuntimeError):
        both()
    assert any_crm.organizations.get(a.id).name == "A"


def test_a_contributor_cannot_bulk_change_an_owner_even_on_their_own(any_crm: CRM) -> None:
    world = build(any_crm)
    scoped = any_crm.as_user(world.users["contributor"])
    own = world.opp["own"]
    with pytest.raises(AccessDenied):
        scoped.opportunities.bulk_update([(own.id, {"owner": world.users["other"].id})])
    manager = any_crm.as_user(world.users["manager"])
    report = manager.opportunities.bulk_update([(own.id, {"owner": world.users["manager"].id})])
    assert report.updated == (own.id,)


# ------------------------------------------------------------------ import


def test_a_scoped_import_writes_the_allowed_rows_and_reports_the_rest(
    any_crm: CRM, tmp_path: Path
) -> None:
    world = build(any_crm)
    cris = world.users["contributor"]
    scoped = any_crm.as_user(cris)
    path = tmp_path / "orgs.csv"
    path.write_text(
        "id,name,owner\n"
        f"{world.org['own'].id},Own renamed,{cris.id}\n"
        f"{world.org['zoned'].id},Zoned renamed,{world.users['other'].id}\n"
        f",Brand new,{cris.id}\n"
        f",Given away,{world.users['other'].id}\n",
        encoding="utf-8",
    )
    before = snapshot(any_crm)
    atomic = scoped.imports.csv(path, entity="organizations")
    assert not atomic.written
    assert [(e.line, e.code) for e in atomic.errors] == [(3, "denied"), (5, "denied")]
    assert snapshot(any_crm) == before
    partial = scoped.imports.csv(path, entity="organizations", mode="partial")
    assert (partial.created, partial.updated, len(partial.errors)) == (1, 1, 2)
    assert any_crm.organizations.get(world.org["own"].id).name == "Own renamed"
    assert any_crm.organizations.get(world.org["zoned"].id).name == "Zoned"
    assert any_crm.organizations.count(name="Given away") == 0
    created = any_crm.organizations.find(name="Brand new")
    assert [o.owner_id for o in created] == [cris.id]
    assert any_crm.history(created[0].id)[0].actor == f"user:{cris.id}"


def test_a_scoped_import_of_a_hidden_id_is_a_new_record(any_crm: CRM, tmp_path: Path) -> None:
    """A row naming a hidden record is handled as one naming no record."""
    world = build(any_crm)
    cris = world.users["contributor"]
    path = tmp_path / "orgs.csv"
    hidden = world.org["hidden"]
    path.write_text(f"id,name,owner\n{hidden.id},Hidden renamed,{cris.id}\n", encoding="utf-8")
    report = any_crm.as_user(cris).imports.csv(path, entity="organizations")
    assert (report.created, report.updated) == (1, 0)
    assert any_crm.organizations.get(hidden.id).name == "Hidden"


def test_campaign_metrics_imports_are_closed_in_a_scope(any_crm: CRM, tmp_path: Path) -> None:
    world = build(any_crm)
    with pytest.raises(AccessDenied, match="campaign_metrics"):
        any_crm.as_user(world.users["admin"]).imports.campaign_metrics(
            tmp_path / "x.csv", campaign="X"
        )


# ------------------------------------------------------------------- merge


def test_a_scoped_merge_repoints_related_records_as_the_user(any_crm: CRM) -> None:
    world = build(any_crm)
    cris = world.users["contributor"]
    scoped = any_crm.as_user(cris)
    twin = any_crm.organizations.create(name="Own twin", owner=cris.id, website="https://own.es")
    deal = any_crm.opportunities.create(
        name="Twin deal", organization=twin.id, owner=cris.id, amount=EUR
    )
    plan = scoped.plan_merge(world.org["own"].id, [twin.id], entity="organization")
    journal = scoped.merge(plan)
    assert journal.survivor_id == world.org["own"].id
    assert any_crm.opportunities.get(deal.id).organization_id == world.org["own"].id
    assert any_crm.organizations.get(twin.id).archived
    assert any_crm.history(deal.id)[-1].actor == f"user:{cris.id}"


def test_a_merge_touching_a_related_record_the_user_may_not_change_is_refused(
    any_crm: CRM,
) -> None:
    world = build(any_crm)
    cris = world.users["contributor"]
    twin = any_crm.organizations.create(name="Own twin", owner=cris.id)
    # someone else's deal at her twin organization: she cannot re-point it
    any_crm.opportunities.create(
        name="Their deal", organization=twin.id, owner=world.users["other"].id, amount=EUR
    )
    scoped = any_crm.as_user(cris)
    before = snapshot(any_crm)
    with pytest.raises(AccessDenied) as caught:
        scoped.plan_merge(world.org["own"].id, [twin.id], entity="organization")
    assert (caught.value.action, caught.value.entity) == ("merge", "organization")
    plan = any_crm.duplicates.plan_merge(world.org["own"].id, [twin.id], entity="organization")
    with pytest.raises(AccessDenied):
        scoped.merge(plan)  # a plan made elsewhere is checked again
    assert snapshot(any_crm) == before


# --------------------------------------------------------------- elevation


def test_an_admin_elevates_with_a_reason_and_it_is_audited(any_crm: CRM) -> None:
    world = build(any_crm)
    ada = world.users["admin"]
    scoped = any_crm.as_user(ada)
    with scoped.elevated(reason="  GDPR request 42 ") as system:
        assert system.users.count() == 5  # the system context: every service
        handle = system
    with pytest.raises(AccessDenied, match="ended"):
        handle.organizations.count()
    entry = any_crm.history(ada.id)[-1]
    assert entry.action is AuditAction.ELEVATE
    assert (entry.actor, entry.entity, entry.at) == (f"user:{ada.id}", "user", any_crm.now())
    assert [(c.field, c.old, c.new) for c in entry.changes] == [("reason", None, "GDPR request 42")]


def test_elevation_needs_a_reason_and_a_role_the_policy_allows(any_crm: CRM) -> None:
    world = build(any_crm)
    max_ = world.users["manager"]
    with pytest.raises(ValidationError) as caught:
        any_crm.as_user(world.users["admin"]).elevated(reason=" ").__enter__()
    assert caught.value.code == "required"
    before = snapshot(any_crm)
    with pytest.raises(AccessDenied, match="elevate crm"):
        any_crm.as_user(max_).elevated(reason="just because").__enter__()
    assert snapshot(any_crm) == before
    policy = Policy(elevate={Role.ADMIN, Role.MANAGER})
    with any_crm.as_user(max_, policy=policy).elevated(reason="covering for Ada") as system:
        assert system.organizations.count() == 3


# ------------------------------------------------------------------- leaks


def test_a_unique_value_of_a_hidden_record_gives_the_error_of_a_visible_one(
    any_crm: CRM,
) -> None:
    """DuplicateError names the entity and field only, whoever holds the value."""
    world = build(any_crm)
    cris = world.users["contributor"]
    for key, ref in (("hidden", "REF-H"), ("zoned", "REF-Z")):
        o = world.org[key]
        any_crm.organizations.update(o.id, expected_version=o.version, external_ref=ref)
    scoped = any_crm.as_user(cris)
    errors = []
    for ref in ("REF-H", "REF-Z"):
        with pytest.raises(DuplicateError) as caught:
            scoped.organizations.create(name="Mine", owner=cris.id, external_ref=ref)
        e = caught.value
        errors.append((str(e), e.entity, e.field, e.candidates))
    assert (
        errors[0]
        == errors[1]
        == (
            "organization: another record has the same external_ref",
            "organization",
            "external_ref",
            (),
        )
    )


def test_the_duplicate_check_in_a_scope_compares_with_visible_records_only(
    backend_url: str, clock: FixedClock
) -> None:
    with crmkit.open(backend_url, clock=clock, duplicate_check="refuse") as crm:
        world = build(crm)
        cris = world.users["contributor"]
        crm.contacts.create(
            first_name="Eva",
            last_name="Hidden",
            email="eva@hidden.es",
            owner=world.users["other"].id,
        )
        scoped = crm.as_user(cris)
        # the hidden Eva is no candidate: the user's contact is created
        mine = scoped.contacts.create(
            first_name="Eva", last_name="Hidden", email="eva@hidden.es", owner=cris.id
        )
        assert mine.owner_id == cris.id
        # a visible one is
        with pytest.raises(DuplicateError) as caught:
            scoped.contacts.create(
                first_name="Eva", last_name="Hidden", email="eva@hidden.es", owner=cris.id
            )
        assert {c.right for c in caught.value.candidates} | {
            c.left for c in caught.value.candidates
        } >= {mine.id}


def test_lead_conversion_matches_only_visible_organizations(any_crm: CRM) -> None:
    world = build(any_crm)
    cris = world.users["contributor"]
    lead = any_crm.leads.create(first_name="Ana", company="Hidden", owner=cris.id)
    conversion = any_crm.as_user(cris).leads.convert(lead.id)
    assert conversion.organization is not None
    assert conversion.organization.id != world.org["hidden"].id  # a new one, hers
    assert conversion.organization.owner_id == cris.id


def test_public_access_types_are_exported() -> None:
    for name in ("Policy", "Principal", "ScopedCRM", "BulkUpdateReport", "BulkRefusal"):
        assert name in crmkit.__all__
    assert Principal is crmkit.Principal


# ------------------------------------------------------ model-based test


def oracle_writes(
    user: User, teams: list[set[Any]], zone_of: dict[Any, Any], opp: Opportunity
) -> bool:
    """Whether ``user`` may change ``opp`` (the rights table, written out plainly)."""
    if user.archived or user.role is Role.GUEST:
        return False
    if user.role is Role.ADMIN:
        return True
    own = opp.owner_id == user.id
    if user.role is Role.CONTRIBUTOR:
        return own
    mates = set().union(*(t for t in teams if user.id in t)) | {user.id}
    in_zone = zone_of.get(opp.organization_id) in set(user.zone_ids)
    return bool(own or opp.owner_id in mates or in_zone)


bulk_worlds = st.fixed_dictionaries(
    {
        "roles": st.lists(st.sampled_from(list(Role)), min_size=3, max_size=3),
        "user_zones": st.lists(st.sets(st.integers(0, 1), max_size=2), min_size=3, max_size=3),
        "team": st.sets(st.integers(0, 2), max_size=3),
        "deals": st.lists(
            st.tuples(st.none() | st.integers(0, 2), st.none() | st.integers(0, 1)),
            min_size=1,
            max_size=8,
        ),
    }
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=bulk_worlds)
def test_a_partial_bulk_update_changes_exactly_what_the_oracle_allows(
    any_crm: CRM, world: dict[str, Any]
) -> None:
    crm = any_crm
    tag = uuid7().hex[-12:]  # examples share the database: keys stay unique
    zones = [crm.zones.create(key=f"z{i}-{tag}", name=f"Z{i} {tag}") for i in range(2)]
    users = [
        crm.users.create(
            name=f"U{i}",
            role=world["roles"][i],
            zone_ids=[zones[z].id for z in sorted(world["user_zones"][i])],
        )
        for i in range(3)
    ]
    if world["team"]:
        crm.teams.create(name=f"T {tag}", members=[users[m].id for m in sorted(world["team"])])
    orgs = [crm.organizations.create(name=f"O{z} {tag}", zone=zones[z].id) for z in range(2)]
    bare = crm.organizations.create(name=f"Bare {tag}")
    deals = [
        crm.opportunities.create(
            name=f"D{n}",
            organization=(bare if zone is None else orgs[zone]).id,
            owner=None if owner is None else users[owner].id,
            amount=EUR,
        )
        for n, (owner, zone) in enumerate(world["deals"])
    ]
    zone_of = {o.id: o.zone_id for o in (*orgs, bare)}
    teams = [set(t.member_ids) for t in crm.teams.find() if t.name == f"T {tag}"]
    for user in users:
        expected = [d.id for d in deals if oracle_writes(user, teams, zone_of, d)]
        current = crm.opportunities.find(In("id", [d.id for d in deals]), order_by="name")
        changes = [(d.id, {"notes": f"by {user.name}"}) for d in current]
        report = crm.as_user(user).opportunities.bulk_update(changes, mode="partial")
        assert list(report.updated) == expected
        assert report.refused_ids == [d.id for d in deals if d.id not in expected]
        assert {r.code for r in report.refused} <= {"denied"}
        stored = {d.id: d.notes for d in crm.opportunities.find(In("id", [d.id for d in deals]))}
        assert {i for i, notes in stored.items() if notes == f"by {user.name}"} == set(expected)
