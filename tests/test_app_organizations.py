"""The organizations service: create, get, update, archive, restore, find, count."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import crmkit
from crmkit import (
    Address,
    AuditAction,
    AuditChange,
    ConcurrencyError,
    Contains,
    DuplicateError,
    EmailAddress,
    Eq,
    Has,
    In,
    Lifecycle,
    NotFoundError,
    Organization,
    OrganizationId,
    OrganizationKind,
    OrganizationStatus,
    PhoneNumber,
    Range,
    ValidationError,
)
from crmkit.core.entities import Entity
from tests.conftest import FixedClock
from tests.conftest import record_counts as counts

# ------------------------------------------------------------------ create


def test_create_returns_the_stored_organization_at_version_1(
    crm: crmkit.CRM, clock: FixedClock
) -> None:
    """A created organization is stored as returned, at version 1, stamped by the clock."""
    acme = crm.organizations.create(
        name="Acme S.A.",
        legal_name="Acme Sociedad Anónima",
        kinds=["customer", OrganizationKind.PARTNER],
        status="active",
        lifecycle="customer",
        tax_id="A12345678",
        addresses=[Address(city="Madrid", country="es")],
        phones=["+34 911 234 567"],
        emails=["ventas@acme.es"],
        website="acme.es",
        tags=["vip"],
        notes="Key account",
        external_ref="ERP-1",
    )

    assert acme == crm.organizations.get(acme.id)
    assert 1 == acme.version
    assert clock.current == acme.created_at == acme.updated_at
    assert frozenset({OrganizationKind.CUSTOMER, OrganizationKind.PARTNER}) == acme.kinds
    assert OrganizationStatus.ACTIVE == acme.status
    assert Lifecycle.CUSTOMER == acme.lifecycle
    assert (PhoneNumber("+34911234567"),) == acme.phones
    assert (EmailAddress("ventas@acme.es"),) == acme.emails
    assert "https://acme.es" == acme.website
    assert "ES" == acme.addresses[0].country
    assert not acme.archived


def test_create_uses_defaults_for_arguments_left_out(crm: crmkit.CRM) -> None:
    """Only the name is required; status is active and lifecycle target by default."""
    acme = crm.organizations.create(name="Acme")

    assert OrganizationStatus.ACTIVE == acme.status
    assert Lifecycle.TARGET == acme.lifecycle
    assert frozenset() == acme.kinds
    assert () == acme.phones
    assert acme.market_id is None


def test_new_organizations_get_distinct_time_ordered_ids(crm: crmkit.CRM) -> None:
    """Ids are distinct UUIDs that sort in creation order."""
    created = [crm.organizations.create(name=f"Org {i}") for i in range(5)]

    ids = [o.id for o in created]
    assert sorted(ids) == ids
    assert 5 == len(set(ids))


def test_national_phone_numbers_are_read_with_the_default_region(crm: crmkit.CRM) -> None:
    """With default_region "ES", "911 234 567" is stored as +34911234567."""
    acme = crm.organizations.create(name="Acme", phones=["911 234 567", "+44 20 7946 0958"])

    assert ["+34911234567", "+442079460958"] == [p.e164 for p in acme.phones]


def test_national_phone_numbers_on_update_are_read_with_the_default_region(
    crm: crmkit.CRM,
) -> None:
    """update() reads national numbers with default_region too."""
    acme = crm.organizations.create(name="Acme")

    updated = crm.organizations.update(acme.id, expected_version=1, phones=["600 123 456"])

    assert ["+34600123456"] == [p.e164 for p in updated.phones]


def test_national_phone_numbers_without_a_default_region_raise_validation_error(
    clock: FixedClock,
) -> None:
    """Without default_region a national number cannot be read: field phones[0]."""
    with crmkit.open(":memory:", clock=clock) as crm:
        with pytest.raises(ValidationError) as info:
            crm.organizations.create(name="Acme", phones=["911 234 567"])

        assert "phones[0]" == info.value.field
        assert "unparseable" == info.value.code
        assert 0 == crm.organizations.count()


def test_phone_with_the_wrong_number_of_digits_names_its_position(crm: crmkit.CRM) -> None:
    """A bad second phone is reported as phones[1] with code "impossible"."""
    with pytest.raises(ValidationError) as info:
        crm.organizations.create(name="Acme", phones=["911 234 567", "12"])

    assert "phones[1]" == info.value.field
    assert "impossible" == info.value.code


# -------------------------------------------------------------- references


def test_references_accept_a_master_key_a_record_or_an_id(crm: crmkit.CRM) -> None:
    """market, source and zone take a key, the master record or its id."""
    retail = crm.markets.create(name="Retail")
    north = crm.zones.create(name="Norte")
    referral = crm.sources.get_by_key("referral")

    by_key = crm.organizations.create(name="A", market="retail", zone="norte", source="referral")
    by_record = crm.organizations.create(name="B", market=retail, zone=north, source=referral)
    by_id = crm.organizations.create(name="C", market=retail.id, zone=north.id, source=referral.id)

    for org in (by_key, by_record, by_id):
        assert (retail.id, north.id, referral.id) == (org.market_id, org.zone_id, org.source_id)


def test_owner_and_parent_accept_a_record_or_an_id(crm: crmkit.CRM) -> None:
    """owner takes a user or its id; parent an organization or its id."""
    ana = crm.users.create(name="Ana")
    group = crm.organizations.create(name="Acme Group")

    by_record = crm.organizations.create(name="Acme Iberia", owner=ana, parent=group)
    by_id = crm.organizations.create(name="Acme France", owner=ana.id, parent=group.id)

    assert (ana.id, group.id) == (by_record.owner_id, by_record.parent_id)
    assert (ana.id, group.id) == (by_id.owner_id, by_id.parent_id)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("market", "no-such-market"),
        ("zone", "no-such-zone"),
        ("source", "no-such-source"),
        ("market", uuid.UUID(int=1)),
        ("owner", uuid.UUID(int=1)),
        ("parent", uuid.UUID(int=1)),
    ],
)
def test_unknown_reference_raises_validation_error_naming_the_argument(
    crm: crmkit.CRM, argument: str, value: object
) -> None:
    """An unknown key or id is a ValidationError with code "reference" and the argument's name."""
    before = counts(crm)
    kwargs: dict[str, Any] = {argument: value}

    with pytest.raises(ValidationError) as info:
        crm.organizations.create(name="Acme", **kwargs)

    assert (argument, "reference") == (info.value.field, info.value.code)
    assert value == info.value.value
    assert before == counts(crm)


