"""Master lists (sources, markets, positions, zones), users, and seeding the defaults."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import crmkit
from crmkit import (
    ConcurrencyError,
    Contains,
    DuplicateError,
    EmailAddress,
    Market,
    Master,
    MasterService,
    NotFoundError,
    Position,
    Role,
    Source,
    User,
    ValidationError,
    Zone,
)
from crmkit.stores.memory import MemoryStore
from tests.conftest import FixedClock

MASTERS: list[tuple[str, type[Master], str]] = [
    ("sources", Source, "source"),
    ("markets", Market, "market"),
    ("positions", Position, "position"),
    ("zones", Zone, "zone"),
]


@pytest.fixture(params=MASTERS, ids=[name for name, _, _ in MASTERS])
def service(request: pytest.FixtureRequest, crm: crmkit.CRM) -> MasterService[Any, Any]:
    """Each master service of the CRM in turn."""
    name: str = request.param[0]
    found: MasterService[Any, Any] = getattr(crm, name)
    return found


def test_each_master_service_creates_its_own_type(crm: crmkit.CRM) -> None:
    """crm.sources makes Source records, crm.markets Market records, and so on."""
    for name, cls, entity in MASTERS:
        svc: MasterService[Any, Any] = getattr(crm, name)
        created = svc.create(name=f"New {entity}")
        assert isinstance(created, cls)
        assert entity == created.ENTITY


def test_key_is_slugified_from_the_name(service: MasterService[Any, Any]) -> None:
    """ "Gran Cuenta Pública" gets the key "gran-cuenta-publica"."""
    created = service.create(name="  Gran Cuenta Pública ", name_es="Gran cuenta pública")

    assert "gran-cuenta-publica" == created.key
    assert "Gran Cuenta Pública" == created.name
    assert created == service.get_by_key("gran-cuenta-publica")
    assert created == service.get(created.id)


def test_explicit_key_is_kept(service: MasterService[Any, Any]) -> None:
    """A key passed in is used as given."""
    created = service.create(name="Big accounts", key="key_accounts")

    assert "key_accounts" == created.key


def test_labels_in_english_and_spanish(service: MasterService[Any, Any]) -> None:
    """label("es") is the Spanish name, falling back to English when missing."""
    both = service.create(name="North", name_es="Norte")
    english = service.create(name="South")

    assert ("Norte", "North") == (both.label("es"), both.label("en"))
    assert "South" == english.label("es")


def test_duplicate_key_raises_duplicate_error(service: MasterService[Any, Any]) -> None:
    """A second entry whose name slugs to a taken key is refused; the first stays."""
    first = service.create(name="Retail")
    before = service.count(archived=None)

    with pytest.raises(DuplicateError) as info:
        service.create(name="RETAIL")

    assert "key" == info.value.field
    assert first.ENTITY == info.value.entity
    assert before == service.count(archived=None)


def test_archived_entries_still_hold_their_key(service: MasterService[Any, Any]) -> None:
    """Archiving does not free the key: keys are unique among all entries."""
    first = service.create(name="Retail")
    service.archive(first.id, expected_version=1)

    with pytest.raises(DuplicateError):
        service.create(name="Retail")


def test_get_by_unknown_key_raises_not_found_error(service: MasterService[Any, Any]) -> None:
    """NotFoundError carries the entity type and the key."""
    with pytest.raises(NotFoundError) as info:
        service.get_by_key("no-such-key")

    assert "no-such-key" == info.value.id
    assert info.value.entity in {"source", "market", "position", "zone"}


@pytest.mark.parametrize("key", ["Retail", "con espacios", "-leading", "x" * 65, "ñu", ""])
def test_invalid_explicit_key_raises_validation_error(
    service: MasterService[Any, Any], key: str
) -> None:
    """Keys are 1-64 lower-case letters, digits, '-' or '_'."""
    before = service.count(archived=None)

    with pytest.raises(ValidationError) as info:
        service.create(name="Retail", key=key)

    assert ("key", "key") == (info.value.field, info.value.code)
    assert before == service.count(archived=None)


def test_name_without_letters_or_digits_needs_an_explicit_key(
    service: MasterService[Any, Any],
) -> None:
    """A name that slugs to nothing is refused on field key."""
    with pytest.raises(ValidationError) as info:
        service.create(name="¡¿?!")

    assert "key" == info.value.field


@pytest.mark.parametrize("name", [None, "", "   ", 42])
def test_invalid_name_raises_validation_error_on_name(
    service: MasterService[Any, Any], name: object
) -> None:
    """A missing or non-text name is reported on field name, not key."""
    with pytest.raises(ValidationError) as info:
        service.create(name=name)  # type: ignore[arg-type]

    assert "name" == info.value.field


@pytest.mark.parametrize(
    ("argument", "value"),
    [("name_es", 1), ("description", ["x"]), ("external_ref", 2), ("name", "x" * 201)],
)
def test_create_with_a_bad_argument_raises_validation_error(
    service: MasterService[Any, Any], argument: str, value: object
) -> None:
    """Each argument is checked and named; nothing is stored."""
    before = service.count(archived=None)
    kwargs: dict[str, Any] = {"name": "Retail", "key": "retail", argument: value}

    with pytest.raises(ValidationError) as info:
        service.create(**kwargs)

    assert argument == info.value.field
    assert before == service.count(archived=None)


def test_update_changes_labels_but_not_the_key(
    service: MasterService[Any, Any], clock: FixedClock
) -> None:
    """update() renames the entry; its key stays what references use."""
    created = service.create(name="Retail")
    clock.advance(days=1)

    renamed = service.update(
        created.id, expected_version=1, name="Retail trade", name_es="Comercio"
    )

    assert ("retail", "Retail trade", "Comercio", 2) == (
        renamed.key,
        renamed.name,
        renamed.label("es"),
        renamed.version,
    )
    assert clock.current == renamed.updated_at
    assert renamed == service.get_by_key("retail")


def test_update_with_a_stale_version_raises_concurrency_error(
    service: MasterService[Any, Any],
) -> None:
    """The master keeps the first writer's change."""
    created = service.create(name="Retail")
    first = service.update(created.id, expected_version=1, name="Retail 1")

    with pytest.raises(ConcurrencyError):
        service.update(created.id, expected_version=1, name="Retail 2")

    assert first == service.get(created.id)


