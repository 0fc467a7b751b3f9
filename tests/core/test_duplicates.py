"""Duplicate detection in the core: normalizers, blocking, EM calibration, the 100k book."""

from __future__ import annotations

import time
from uuid import UUID

import pytest

from crmkit.core.duplicates import (
    DEFAULT_CONTACT_MODEL,
    DEFAULT_ORGANIZATION_MODEL,
    ContactProfile,
    Model,
    OrganizationProfile,
    candidate_pairs,
    clusters,
    contact_spec,
    email_key,
    find_duplicates,
    fit_model,
    organization_spec,
    phone_key,
    score_pairs,
)
from crmkit.core.errors import ValidationError
from crmkit.testing.duplicates import planted_contacts


def person(
    n: int,
    first: str,
    last: str | None = None,
    email: str | None = None,
    *phones: str,
) -> ContactProfile:
    return ContactProfile.from_values(
        UUID(int=n), first_name=first, last_name=last, email=email, phones=phones, region="ES"
    )


# ------------------------------------------------------------- normalizers


@pytest.mark.parametrize(
    "written",
    ["ana.perez@acme.es", " Ana.Perez@ACME.es ", "ana.perez+crm@acme.es", "ANA.PEREZ+X+Y@Acme.ES"],
)
def test_email_key_ignores_case_spaces_and_plus_tags(written: str) -> None:
    assert "ana.perez@acme.es" == email_key(written)


def test_email_key_of_text_without_at_is_none() -> None:
    assert email_key("not an address") is None
    assert email_key(None) is None


@pytest.mark.parametrize(
    "written",
    ["+34 612 34 56 78", "+34612345678", "0034 612-345-678", "612 34 56 78", "(612) 345678"],
)
def test_phone_key_reads_international_and_national_formats(written: str) -> None:
    assert "+34612345678" == phone_key(written, "ES")


def test_phone_key_drops_a_national_trunk_prefix() -> None:
    assert "+442079460000" == phone_key("020 7946 0000", "GB")
    assert "+442079460000" == phone_key("+44 (0)20 7946 0000")


def test_phone_key_of_unreadable_text_is_none() -> None:
    assert phone_key("call me", "ES") is None


def test_contact_profile_folds_case_and_accents() -> None:
    profile = person(1, "  JOSÉ  Ángel ", "Núñez")

    assert ("jose angel", "nunez") == (profile.first, profile.last)


def test_organization_profile_drops_legal_form_and_free_mail() -> None:
    profile = OrganizationProfile.from_values(
        UUID(int=1),
        name="Distribuciones Pérez, S.L.",
        tax_id="b-12.345.678",
        emails=["ventas@perez.es", "jefe@gmail.com"],
        website="https://www.perez.es/contacto",
    )

    assert "distribuciones perez" == profile.name
    assert "B12345678" == profile.tax_id
    assert frozenset({"perez.es"}) == profile.domains


# ----------------------------------------------------------------- blocking


def test_blocking_pairs_records_that_share_a_key_only() -> None:
    profiles = [
        person(1, "Ana", "Pérez", "ana@acme.es"),
        person(2, "Ana", "Perez", "ANA@acme.es"),
        person(3, "Luis", "Gómez", None, "612345678"),
        person(4, "Luisa", "Gomez", None, "+34 612 34 56 78"),
        person(5, "Eva", "Sanz"),
    ]

    pairs, counts, skipped = candidate_pairs(profiles, contact_spec().keys, max_block=100)

    assert {(0, 1), (2, 3)} == pairs
    assert 0 == skipped
    assert 2 == counts["p:+34612345678"]


def test_a_key_shared_by_more_than_max_block_records_is_skipped() -> None:
    profiles = [person(i, "Ana", "García", f"ana{i}@acme.es") for i in range(5)]

    pairs, _, skipped = candidate_pairs(profiles, contact_spec().keys, max_block=4)

    assert set() == pairs
    assert 1 == skipped


def test_swapped_names_share_the_name_key() -> None:
    profiles = [person(1, "Ana", "Pérez"), person(2, "Perez", "ANA")]

    pairs, _, _ = candidate_pairs(profiles, contact_spec().keys, max_block=100)

    assert {(0, 1)} == pairs


# ------------------------------------------------------------ the reasons


def test_every_candidate_says_which_fields_agreed_and_how_much() -> None:
    a = person(1, "Ana", "Pérez", "ana.perez@acme.es", "+34612345678")
    b = person(2, "Perez", "Ana", "Ana.Perez+crm@ACME.es", "612 34 56 78")

    [candidate] = score_pairs(contact_spec(), [(a, b)], DEFAULT_CONTACT_MODEL)

    assert (UUID(int=1), UUID(int=2)) == (candidate.left, candidate.right)
    assert candidate.probability > 0.99
    assert "same" == candidate.reason("name").level
    assert "same names, first and last swapped" == candidate.reason("name").detail
    assert "same e-mail address up to case or +tag" == candidate.reason("email").detail
    assert "same phone number" == candidate.reason("phone").detail
    assert all(r.weight > 0 for r in candidate.reasons)
    assert candidate.weight == pytest.approx(DEFAULT_CONTACT_MODEL.weight((3, 1, 2)))


def test_a_missing_field_counts_for_nothing() -> None:
    a = person(1, "Ana", "Pérez", None, "+34612345678")
    b = person(2, "Ana", "Perez", "ana@acme.es", "+34612345678")

    [candidate] = score_pairs(contact_spec(), [(a, b)], DEFAULT_CONTACT_MODEL)

    assert ("missing", 0.0) == (candidate.reason("email").level, candidate.reason("email").weight)


