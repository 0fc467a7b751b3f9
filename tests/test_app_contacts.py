"""The contacts service: people at organizations."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import crmkit
from crmkit import (
    AuditAction,
    Channel,
    ConcurrencyError,
    Contact,
    ContactId,
    ContactRole,
    Contains,
    DuplicateError,
    EmailAddress,
    Has,
    In,
    NotFoundError,
    ValidationError,
)
from tests.conftest import FixedClock
from tests.conftest import record_counts as counts


def test_create_returns_the_stored_contact(crm: crmkit.CRM, clock: FixedClock) -> None:
    """Every argument lands on the contact, which get() returns unchanged."""
    acme = crm.organizations.create(name="Acme")
    owner = crm.users.create(name="Luis")

    ana = crm.contacts.create(
        first_name="Ana",
        last_name="Pérez",
        email="Ana@ACME.es",
        phones=["600 123 456"],
        organization=acme,
        position="purchasing",
        department="Compras",
        role="decision_maker",
        preferred_channel=Channel.WHATSAPP,
        do_not_contact=True,
        language="es",
        social_profiles=["linkedin.com/in/ana-perez"],
        owner=owner,
        tags=["champion"],
        notes="Prefers mornings",
        external_ref="ERP-C1",
    )

    assert ana == crm.contacts.get(ana.id)
    assert (1, clock.current, clock.current) == (ana.version, ana.created_at, ana.updated_at)
    assert EmailAddress("Ana@acme.es") == ana.email
    assert ["+34600123456"] == [p.e164 for p in ana.phones]
    assert acme.id == ana.organization_id
    assert crm.positions.get_by_key("purchasing").id == ana.position_id
    assert (ContactRole.DECISION_MAKER, Channel.WHATSAPP) == (ana.role, ana.preferred_channel)
    assert ana.do_not_contact
    assert ("https://linkedin.com/in/ana-perez",) == ana.social_profiles
    assert "Ana Pérez" == ana.full_name


def test_create_needs_only_a_first_name(crm: crmkit.CRM) -> None:
    """A contact may exist without organization, e-mail or role."""
    ana = crm.contacts.create(first_name="Ana")

    assert (None, None, None, False) == (
        ana.organization_id,
        ana.email,
        ana.role,
        ana.do_not_contact,
    )
    assert "Ana" == ana.full_name


def test_organization_accepts_a_record_or_an_id(crm: crmkit.CRM) -> None:
    """organization takes the Organization or its id."""
    acme = crm.organizations.create(name="Acme")

    by_record = crm.contacts.create(first_name="Ana", organization=acme)
    by_id = crm.contacts.create(first_name="Luis", organization=acme.id)

    assert acme.id == by_record.organization_id == by_id.organization_id


def test_position_accepts_a_key_a_record_or_an_id(crm: crmkit.CRM) -> None:
    """position takes a master key, the Position or its id."""
    ceo = crm.positions.get_by_key("ceo")

    found = [
        crm.contacts.create(first_name="A", position="ceo"),
        crm.contacts.create(first_name="B", position=ceo),
        crm.contacts.create(first_name="C", position=ceo.id),
    ]

    assert [ceo.id] * 3 == [c.position_id for c in found]


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("organization", uuid.UUID(int=7)),
        ("position", "astronaut"),
        ("position", uuid.UUID(int=7)),
        ("owner", uuid.UUID(int=7)),
    ],
)
def test_unknown_reference_raises_validation_error_naming_the_argument(
    crm: crmkit.CRM, argument: str, value: object
) -> None:
    """An unknown organization, position or owner: code "reference", field = argument."""
    before = counts(crm)
    kwargs: dict[str, Any] = {argument: value}

    with pytest.raises(ValidationError) as info:
        crm.contacts.create(first_name="Ana", **kwargs)

    assert (argument, "reference") == (info.value.field, info.value.code)
    assert before == counts(crm)


def test_contacts_at_an_organization_are_listed_by_last_then_first_name(
    crm: crmkit.CRM,
) -> None:
    """at() returns the organization's contacts only, by last name then first name."""
    acme = crm.organizations.create(name="Acme")
    other = crm.organizations.create(name="Other")
    crm.contacts.create(first_name="Zoe", last_name="Alba", organization=acme)
    crm.contacts.create(first_name="Ana", last_name="Pérez", organization=acme)
    crm.contacts.create(first_name="Ana", last_name="Alba", organization=acme)
    crm.contacts.create(first_name="Eva", last_name="Alba", organization=other)

    by_record = crm.contacts.at(acme)
    by_id = crm.contacts.at(acme.id)

    assert ["Ana Alba", "Zoe Alba", "Ana Pérez"] == [c.full_name for c in by_record]
    assert by_record == by_id