def test_update_with_no_change_keeps_the_version(service: MasterService[Any, Any]) -> None:
    """Renaming to the same name is a no-op."""
    created = service.create(name="Retail")

    assert created == service.update(created.id, expected_version=1, name="Retail")


def test_archive_restore_find_and_count(service: MasterService[Any, Any]) -> None:
    """Archived entries leave find() and count() unless asked for."""
    keep = service.create(name="Keep me", key="zz-keep")
    drop = service.create(name="Drop me", key="zz-drop")
    dropped = service.archive(drop.id, expected_version=1)

    assert [keep] == service.find(Contains("key", "zz-"))
    assert [dropped] == service.find(Contains("key", "zz-"), archived=True)
    assert 2 == service.count(Contains("key", "zz-"), archived=None)

    restored = service.restore(drop.id, expected_version=2)

    assert [restored, keep] == service.find(Contains("key", "zz-"), order_by="name")


def test_archived_master_can_still_be_referenced_by_key(crm: crmkit.CRM) -> None:
    """References resolve archived entries too, so old data can be edited."""
    retail = crm.markets.create(name="Retail")
    crm.markets.archive(retail.id, expected_version=1)

    acme = crm.organizations.create(name="Acme", market="retail")

    assert retail.id == acme.market_id


# ------------------------------------------------------------------ seeding


def test_open_seeds_the_default_sources_and_positions(crm: crmkit.CRM) -> None:
    """The built-in plugin seeds 8 sources and 7 positions, no markets or zones."""
    assert (8, 7, 0, 0) == (
        crm.sources.count(),
        crm.positions.count(),
        crm.markets.count(),
        crm.zones.count(),
    )
    referral = crm.sources.get_by_key("referral")
    assert ("Referral", "Referido") == (referral.name, referral.name_es)
    assert "Compras" == crm.positions.get_by_key("purchasing").label("es")


def test_seeding_again_creates_nothing(crm: crmkit.CRM) -> None:
    """seed_masters() on a seeded CRM creates 0 entries."""
    before = (crm.sources.count(), crm.positions.count())

    assert 0 == crm.seed_masters()
    assert before == (crm.sources.count(), crm.positions.count())


def test_reopening_a_store_does_not_seed_twice(clock: FixedClock) -> None:
    """A second open() on the same store finds the seeds and adds none."""
    store = MemoryStore()
    with crmkit.open(store=store, clock=clock) as first:
        first_ids = [s.id for s in first.sources.find(order_by="key")]
    with crmkit.open(store=store, clock=clock) as second:
        assert first_ids == [s.id for s in second.sources.find(order_by="key")]


def test_seeding_keeps_what_users_changed(clock: FixedClock) -> None:
    """A renamed or archived seed entry is not overwritten or restored by seeding."""
    with crmkit.open(":memory:", clock=clock) as crm:
        web = crm.sources.get_by_key("web")
        crm.sources.update(web.id, expected_version=1, name="Our website")
        referral = crm.sources.get_by_key("referral")
        crm.sources.archive(referral.id, expected_version=1)

        assert 0 == crm.seed_masters()

        assert "Our website" == crm.sources.get_by_key("web").name
        assert crm.sources.get_by_key("referral").archived


