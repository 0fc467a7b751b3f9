"""crm.duplicates: likely duplicates on demand and on create, on every store."""

from __future__ import annotations

import logging
from uuid import UUID

import pytest

import crmkit
from crmkit import DuplicateError, ValidationError
from crmkit.testing.duplicates import planted_contacts
from tests.conftest import FixedClock


def test_find_reports_the_planted_duplicates_of_a_book(any_crm: crmkit.CRM) -> None:
    """End to end: stored contacts, profiles, blocking, EM, the calibrated decision."""
    book = planted_contacts(3000, rate=0.05, seed=11)
    created = any_crm.contacts.bulk_create(
        {
            "first_name": c.first_name,
            "last_name": c.last_name,
            "email": c.email,
            "phones": list(c.phones),
        }
        for c in book.contacts
    )
    stored = {raw.id: contact.id for raw, contact in zip(book.contacts, created, strict=True)}
    expected = {frozenset(stored[i] for i in pair) for pair in book.duplicates}

    matching = any_crm.duplicates.find("contact")

    found = matching.pairs()
    assert 3000 == matching.records
    assert len(found & expected) / len(expected) >= 0.95
    assert len(found & expected) / len(found) >= 0.97
    assert all(c.probability >= 0.5 and c.reasons for c in matching.candidates)


def test_find_explains_a_pair_of_contacts(crm: crmkit.CRM) -> None:
    ana = crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana.perez@acme.es")
    copy = crm.contacts.create(
        first_name="PEREZ", last_name="ana", email="Ana.Perez+crm@ACME.es", phones=["612345678"]
    )
    crm.contacts.create(first_name="Luis", last_name="Gómez", email="luis@acme.es")

    matching = crm.duplicates.find("contact")

    [candidate] = matching.candidates
    assert {ana.id, copy.id} == {candidate.left, candidate.right}
    assert not matching.model.fitted  # three records: the default model
    assert [
        ("name", "same", "same names, first and last swapped"),
        ("email", "same", "same e-mail address up to case or +tag"),
        ("phone", "missing", "not known for both"),
    ] == [(r.field, r.level, r.detail) for r in candidate.reasons]


def test_find_organizations_ignores_legal_forms(any_crm: crmkit.CRM) -> None:
    acme = any_crm.organizations.create(name="ACME, S.A.", tax_id="A12345678")
    copy = any_crm.organizations.create(name="Acme SA", tax_id="A-12345678")
    any_crm.organizations.create(name="Globex GmbH", tax_id="B87654321")

    matching = any_crm.duplicates.find("organization", threshold=0.0)

    [candidate] = matching.candidates
    assert {acme.id, copy.id} == {candidate.left, candidate.right}
    assert "same" == candidate.reason("tax_id").level


def test_find_refuses_an_unknown_entity(crm: crmkit.CRM) -> None:
    with pytest.raises(ValidationError) as error:
        crm.duplicates.find("lead")  # type: ignore[arg-type]

    assert ("entity", "choice") == (error.value.field, error.value.code)


def test_a_bad_duplicate_check_setting_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        crmkit.open(":memory:", duplicate_check="shout")  # type: ignore[arg-type]

    assert ("duplicate_check", "choice") == (error.value.field, error.value.code)


def test_a_bad_on_create_value_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(ValidationError) as error:
        crm.duplicates.on_create = "loud"  # type: ignore[assignment]

    assert "duplicate_check" == error.value.field
    assert "off" == crm.duplicates.on_create


def test_refuse_raises_with_the_candidate_and_writes_nothing(
    backend_url: str, clock: FixedClock
) -> None:
    with crmkit.open(
        backend_url, clock=clock, default_region="ES", duplicate_check="refuse"
    ) as crm:
        ana = crm.contacts.create(
            first_name="Ana", last_name="Pérez", email="ana@acme.es", phones=["612345678"]
        )

        with pytest.raises(DuplicateError) as error:
            crm.contacts.create(first_name="Ana", last_name="Perez", email="ANA@acme.es")

        assert "contact" == error.value.entity
        [candidate] = error.value.candidates
        assert ana.id in (candidate.left, candidate.right)
        assert "email" == error.value.field
        assert 1 == crm.contacts.count()
        assert [] == [e for e in crm.history(candidate.left) if e.entity_id != ana.id]


def test_refuse_lets_a_different_person_in(crm: crmkit.CRM) -> None:
    crm.duplicates.on_create = "refuse"
    crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana@acme.es")

    luis = crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana.perez@globex.com")

    assert 2 == crm.contacts.count()
    assert crm.duplicates.last_check is not None
    assert luis.id == crm.duplicates.last_check.record.id
    assert () == crm.duplicates.last_check.candidates


def test_warn_creates_the_record_logs_and_reports_the_candidates(
    crm: crmkit.CRM, caplog: pytest.LogCaptureFixture
) -> None:
    crm.duplicates.on_create = "warn"
    acme = crm.organizations.create(name="Acme S.L.", phones=["911234567"])

    with caplog.at_level(logging.WARNING, logger="crmkit.duplicates"):
        copy = crm.organizations.create(name="ACME", phones=["+34 911 23 45 67"])

    check = crm.duplicates.last_check
    assert check is not None
    assert copy == check.record
    assert {acme.id, copy.id} == {check.candidates[0].left, check.candidates[0].right}
    assert 2 == crm.organizations.count()
    assert "probably the same as organization" in caplog.text


def test_the_check_on_create_sees_the_same_transaction(crm: crmkit.CRM) -> None:
    crm.duplicates.on_create = "refuse"

    def both() -> None:
        with crm.transaction():
            crm.contacts.create(first_name="Eva", last_name="Sanz", phones=["+34 699 111 222"])
            crm.contacts.create(first_name="Eva", last_name="Sanz", phones=["699111222"])

    with pytest.raises(DuplicateError):
        both()

    assert 0 == crm.contacts.count()