def test_master_of_another_kind_is_not_accepted_as_reference(crm: crmkit.CRM) -> None:
    """A Source record passed as market is refused: field market, code type."""
    web = crm.sources.get_by_key("web")

    with pytest.raises(ValidationError) as info:
        crm.organizations.create(name="Acme", market=web)  # type: ignore[arg-type]

    assert ("market", "type") == (info.value.field, info.value.code)


def test_id_of_another_kind_of_master_is_not_a_valid_reference(crm: crmkit.CRM) -> None:
    """The id of a source does not name a market."""
    web = crm.sources.get_by_key("web")

    with pytest.raises(ValidationError) as info:
        crm.organizations.create(name="Acme", market=web.id)  # type: ignore[arg-type]

    assert ("market", "reference") == (info.value.field, info.value.code)


def test_update_can_clear_a_reference_with_none(crm: crmkit.CRM) -> None:
    """market=None on update removes the market."""
    crm.markets.create(name="Retail")
    acme = crm.organizations.create(name="Acme", market="retail")

    updated = crm.organizations.update(acme.id, expected_version=1, market=None)

    assert updated.market_id is None


# ------------------------------------------------------------------- reads


def test_get_of_an_unknown_id_raises_not_found_error(crm: crmkit.CRM) -> None:
    """NotFoundError carries the entity type and the id asked for."""
    missing = OrganizationId(uuid.uuid4())

    with pytest.raises(NotFoundError) as info:
        crm.organizations.get(missing)

    assert ("organization", missing) == (info.value.entity, info.value.id)