def test_namesakes_with_different_addresses_and_phones_are_not_duplicates() -> None:
    a = person(1, "María", "García", "maria.garcia@gmail.com", "+34612345678")
    b = person(2, "Maria", "Garcia", "maria.garcia77@hotmail.com", "+34699999999")

    [candidate] = score_pairs(contact_spec(), [(a, b)], DEFAULT_CONTACT_MODEL)

    assert candidate.probability < 0.5
    assert candidate.reason("email").weight < 0


def test_a_switchboard_number_is_weaker_evidence_than_a_personal_one() -> None:
    spec = contact_spec()
    a = person(1, "Ana", "Pérez", None, "+34911111111")
    b = person(2, "Luis", "Gómez", None, "+34911111111")

    [personal] = score_pairs(spec, [(a, b)], DEFAULT_CONTACT_MODEL)
    [shared] = score_pairs(spec, [(a, b)], DEFAULT_CONTACT_MODEL, key_counts={"p:+34911111111": 7})

    assert "same" == personal.reason("phone").level
    assert "shared number" == shared.reason("phone").level
    assert shared.weight < personal.weight


def test_organizations_compare_name_tax_id_phone_and_domain() -> None:
    a = OrganizationProfile.from_values(
        UUID(int=1), name="ACME, S.A.", tax_id="A12345678", website="https://acme.es"
    )
    b = OrganizationProfile.from_values(
        UUID(int=2), name="Acme SA", tax_id="A-12345678", emails=["info@acme.es"]
    )

    [candidate] = score_pairs(organization_spec(), [(a, b)], DEFAULT_ORGANIZATION_MODEL)

    assert ["same", "same", "missing", "same"] == [r.level for r in candidate.reasons]
    assert candidate.probability > 0.99


def test_clusters_join_pairs_that_share_a_record() -> None:
    a = person(1, "Ana", "Pérez", "ana@acme.es")
    b = person(2, "Ana", "Perez", "ana@acme.es")
    c = person(3, "Ana", "Pérez", "ANA@acme.es")
    candidates = score_pairs(contact_spec(), [(a, b), (b, c)], DEFAULT_CONTACT_MODEL)

    assert [frozenset({UUID(int=1), UUID(int=2), UUID(int=3)})] == clusters(candidates)


# ------------------------------------------------------------------ the model


def test_with_too_few_pairs_the_default_model_is_used() -> None:
    profiles = [person(1, "Ana", "Pérez", "ana@acme.es"), person(2, "Ana", "Perez", "ana@acme.es")]

    matching = find_duplicates(contact_spec(), profiles)

    assert matching.model is DEFAULT_CONTACT_MODEL
    assert not matching.model.fitted
    assert 1 == len(matching.candidates)


def test_em_keeps_the_start_model_when_no_class_agrees_more() -> None:
    # every pair disagrees on everything: there is no match class to find
    vectors: dict[tuple[int | None, ...], float] = {(0, 0, 0): 1_000_000.0}

    assert DEFAULT_CONTACT_MODEL is fit_model(vectors, DEFAULT_CONTACT_MODEL, pairs=600)


def test_model_probability_is_the_logistic_of_the_weight() -> None:
    model = Model(("x",), m=((0.2, 0.8),), u=((0.8, 0.2),), prior=0.5)

    assert 2.0 == pytest.approx(model.weight((1,)))
    assert 0.8 == pytest.approx(model.probability((1,)))
    assert 0.5 == pytest.approx(model.probability((None,)))


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "high", True])
def test_a_threshold_that_is_not_a_probability_is_refused(threshold: object) -> None:
    with pytest.raises(ValidationError) as error:
        find_duplicates(contact_spec(), [], threshold=threshold)  # type: ignore[arg-type]

    assert ("threshold", "range") == (error.value.field, error.value.code)


def test_a_max_block_below_two_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        find_duplicates(contact_spec(), [], max_block=1)

    assert "max_block" == error.value.field


def test_the_planted_book_is_the_same_for_the_same_seed() -> None:
    assert planted_contacts(2000, seed=7) == planted_contacts(2000, seed=7)
    assert planted_contacts(2000, seed=7) != planted_contacts(2000, seed=8)


def test_em_fits_a_small_book_and_finds_its_planted_duplicates() -> None:
    book = planted_contacts(5000, seed=3)

    matching = find_duplicates(contact_spec(), book.profiles())

    found = matching.pairs()
    assert matching.model.fitted
    assert len(found & book.duplicates) / len(book.duplicates) >= 0.95
    assert len(found & book.duplicates) / len(found) >= 0.97


@pytest.mark.slow
def test_100k_contacts_with_5_percent_planted_duplicates() -> None:
    """Recall >= 0.95 and precision >= 0.97 with default settings, in under 10 s.

    The time counts normalizing the raw records (profiles) and the search;
    it is CPU time, so other processes on a shared machine do not count.
    """
    book = planted_contacts(100_000, rate=0.05, seed=2026)
    wall, cpu = time.perf_counter(), time.process_time()
    matching = find_duplicates(contact_spec(), book.profiles())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    found = matching.pairs()
    true_positives = len(found & book.duplicates)
    recall = true_positives / len(book.duplicates)
    precision = true_positives / len(found)
    print(f"recall={recall:.4f} precision={precision:.4f} cpu={cpu:.2f}s wall={wall:.2f}s")
    assert 5000 == len(book.duplicates)
    assert matching.model.fitted
    assert recall >= 0.95
    assert precision >= 0.97
    assert cpu < 10