def test_the_check_is_off_by_default(crm: crmkit.CRM) -> None:
    crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana@acme.es")
    crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana@acme.es")

    assert 2 == crm.contacts.count()
    assert crm.duplicates.last_check is None


def test_find_keeps_a_fitted_model_for_the_check_on_create(crm: crmkit.CRM) -> None:
    book = planted_contacts(6000, rate=0.05, seed=12)
    crm.contacts.bulk_create(
        {"first_name": c.first_name, "last_name": c.last_name, "email": c.email}
        for c in book.contacts
    )

    matching = crm.duplicates.find()

    assert matching.model.fitted
    assert matching.model is crm.duplicates.model("contact")


def test_candidates_for_a_stored_record_leave_the_record_out(crm: crmkit.CRM) -> None:
    ana = crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana@acme.es")
    copy = crm.contacts.create(first_name="Ana", last_name="Perez", email="ana+x@acme.es")

    [candidate] = crm.duplicates.candidates_for(ana)

    assert {ana.id, copy.id} == {candidate.left, candidate.right}
    assert isinstance(candidate.left, UUID)


# ------------------------------------------- the check on bulk paths and conversion


def test_bulk_create_refuses_a_likely_duplicate_of_a_stored_contact(
    any_crm: crmkit.CRM,
) -> None:
    """One blocking pass over the items; the refused item is named by its index."""
    any_crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana@acme.es")
    any_crm.duplicates.on_create = "refuse"

    with pytest.raises(DuplicateError) as error:
        any_crm.contacts.bulk_create(
            [
                {"first_name": "Luis", "last_name": "Gómez", "email": "luis@globex.com"},
                {"first_name": "Ana", "last_name": "Perez", "email": "ANA@acme.es"},
            ]
        )

    assert "[1].email" == error.value.field
    assert error.value.candidates
    assert 1 == any_crm.contacts.count()


def test_bulk_create_refuses_items_duplicating_each_other(any_crm: crmkit.CRM) -> None:
    """The later of two look-alike items is the duplicate, as with two creates."""
    any_crm.duplicates.on_create = "refuse"
    items: list[dict[str, object]] = [
        {"name": "Acme S.L.", "phones": ["911234567"]},
        {"name": "Globex S.A."},
        {"name": "ACME", "phones": ["+34 911 23 45 67"]},
    ]

    with pytest.raises(DuplicateError) as error:
        any_crm.organizations.bulk_create(items)

    assert error.value.field.startswith("[2].")
    assert 0 == any_crm.organizations.count()


def test_bulk_create_warns_and_creates_with_warn(
    any_crm: crmkit.CRM, caplog: pytest.LogCaptureFixture
) -> None:
    any_crm.duplicates.on_create = "warn"
    any_crm.organizations.create(name="Acme S.L.", tax_id="B12345678")

    with caplog.at_level(logging.WARNING, logger="crmkit.duplicates"):
        created = any_crm.organizations.bulk_create(
            [{"name": "Globex S.A."}, {"name": "Acme", "tax_id": "B-12345678"}]
        )

    assert 3 == any_crm.organizations.count()
    assert 1 == caplog.text.count("probably the same as organization")
    check = any_crm.duplicates.last_check
    assert check is not None
    assert created[-1] == check.record
    assert check.candidates


def test_bulk_create_lets_different_records_in_with_refuse(any_crm: crmkit.CRM) -> None:
    any_crm.duplicates.on_create = "refuse"
    any_crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana@acme.es")

    any_crm.contacts.bulk_create(
        [
            {"first_name": "Ana", "last_name": "Pérez", "email": "ana.perez@globex.com"},
            {"first_name": "Luis", "last_name": "Gómez", "phones": ["612345678"]},
        ]
    )

    assert 3 == any_crm.contacts.count()


def test_bulk_create_skips_the_check_when_off(crm: crmkit.CRM) -> None:
    crm.contacts.bulk_create([{"first_name": "Ana", "email": "ana@acme.es"}] * 2)

    assert 2 == crm.contacts.count()
    assert crm.duplicates.last_check is None


def test_lead_conversion_refuses_to_create_a_likely_duplicate_contact(
    any_crm: crmkit.CRM,
) -> None:
    """The conversion matches e-mails exactly; the check catches ``ANA@`` vs ``ana@``."""
    ana = any_crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana@acme.es")
    lead = any_crm.leads.create(first_name="Ana", last_name="Perez", email="ANA@acme.es")
    any_crm.duplicates.on_create = "refuse"

    with pytest.raises(DuplicateError) as error:
        any_crm.leads.convert(lead.id)

    assert ana.id in {error.value.candidates[0].left, error.value.candidates[0].right}
    assert 1 == any_crm.contacts.count()
    assert "new" == any_crm.leads.get(lead.id).status.value

    conversion = any_crm.leads.convert(lead.id, contact=ana.id)  # linking it is the way out

    assert conversion.contact is not None
    assert ana.id == conversion.contact.id


def test_lead_conversion_warns_and_converts_with_warn(
    any_crm: crmkit.CRM, caplog: pytest.LogCaptureFixture
) -> None:
    any_crm.organizations.create(name="Acme S.L.")
    lead = any_crm.leads.create(first_name="Eva", last_name="Sanz", company="ACME SL.")
    any_crm.duplicates.on_create = "warn"

    with caplog.at_level(logging.WARNING, logger="crmkit.duplicates"):
        conversion = any_crm.leads.convert(lead.id)

    assert conversion.contact is not None
    check = any_crm.duplicates.last_check
    assert check is not None
    assert check.record == conversion.contact