def test_get_with_something_else_than_a_uuid_raises_validation_error(crm: crmkit.CRM) -> None:
    """get("acme") is a ValidationError on field id."""
    with pytest.raises(ValidationError) as info:
        crm.organizations.get("acme")  # type: ignore[arg-type]

    assert ("id", "type") == (info.value.field, info.value.code)


def test_get_by_external_ref_finds_the_record(crm: crmkit.CRM) -> None:
    """The host system's key finds the organization."""
    acme = crm.organizations.create(name="Acme", external_ref="ERP-42")

    assert acme == crm.organizations.get_by_external_ref("ERP-42")


def test_get_by_unknown_external_ref_raises_not_found_error(crm: crmkit.CRM) -> None:
    """An unknown external_ref is a NotFoundError carrying the ref."""
    with pytest.raises(NotFoundError) as info:
        crm.organizations.get_by_external_ref("ERP-404")

    assert ("organization", "ERP-404") == (info.value.entity, info.value.id)


def test_get_by_external_ref_with_a_non_string_raises_validation_error(crm: crmkit.CRM) -> None:
    """get_by_external_ref(["x"]) is a ValidationError on field external_ref."""
    with pytest.raises(ValidationError) as info:
        crm.organizations.get_by_external_ref(["ERP-1"])  # type: ignore[arg-type]

    assert "external_ref" == info.value.field


def test_duplicate_external_ref_raises_duplicate_error(crm: crmkit.CRM) -> None:
    """Two organizations cannot share an external_ref; the second is not stored."""
    crm.organizations.create(name="Acme", external_ref="ERP-1")

    with pytest.raises(DuplicateError) as info:
        crm.organizations.create(name="Acme bis", external_ref="ERP-1")

    assert ("organization", "external_ref") == (info.value.entity, info.value.field)
    assert 1 == crm.organizations.count()


def test_update_to_a_taken_external_ref_raises_duplicate_error(crm: crmkit.CRM) -> None:
    """Updating to another record's external_ref changes nothing."""
    crm.organizations.create(name="Acme", external_ref="ERP-1")
    other = crm.organizations.create(name="Other", external_ref="ERP-2")

    with pytest.raises(DuplicateError):
        crm.organizations.update(other.id, expected_version=1, external_ref="ERP-1")

    assert other == crm.organizations.get(other.id)
    assert 1 == len(crm.history(other.id))


def test_archived_records_keep_their_external_ref(crm: crmkit.CRM) -> None:
    """An archived organization still holds its external_ref, so it is still unique."""
    acme = crm.organizations.create(name="Acme", external_ref="ERP-1")
    crm.organizations.archive(acme.id, expected_version=1)

    with pytest.raises(DuplicateError):
        crm.organizations.create(name="Acme again", external_ref="ERP-1")

    assert acme.id == crm.organizations.get_by_external_ref("ERP-1").id


# ------------------------------------------------------------------ update


def test_update_changes_the_given_fields_and_bumps_the_version(
    crm: crmkit.CRM, clock: FixedClock
) -> None:
    """Fields passed change, fields left out keep their value, version goes up by one."""
    acme = crm.organizations.create(name="Acme", tax_id="A1", emails=["a@acme.es"])
    later = clock.advance(hours=1)

    updated = crm.organizations.update(
        acme.id, expected_version=1, website="https://acme.es", kinds=["prospect"]
    )

    assert 2 == updated.version
    assert "https://acme.es" == updated.website
    assert frozenset({OrganizationKind.PROSPECT}) == updated.kinds
    assert ("Acme", "A1", acme.emails) == (updated.name, updated.tax_id, updated.emails)
    assert (acme.created_at, later) == (updated.created_at, updated.updated_at)
    assert updated == crm.organizations.get(acme.id)