def test_contacts_at_hides_archived_contacts(crm: crmkit.CRM) -> None:
    """An archived contact no longer appears in at()."""
    acme = crm.organizations.create(name="Acme")
    ana = crm.contacts.create(first_name="Ana", organization=acme)
    crm.contacts.create(first_name="Luis", organization=acme)

    crm.contacts.archive(ana.id, expected_version=1)

    assert ["Luis"] == [c.first_name for c in crm.contacts.at(acme)]


def test_update_moves_a_contact_to_another_organization(crm: crmkit.CRM) -> None:
    """Changing organization bumps the version and is audited as ids."""
    acme = crm.organizations.create(name="Acme")
    bolt = crm.organizations.create(name="Bolt")
    ana = crm.contacts.create(first_name="Ana", organization=acme)

    moved = crm.contacts.update(ana.id, expected_version=1, organization=bolt, department="IT")

    assert (2, bolt.id, "IT") == (moved.version, moved.organization_id, moved.department)
    assert [] == crm.contacts.at(acme)
    assert [moved] == crm.contacts.at(bolt)
    entry = crm.history(ana.id)[-1]
    assert AuditAction.UPDATE == entry.action
    assert {"organization_id": (str(acme.id), str(bolt.id)), "department": (None, "IT")} == {
        c.field: (c.old, c.new) for c in entry.changes
    }


def test_update_can_clear_optional_fields_with_none(crm: crmkit.CRM) -> None:
    """None removes the e-mail, role and organization."""
    acme = crm.organizations.create(name="Acme")
    ana = crm.contacts.create(
        first_name="Ana", email="ana@acme.es", role="primary", organization=acme
    )

    cleared = crm.contacts.update(
        ana.id, expected_version=1, email=None, role=None, organization=None
    )

    assert (None, None, None) == (cleared.email, cleared.role, cleared.organization_id)


def test_update_with_a_stale_version_raises_concurrency_error(crm: crmkit.CRM) -> None:
    """The second writer holding version 1 loses; the contact keeps the first change."""
    ana = crm.contacts.create(first_name="Ana")
    first = crm.contacts.update(ana.id, expected_version=1, last_name="Pérez")

    with pytest.raises(ConcurrencyError) as info:
        crm.contacts.update(ana.id, expected_version=1, last_name="García")

    assert ("contact", 1, 2) == (
        info.value.entity,
        info.value.expected_version,
        info.value.actual_version,
    )
    assert first == crm.contacts.get(ana.id)


def test_update_that_changes_nothing_keeps_the_version(crm: crmkit.CRM) -> None:
    """Same values: same version, no audit entry."""
    ana = crm.contacts.create(first_name="Ana", email="ana@acme.es", phones=["600123456"])

    same = crm.contacts.update(
        ana.id, expected_version=1, email="ana@acme.es", phones=["+34 600 12 34 56"]
    )

    assert ana == same
    assert 1 == len(crm.history(ana.id))


def test_get_of_an_unknown_id_raises_not_found_error(crm: crmkit.CRM) -> None:
    """NotFoundError names the contact entity and the id."""
    missing = ContactId(uuid.uuid4())

    with pytest.raises(NotFoundError) as info:
        crm.contacts.get(missing)

    assert ("contact", missing) == (info.value.entity, info.value.id)


def test_get_by_external_ref_and_duplicates(crm: crmkit.CRM) -> None:
    """external_ref finds the contact and is unique among contacts."""
    ana = crm.contacts.create(first_name="Ana", external_ref="C-1")

    with pytest.raises(DuplicateError) as info:
        crm.contacts.create(first_name="Ana bis", external_ref="C-1")

    assert ("contact", "external_ref") == (info.value.entity, info.value.field)
    assert ana == crm.contacts.get_by_external_ref("C-1")
    assert 1 == crm.contacts.count()


def test_external_refs_are_unique_per_entity_type(crm: crmkit.CRM) -> None:
    """An organization and a contact may carry the same external_ref."""
    crm.organizations.create(name="Acme", external_ref="X-1")

    ana = crm.contacts.create(first_name="Ana", external_ref="X-1")

    assert "X-1" == ana.external_ref