def test_builtins_false_seeds_nothing(clock: FixedClock) -> None:
    """Without the built-in plugin no sources or positions are created."""
    with crmkit.open(":memory:", clock=clock, builtins=False) as crm:
        assert (0, 0) == (crm.sources.count(), crm.positions.count())
        assert 0 == crm.seed_masters()


def test_seed_masters_false_defers_seeding(clock: FixedClock) -> None:
    """With seed_masters=False nothing is created until crm.seed_masters() is called."""
    with crmkit.open(":memory:", clock=clock, seed_masters=False) as crm:
        assert 0 == crm.sources.count() + crm.positions.count()

        assert 29 == crm.seed_masters()  # sources, positions, loss reasons, outcomes
        assert (8, 7, 7) == (
            crm.sources.count(),
            crm.positions.count(),
            crm.loss_reasons.count(),
        )


def test_seeded_entries_are_audited(crm: crmkit.CRM, clock: FixedClock) -> None:
    """Each seeded entry has a create entry in its history, stamped by the clock."""
    web = crm.sources.get_by_key("web")

    (entry,) = crm.history(web.id)

    assert ("create", "source", 1, clock.current) == (
        entry.action.value,
        entry.entity,
        entry.version,
        entry.at,
    )


# -------------------------------------------------------------------- users


def test_users_create_get_update_archive(crm: crmkit.CRM) -> None:
    """A user has a name, an e-mail and a role (contributor by default)."""
    ana = crm.users.create(name="Ana", email="ana@acme.es")

    assert Role.CONTRIBUTOR == ana.role
    assert EmailAddress("ana@acme.es") == ana.email
    assert ana == crm.users.get(ana.id)

    manager = crm.users.update(ana.id, expected_version=1, role="manager")
    assert (Role.MANAGER, 2) == (manager.role, manager.version)

    archived = crm.users.archive(ana.id, expected_version=2)
    assert [] == crm.users.find()
    assert [archived] == crm.users.find(archived=True)
    assert [crm.users.restore(ana.id, expected_version=3)] == crm.users.find()


def test_find_users_by_role(crm: crmkit.CRM) -> None:
    """Users filter by role (member or value) and sort by name."""
    crm.users.create(name="Zoe", role=Role.ADMIN)
    crm.users.create(name="Ana", role="admin")
    crm.users.create(name="Luis")

    admins: list[User] = crm.users.find(role="admin", order_by="name")

    assert ["Ana", "Zoe"] == [u.name for u in admins]
    assert 1 == crm.users.count(role=Role.CONTRIBUTOR)


def test_users_external_ref_is_unique(crm: crmkit.CRM) -> None:
    """Two users cannot share an external_ref."""
    ana = crm.users.create(name="Ana", external_ref="u-1")

    with pytest.raises(DuplicateError):
        crm.users.create(name="Ana 2", external_ref="u-1")

    assert ana == crm.users.get_by_external_ref("u-1")


def test_get_unknown_user_raises_not_found_error(crm: crmkit.CRM) -> None:
    """NotFoundError names the user entity."""
    missing = crmkit.UserId(uuid.uuid4())

    with pytest.raises(NotFoundError) as info:
        crm.users.get(missing)

    assert ("user", missing) == (info.value.entity, info.value.id)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("name", None),
        ("name", 1),
        ("email", "not an e-mail"),
        ("email", 1),
        ("role", "king"),
        ("role", None),
        ("external_ref", 1),
    ],
)
def test_create_user_with_a_bad_argument_raises_validation_error(
    crm: crmkit.CRM, argument: str, value: object
) -> None:
    """Each argument is checked and named; no user is stored."""
    kwargs: dict[str, Any] = {"name": "Ana", argument: value}

    with pytest.raises(ValidationError) as info:
        crm.users.create(**kwargs)

    assert argument == info.value.field
    assert 0 == crm.users.count(archived=None)


def test_masters_and_users_can_be_bulk_created(crm: crmkit.CRM) -> None:
    """bulk_create lives on every service: zones and users in one call each."""
    zones = crm.zones.bulk_create([{"name": "Norte"}, {"name": "Sur", "name_es": "Sur"}])
    users = crm.users.bulk_create([{"name": "Ana", "role": "manager"}])
    assert ["norte", "sur"] == [z.key for z in zones]
    assert [crmkit.Role.MANAGER] == [u.role for u in users]
    assert 2 == crm.zones.count()