def test_update_with_a_stale_version_raises_concurrency_error_and_changes_nothing(
    crm: crmkit.CRM,
) -> None:
    """A writer holding version 1 after someone saved version 2 gets ConcurrencyError."""
    acme = crm.organizations.create(name="Acme")
    current = crm.organizations.update(acme.id, expected_version=1, name="Acme S.A.")

    with pytest.raises(ConcurrencyError) as info:
        crm.organizations.update(acme.id, expected_version=1, name="ACME")

    assert ("organization", acme.id) == (info.value.entity, info.value.id)
    assert (1, 2) == (info.value.expected_version, info.value.actual_version)
    assert current == crm.organizations.get(acme.id)
    assert 2 == len(crm.history(acme.id))


def test_update_that_changes_nothing_keeps_the_version(crm: crmkit.CRM, clock: FixedClock) -> None:
    """Setting fields to the values they have is a no-op: same version, no audit entry."""
    acme = crm.organizations.create(name="Acme", emails=["a@acme.es"], kinds=["customer"])
    clock.advance(minutes=5)

    same = crm.organizations.update(
        acme.id, expected_version=1, name="Acme", emails=["a@acme.es"], kinds=["customer"]
    )

    assert acme == same
    assert 1 == crm.organizations.get(acme.id).version
    assert 1 == len(crm.history(acme.id))


def test_update_of_an_unknown_id_raises_not_found_error(crm: crmkit.CRM) -> None:
    """Updating an organization that does not exist is a NotFoundError."""
    missing = OrganizationId(uuid.uuid4())

    with pytest.raises(NotFoundError) as info:
        crm.organizations.update(missing, expected_version=1, name="X")

    assert ("organization", missing) == (info.value.entity, info.value.id)


@pytest.mark.parametrize("version", [0, -1, True, "1", None])
def test_update_with_a_bad_expected_version_raises_validation_error(
    crm: crmkit.CRM, version: object
) -> None:
    """expected_version must be a positive integer."""
    acme = crm.organizations.create(name="Acme")

    with pytest.raises(ValidationError) as info:
        crm.organizations.update(acme.id, expected_version=version, name="X")  # type: ignore[arg-type]

    assert "expected_version" == info.value.field
    assert acme == crm.organizations.get(acme.id)


@pytest.mark.parametrize("field", sorted(Entity.SYSTEM_FIELDS))
def test_system_fields_cannot_be_updated(crm: crmkit.CRM, field: str) -> None:
    """id, version, created_at, updated_at and archived are not update() arguments."""
    acme = crm.organizations.create(name="Acme")
    kwargs: dict[str, Any] = {field: None}

    with pytest.raises(TypeError):
        crm.organizations.update(acme.id, expected_version=1, **kwargs)

    assert acme == crm.organizations.get(acme.id)


def test_invalid_update_changes_nothing(crm: crmkit.CRM) -> None:
    """A bad value in one field leaves every field, the version and the history as they were."""
    acme = crm.organizations.create(name="Acme")

    with pytest.raises(ValidationError) as info:
        crm.organizations.update(
            acme.id, expected_version=1, name="Acme S.A.", emails=["ok@acme.es", "not-an-email"]
        )

    assert "emails[1]" == info.value.field
    assert acme == crm.organizations.get(acme.id)
    assert 1 == len(crm.history(acme.id))


# -------------------------------------------------------- archive / restore


def test_archive_and_restore_bump_the_version(crm: crmkit.CRM) -> None:
    """archive() sets archived and version 2; restore() clears it at version 3."""
    acme = crm.organizations.create(name="Acme")

    archived = crm.organizations.archive(acme.id, expected_version=1)
    restored = crm.organizations.restore(acme.id, expected_version=2)

    assert (True, 2) == (archived.archived, archived.version)
    assert (False, 3) == (restored.archived, restored.version)
    assert restored == crm.organizations.get(acme.id)