def test_find_contacts_with_filters(crm: crmkit.CRM) -> None:
    """Contains on names ignores case; Has on tags; In on roles; equality on booleans."""
    crm.contacts.create(first_name="Ana", last_name="Pérez", role="primary", tags=["vip"])
    crm.contacts.create(first_name="Luis", last_name="Peña", role="technical", do_not_contact=True)
    crm.contacts.create(first_name="Eva", last_name=None, role=None)

    def found(*where: Any, **equals: Any) -> list[str]:
        return [c.first_name for c in crm.contacts.find(*where, order_by="first_name", **equals)]

    assert ["Ana"] == found(Contains("last_name", "PÉ"))
    assert ["Luis"] == found(Contains("last_name", "PE"))
    assert ["Ana"] == found(Has("tags", "vip"))
    assert ["Luis"] == found(do_not_contact=True)
    assert ["Eva"] == found(role=None)
    assert ["Ana", "Luis"] == found(In("role", [ContactRole.PRIMARY, "technical"]))


def test_contacts_sorted_by_last_name_put_missing_names_last(crm: crmkit.CRM) -> None:
    """order_by="last_name" and "-last_name" both put a missing last name last."""
    for first, last in [("A", "Mora"), ("B", None), ("C", "Alba"), ("D", "Zurita")]:
        crm.contacts.create(first_name=first, last_name=last)

    ascending = crm.contacts.find(order_by="last_name")
    descending = crm.contacts.find(order_by="-last_name")

    assert ["C", "A", "D", "B"] == [c.first_name for c in ascending]
    assert ["D", "A", "C", "B"] == [c.first_name for c in descending]


@pytest.mark.parametrize(
    ("argument", "value", "field"),
    [
        ("first_name", None, "first_name"),
        ("first_name", " ", "first_name"),
        ("first_name", 1, "first_name"),
        ("last_name", ["Pérez"], "last_name"),
        ("email", "ana-at-acme.es", "email"),
        ("email", 42, "email"),
        ("phones", "600123456", "phones"),
        ("phones", ["600123456", None], "phones[1]"),
        ("organization", "acme", "organization"),
        ("organization", 3, "organization"),
        ("position", 3, "position"),
        ("department", 1.5, "department"),
        ("role", "boss", "role"),
        ("preferred_channel", "pigeon", "preferred_channel"),
        ("do_not_contact", "yes", "do_not_contact"),
        ("do_not_contact", 1, "do_not_contact"),
        ("do_not_contact", None, "do_not_contact"),
        ("language", 34, "language"),
        ("social_profiles", "linkedin.com/in/ana", "social_profiles"),
        ("social_profiles", ["ftp://acme.es/ana"], "social_profiles[0]"),
        ("owner", "luis", "owner"),
        ("tags", [None], "tags[0]"),
        ("notes", 0, "notes"),
        ("external_ref", 5, "external_ref"),
    ],
)
def test_create_with_a_bad_argument_raises_validation_error_and_changes_nothing(
    crm: crmkit.CRM, argument: str, value: object, field: str
) -> None:
    """Every argument is checked; the error names it and no contact is stored."""
    before = counts(crm)
    kwargs: dict[str, Any] = {"first_name": "Ana", argument: value}

    with pytest.raises(ValidationError) as info:
        crm.contacts.create(**kwargs)

    assert field == info.value.field
    assert before == counts(crm)


def test_contact_history_records_create_update_archive_restore(crm: crmkit.CRM) -> None:
    """The contact's timeline lists its four changes in order."""
    ana = crm.contacts.create(first_name="Ana")
    crm.contacts.update(ana.id, expected_version=1, last_name="Pérez")
    crm.contacts.archive(ana.id, expected_version=2)
    crm.contacts.restore(ana.id, expected_version=3)

    history = crm.history(ana.id)

    assert ["create", "update", "archive", "restore"] == [e.action.value for e in history]
    assert [1, 2, 3, 4] == [e.version for e in history]
    assert {"contact"} == {e.entity for e in history}


def test_archived_contacts_are_hidden_by_default(crm: crmkit.CRM) -> None:
    """find() hides archived contacts; archived=True or None shows them."""
    ana = crm.contacts.create(first_name="Ana")
    luis = crm.contacts.create(first_name="Luis")
    gone: Contact = crm.contacts.archive(luis.id, expected_version=1)

    assert [ana] == crm.contacts.find()
    assert [gone] == crm.contacts.find(archived=True)
    assert 2 == crm.contacts.count(archived=None)