def test_archive_of_an_archived_record_is_a_no_op(crm: crmkit.CRM) -> None:
    """Archiving twice keeps the version of the first archive."""
    acme = crm.organizations.create(name="Acme")
    archived = crm.organizations.archive(acme.id, expected_version=1)

    again = crm.organizations.archive(acme.id, expected_version=2)

    assert archived == again
    assert 2 == len(crm.history(acme.id))


def test_archive_with_a_stale_version_raises_concurrency_error(crm: crmkit.CRM) -> None:
    """archive() checks expected_version like update()."""
    acme = crm.organizations.create(name="Acme")
    crm.organizations.update(acme.id, expected_version=1, name="Acme S.A.")

    with pytest.raises(ConcurrencyError):
        crm.organizations.archive(acme.id, expected_version=1)

    assert not crm.organizations.get(acme.id).archived


def test_archived_records_are_hidden_by_default(crm: crmkit.CRM) -> None:
    """find/count hide archived records; archived=True shows only them; None shows all."""
    kept = crm.organizations.create(name="Kept")
    gone = crm.organizations.create(name="Gone")
    gone = crm.organizations.archive(gone.id, expected_version=1)

    assert [kept] == crm.organizations.find()
    assert [gone] == crm.organizations.find(archived=True)
    assert [kept, gone] == crm.organizations.find(archived=None)
    assert (1, 1, 2) == (
        crm.organizations.count(),
        crm.organizations.count(archived=True),
        crm.organizations.count(archived=None),
    )
    assert gone == crm.organizations.get(gone.id)


# -------------------------------------------------------------------- find


@pytest.fixture
def book(crm: crmkit.CRM) -> dict[str, Organization]:
    """Four organizations in two markets with tags, kinds and a missing website."""
    crm.markets.create(name="Retail")
    crm.markets.create(name="Industry")
    return {
        "acme": crm.organizations.create(
            name="Acme", market="retail", tags=["vip"], kinds=["customer"], website="acme.es"
        ),
        "bolt": crm.organizations.create(
            name="Bolt", market="industry", kinds=["prospect"], website="bolt.com"
        ),
        "cima": crm.organizations.create(name="Cima", market="retail", tags=["vip", "new"]),
        "duna": crm.organizations.create(name="duna", lifecycle="customer", website="duna.es"),
    }


def names(orgs: list[Organization]) -> list[str]:
    """The names of ``orgs``, in order."""
    return [o.name for o in orgs]


def test_find_by_equality_keyword(crm: crmkit.CRM, book: dict[str, Organization]) -> None:
    """name="Bolt" finds Bolt; a reference keyword takes a key."""
    assert ["Bolt"] == names(crm.organizations.find(name="Bolt"))
    assert ["Acme", "Cima"] == names(crm.organizations.find(market="retail", order_by="name"))
    assert ["Acme", "Cima"] == names(
        crm.organizations.find(market=crm.markets.get_by_key("retail"), order_by="name")
    )


def test_find_with_none_matches_a_missing_value(
    crm: crmkit.CRM, book: dict[str, Organization]
) -> None:
    """market=None finds organizations without a market."""
    assert ["duna"] == names(crm.organizations.find(market=None))


def test_find_with_typed_filters(crm: crmkit.CRM, book: dict[str, Organization]) -> None:
    """Contains, In, Range, Has and Eq select what they say."""
    orgs = crm.organizations

    assert ["Acme", "Cima"] == names(orgs.find(Has("tags", "vip"), order_by="name"))
    assert ["Bolt"] == names(orgs.find(Has("kinds", OrganizationKind.PROSPECT)))
    assert ["Acme"] == names(orgs.find(Has("kinds", "customer")))
    assert ["Acme", "duna"] == names(orgs.find(Contains("website", ".ES"), order_by="name"))
    assert ["Bolt", "duna"] == names(
        orgs.find(In("name", ["Bolt", "duna", "nobody"]), order_by="name")
    )
    assert ["Bolt", "Cima"] == names(orgs.find(Range("name", "B", "D"), order_by="name"))
    assert ["duna"] == names(orgs.find(Eq("lifecycle", Lifecycle.CUSTOMER)))
    assert ["duna"] == names(orgs.find(Eq("lifecycle", "customer")))
    assert ["Cima"] == names(
        orgs.find(Has("tags", "vip"), In("market", ["retail"]), Has("tags", "new"))
    )


def test_find_by_range_of_creation_time(crm: crmkit.CRM, clock: FixedClock) -> None:
    """Range on created_at includes low and excludes high unless include_high."""
    first = crm.organizations.create(name="First")
    noon = clock.advance(hours=3)
    second = crm.organizations.create(name="Second")
    clock.advance(hours=3)
    third = crm.organizations.create(name="Third")

    assert [second] == crm.organizations.find(Range("created_at", noon, clock.current))
    assert [second, third] == crm.organizations.find(
        Range("created_at", noon, clock.current, include_high=True)
    )
    assert [first] == crm.organizations.find(Range("created_at", None, noon))


def test_count_takes_the_same_filters_as_find(
    crm: crmkit.CRM, book: dict[str, Organization]
) -> None:
    """count() agrees with len(find()) for the same criteria."""
    assert len(crm.organizations.find(Has("tags", "vip"))) == crm.organizations.count(
        Has("tags", "vip")
    )
    assert 2 == crm.organizations.count(market="retail")
    assert 4 == crm.organizations.count()


def test_order_by_sorts_ascending_or_descending_with_none_last(
    crm: crmkit.CRM, book: dict[str, Organization]
) -> None:
    """order_by="website" puts the missing website last; "-website" too."""
    assert ["Acme", "Bolt", "duna", "Cima"] == names(crm.organizations.find(order_by="website"))
    assert ["duna", "Bolt", "Acme", "Cima"] == names(crm.organizations.find(order_by="-website"))


def test_order_by_several_fields(crm: crmkit.CRM, book: dict[str, Organization]) -> None:
    """A list of fields sorts by the first, then the next."""
    found = crm.organizations.find(order_by=["market", "-name"])

    market_ids = [o.market_id for o in found]
    assert market_ids[-1] is None
    assert sorted(market_ids[:-1], key=str) == market_ids[:-1]
    retail = crm.markets.get_by_key("retail").id
    assert ["Cima", "Acme"] == [o.name for o in found if o.market_id == retail]


def test_paging_with_limit_and_offset_is_stable(crm: crmkit.CRM) -> None:
    """Pages of equal names never repeat or skip a record: ties are broken by id."""
    created = [crm.organizations.create(name="Same") for _ in range(7)]

    pages = [crm.organizations.find(order_by="name", limit=3, offset=o) for o in (0, 3, 6)]

    assert [3, 3, 1] == [len(p) for p in pages]
    assert [o.id for o in created] == [o.id for page in pages for o in page]
    assert [] == crm.organizations.find(limit=3, offset=7)
    assert [] == crm.organizations.find(limit=0)


@pytest.mark.parametrize(
    ("kwargs", "field", "code"),
    [
        ({"nickname": "x"}, "nickname", "unknown_field"),
        ({"order_by": "nickname"}, "nickname", "unknown_field"),
        ({"order_by": "tags"}, "tags", "order"),
        ({"tags": "vip"}, "tags", "operator"),
        ({"name": ["Acme"]}, "name", "type"),
        ({"created_at": "2026-01-01"}, "created_at", "type"),
        ({"limit": -1}, "limit", "invalid"),
        ({"limit": "10"}, "limit", "invalid"),
        ({"limit": True}, "limit", "invalid"),
        ({"limit": 10**9}, "limit", "invalid"),
        ({"offset": -1}, "offset", "invalid"),
        ({"offset": 1.5}, "offset", "invalid"),
        ({"archived": "yes"}, "archived", "invalid"),
        ({"market": "no-such-market"}, "market", "reference"),
        ({"market": 42}, "market", "type"),
    ],
)
def test_find_with_bad_criteria_raises_validation_error(
    crm: crmkit.CRM,
    book: dict[str, Organization],
    kwargs: dict[str, Any],
    field: str,
    code: str,
) -> None:
    """Unknown fields, wrong value types and bad paging name the offending field."""
    with pytest.raises(ValidationError) as info:
        crm.organizations.find(**kwargs)

    assert (field, code) == (info.value.field, info.value.code)


@pytest.mark.parametrize(
    ("where", "field", "code"),
    [
        (Contains("tags", "vip"), "tags", "operator"),
        (Has("name", "Acme"), "name", "operator"),
        (Contains("status", "act"), "status", "operator"),
        (Contains("name", ""), "name", "type"),
        (Range("created_at", "2026-01-01"), "created_at", "type"),
        (Eq("archived", "no"), "archived", "type"),
        (In("id", ["not-a-uuid"]), "id", "type"),
    ],
)
def test_find_with_a_misused_filter_raises_validation_error(
    crm: crmkit.CRM, book: dict[str, Organization], where: Any, field: str, code: str
) -> None:
    """A filter that does not fit its field's kind is a ValidationError on that field."""
    with pytest.raises(ValidationError) as info:
        crm.organizations.find(where)

    assert (field, code) == (info.value.field, info.value.code)


def test_misused_filter_on_a_reference_names_the_argument(
    crm: crmkit.CRM, book: dict[str, Organization]
) -> None:
    """Contains("market", ...) is reported on field market, as the caller wrote it."""
    with pytest.raises(ValidationError) as info:
        crm.organizations.find(Contains("market", "ret"))

    assert ("market", "operator") == (info.value.field, info.value.code)


def test_find_with_something_else_than_a_filter_raises_validation_error(
    crm: crmkit.CRM,
) -> None:
    """find("Acme") is a ValidationError, not an AttributeError."""
    with pytest.raises(ValidationError):
        crm.organizations.find("Acme")  # type: ignore[arg-type]


@pytest.mark.parametrize("order_by", [None, [1]])
def test_find_with_a_malformed_order_by_raises_validation_error(
    crm: crmkit.CRM, order_by: object
) -> None:
    """order_by must be a field name or a list of them."""
    with pytest.raises(ValidationError) as info:
        crm.organizations.find(order_by=order_by)  # type: ignore[arg-type]

    assert "order_by" == info.value.field


@pytest.mark.parametrize("where", [Has("tags", ["vip"]), In("status", [["active"]])])
def test_find_with_an_unhashable_value_raises_validation_error(
    crm: crmkit.CRM, book: dict[str, Organization], where: Any
) -> None:
    """A list where one value belongs is a ValidationError, not a TypeError."""
    with pytest.raises(ValidationError):
        crm.organizations.find(where)


def test_range_mixing_text_and_numbers_raises_validation_error(
    crm: crmkit.CRM, book: dict[str, Organization]
) -> None:
    """Range("name", 5, "z") is a ValidationError, not a TypeError."""
    with pytest.raises(ValidationError):
        crm.organizations.find(Range("name", 5, "z"))


# ------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("argument", "value", "field"),
    [
        ("name", None, "name"),
        ("name", "", "name"),
        ("name", 42, "name"),
        ("name", "x" * 301, "name"),
        ("name", "Acme\x00", "name"),
        ("legal_name", 42, "legal_name"),
        ("kinds", "customer", "kinds"),
        ("kinds", ["customer", "friend"], "kinds[1]"),
        ("kinds", None, "kinds"),
        ("status", "sleeping", "status"),
        ("status", None, "status"),
        ("lifecycle", 3, "lifecycle"),
        ("tax_id", 123, "tax_id"),
        ("tax_id", "x" * 33, "tax_id"),
        ("addresses", [{"city": "Madrid"}], "addresses[0]"),
        ("addresses", "Madrid", "addresses"),
        ("phones", "+34911234567", "phones"),
        ("phones", [34911234567], "phones[0]"),
        ("phones", ["call me"], "phones[0]"),
        ("emails", ["ok@acme.es", "nope"], "emails[1]"),
        ("emails", [7], "emails[0]"),
        ("emails", "a@acme.es", "emails"),
        ("website", 42, "website"),
        ("website", "ftp://acme.es", "website"),
        ("market", 42, "market"),
        ("source", 4.2, "source"),
        ("zone", ["norte"], "zone"),
        ("owner", "ana", "owner"),
        ("parent", "acme", "parent"),
        ("tags", "vip", "tags"),
        ("tags", [1], "tags[0]"),
        ("tags", ["x"] * 51, "tags"),
        ("notes", b"bytes", "notes"),
        ("external_ref", 1, "external_ref"),
    ],
)
def test_create_with_a_bad_argument_raises_validation_error_and_changes_nothing(
    crm: crmkit.CRM, argument: str, value: object, field: str
) -> None:
    """Every argument is checked at run time; the error names it and nothing is stored."""
    before = counts(crm)
    kwargs: dict[str, Any] = {"name": "Acme", argument: value}

    with pytest.raises(ValidationError) as info:
        crm.organizations.create(**kwargs)

    assert field == info.value.field
    assert before == counts(crm)


# ----------------------------------------------------------------- history


def test_history_records_each_change_in_order(crm: crmkit.CRM, clock: FixedClock) -> None:
    """create, update, archive and restore appear in order with versions, values and times."""
    created_at = clock.current
    acme = crm.organizations.create(name="Acme", emails=["a@acme.es"])
    updated_at = clock.advance(minutes=1)
    crm.organizations.update(
        acme.id, expected_version=1, website="acme.es", emails=["a@acme.es", "b@acme.es"]
    )
    clock.advance(minutes=1)
    crm.organizations.archive(acme.id, expected_version=2)
    clock.advance(minutes=1)
    crm.organizations.restore(acme.id, expected_version=3)

    history = crm.history(acme.id)

    assert [AuditAction.CREATE, AuditAction.UPDATE, AuditAction.ARCHIVE, AuditAction.RESTORE] == [
        e.action for e in history
    ]
    assert [1, 2, 3, 4] == [e.version for e in history]
    assert sorted(e.seq for e in history) == [e.seq for e in history]
    assert {"organization"} == {e.entity for e in history}
    assert {acme.id} == {e.entity_id for e in history}
    assert (created_at, updated_at) == (history[0].at, history[1].at)
    assert AuditChange("name", None, "Acme") in history[0].changes
    assert AuditChange("emails", None, ["a@acme.es"]) in history[0].changes
    assert [
        AuditChange("emails", ["a@acme.es"], ["a@acme.es", "b@acme.es"]),
        AuditChange("website", None, "https://acme.es"),
    ] == sorted(history[1].changes, key=lambda c: c.field)
    assert (AuditChange("archived", False, True),) == history[2].changes
    assert (AuditChange("archived", True, False),) == history[3].changes


def test_history_keeps_reference_changes_as_json_ids(crm: crmkit.CRM) -> None:
    """A changed market is audited as old and new id strings."""
    retail = crm.markets.create(name="Retail")
    acme = crm.organizations.create(name="Acme")

    crm.organizations.update(acme.id, expected_version=1, market="retail")

    assert (AuditChange("market_id", None, str(retail.id)),) == crm.history(acme.id)[1].changes


def test_history_of_an_unknown_record_is_empty(crm: crmkit.CRM) -> None:
    """No entries for an id that was never written."""
    assert [] == crm.history(uuid.uuid4())


def test_bulk_item_without_a_required_field_is_a_validation_error(crm: crmkit.CRM) -> None:
    """A missing name is ValidationError("[1].name", code required); nothing is written."""
    with pytest.raises(ValidationError) as info:
        crm.organizations.bulk_create([{"name": "Acme"}, {"tax_id": "B1"}])
    assert ("[1].name", "required") == (info.value.field, info.value.code)
    assert 0 == crm.organizations.count()
