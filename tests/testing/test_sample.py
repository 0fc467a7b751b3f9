"""The sample book: realistic, reproducible, valid, and safe to build twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import crmkit
from crmkit import CRM, DuplicateError, EmailAddress, PhoneNumber, ValidationError
from crmkit.core.matching import name_key
from crmkit.testing.sample import SampleBook, build_sample_book
from tests.conftest import FixedClock

SEEDED_POSITIONS = {
    "ceo",
    "sales-director",
    "purchasing",
    "finance",
    "it",
    "operations",
    "marketing",
}
SEEDED_SOURCES = {
    "web",
    "referral",
    "trade-fair",
    "campaign",
    "inbound-call",
    "cold-call",
    "prescriber",
    "partner",
}


@pytest.fixture
def fresh() -> Iterator[CRM]:
    """A second, independent memory CRM."""
    with crmkit.open(":memory:") as crm:
        yield crm


def _fingerprint(book: SampleBook) -> list[tuple[object, ...]]:
    """What a reader sees of the book, without ids or timestamps."""
    orgs: list[tuple[object, ...]] = [
        (o.external_ref, o.name, o.tax_id, o.phones, o.emails, o.addresses, o.lifecycle)
        for o in book.organizations
    ]
    people: list[tuple[object, ...]] = [
        (c.external_ref, c.full_name, c.email, c.phones, c.role) for c in book.contacts
    ]
    return orgs + people


def test_same_seed_builds_the_same_book(crm: CRM, fresh: CRM) -> None:
    """Two fresh CRMs given the same seed get the same organizations and contacts."""
    expected = _fingerprint(build_sample_book(crm, organizations=15, seed=11))
    actual = _fingerprint(build_sample_book(fresh, organizations=15, seed=11))
    assert expected == actual


def test_different_seeds_build_different_books(crm: CRM, fresh: CRM) -> None:
    """Another seed gives other names."""
    first = build_sample_book(crm, organizations=10, seed=1)
    second = build_sample_book(fresh, organizations=10, seed=2)
    assert [o.name for o in first.organizations] != [o.name for o in second.organizations]


def test_longer_book_starts_with_the_shorter_one(crm: CRM, fresh: CRM) -> None:
    """Asking for more organizations extends the book instead of reshuffling it."""
    short = build_sample_book(crm, organizations=5)
    long = build_sample_book(fresh, organizations=12)
    assert _fingerprint(short)[:5] == _fingerprint(long)[:5]


def test_counts_match_the_arguments(crm: CRM) -> None:
    """The book has as many organizations as asked, each with 1 to 4 contacts."""
    book = build_sample_book(crm, organizations=25)
    assert 25 == len(book.organizations)
    assert 25 == crm.organizations.count()
    assert len(book.contacts) == crm.contacts.count()
    for org in book.organizations:
        # 1-4 planned contacts, plus one a converted lead may bring
        assert 1 <= crm.contacts.count(organization=org.id) <= 5
    assert {
        "zones": 6,
        "markets": 7,
        "sources": 8,
        "positions": 7,
        "users": 6,
        "organizations": 25,
        "contacts": len(book.contacts),
        "opportunities": len(book.opportunities),
        "interactions": len(book.interactions),
        "leads": len(book.leads),
        "cases": len(book.cases),
        "skipped": 0,
    } == book.counts
    assert len(book.opportunities) == crm.opportunities.count()
    assert len(book.interactions) == crm.interactions.count()
    assert len(book.leads) == crm.leads.count()
    assert len(book.cases) == crm.cases.count()


def test_the_book_logs_interactions_converts_leads_and_fills_an_agenda(crm: CRM) -> None:
    """Logged interactions with follow-ups, converted and open leads, planned work."""
    book = build_sample_book(crm, organizations=40)
    statuses = {i.status.value for i in book.interactions}
    converted = [lead for lead in book.leads if lead.status.value == "converted"]

    assert {"done", "planned"} == statuses
    assert converted
    assert len(converted) < len(book.leads)
    for lead in converted:  # matched the organization whose name it carries
        assert lead.organization_id is not None
        assert lead.company is not None
        assert crm.organizations.get(lead.organization_id).name_key == name_key(lead.company)
    assert 0 < crm.agenda.count("upcoming", days=30)


def test_sample_opportunities_move_through_their_pipelines(crm: CRM) -> None:
    """Some sample opportunities end won, lost or on hold; the rest stay open."""
    book = build_sample_book(crm, organizations=40)
    statuses = {o.status.value for o in book.opportunities}
    assert {"open", "won", "lost", "on_hold"} == statuses
    for opp in book.opportunities:
        assert opp == crm.opportunities.get(opp.id)
        assert opp.organization_id is not None


def test_zero_organizations_builds_only_the_masters(crm: CRM) -> None:
    """``organizations=0`` still sets up zones, markets and users."""
    book = build_sample_book(crm, organizations=0)
    assert (0, 0, 6) == (len(book.organizations), crm.organizations.count(), crm.zones.count())


def test_every_phone_and_email_is_valid(crm: CRM) -> None:
    """Phones are valid numbers of the organization's country; e-mails are normalized."""
    book = build_sample_book(crm, organizations=40)
    for org in crm.organizations.find():
        country = org.addresses[0].country
        assert org.phones, org.name
        for phone in org.phones:
            assert phone == PhoneNumber.parse(phone.international())
            assert country == phone.region
        for email in org.emails:
            assert email == EmailAddress(str(email))
        assert org.website is not None
        assert org.emails[0].domain in org.website
    for contact in crm.contacts.find():
        for phone in contact.phones:
            assert phone == PhoneNumber.parse(phone.e164)
        if contact.email is not None:
            assert contact.email == EmailAddress(str(contact.email))
    assert len(book.contacts) == crm.contacts.count()


def test_book_is_varied(crm: CRM) -> None:
    """The default book spans markets, zones, sources, lifecycles, countries and languages."""
    book = build_sample_book(crm)
    orgs, contacts = book.organizations, book.contacts
    sources = {m.id: m.key for m in crm.sources.find()}
    positions = {m.id: m.key for m in crm.positions.find()}
    assert 5 <= len({o.market_id for o in orgs})
    assert 5 <= len({o.zone_id for o in orgs})
    assert 4 <= len({o.lifecycle for o in orgs})
    assert {"ES", "GB", "US"} == {o.addresses[0].country for o in orgs}
    assert {o.source_id for o in orgs} <= {i for i, key in sources.items() if key in SEEDED_SOURCES}
    assert {positions[c.position_id] for c in contacts if c.position_id} <= SEEDED_POSITIONS
    planned = [c for c in contacts if c.external_ref is not None]  # not from a lead
    assert {"es", "en"} == {c.language for c in planned}
    assert any(c.do_not_contact for c in contacts)
    assert all(o.owner_id in {u.id for u in book.users} for o in orgs)
    assert any("S.L." in o.name for o in orgs)
    assert any(o.name.endswith(("Ltd.", "Inc.", "LLC", "PLC", "LLP")) for o in orgs)


def test_running_twice_does_not_duplicate(crm: CRM) -> None:
    """A second run reuses masters and users and skips the organizations it made."""
    first = build_sample_book(crm, organizations=10)
    second = build_sample_book(crm, organizations=10)
    assert ((), (), 10) == (second.organizations, second.contacts, second.skipped)
    assert 10 == crm.organizations.count()
    assert len(first.contacts) == crm.contacts.count()
    assert [z.id for z in first.zones] == [z.id for z in second.zones]
    assert [u.id for u in first.users] == [u.id for u in second.users]


def test_a_bigger_second_run_adds_only_the_new_organizations(crm: CRM) -> None:
    """Running with more organizations creates just the missing ones."""
    build_sample_book(crm, organizations=4)
    second = build_sample_book(crm, organizations=7)
    assert (3, 4) == (len(second.organizations), second.skipped)
    assert ["demo-org-0005", "demo-org-0006", "demo-org-0007"] == [
        o.external_ref for o in second.organizations
    ]
    assert 7 == crm.organizations.count()


def test_existing_masters_with_the_same_keys_are_reused(crm: CRM) -> None:
    """A zone the user made with a book key is used as it is, not duplicated."""
    norte = crm.zones.create(key="norte", name="Northern Spain")
    book = build_sample_book(crm, organizations=3)
    assert norte == crm.zones.get_by_key("norte")
    assert norte in book.zones
    assert 6 == crm.zones.count()


def test_book_builds_on_every_backend(any_crm: CRM) -> None:
    """Memory, SQLite and PostgreSQL hold the same book, and a re-run adds nothing."""
    book = build_sample_book(any_crm, organizations=6)
    again = build_sample_book(any_crm, organizations=6)
    assert (6, len(book.contacts)) == (any_crm.organizations.count(), any_crm.contacts.count())
    assert 6 == again.skipped


def test_rerun_on_a_reopened_sqlite_file_adds_nothing(tmp_path: Path, clock: FixedClock) -> None:
    """Like ``make demo`` twice: the second run on the same file creates nothing."""
    path = tmp_path / "crm.db"
    with crmkit.open(path, clock=clock) as crm:
        first = build_sample_book(crm, organizations=5)
    with crmkit.open(path, clock=clock) as crm:
        second = build_sample_book(crm, organizations=5)
        assert (0, 5) == (len(second.organizations), second.skipped)
        assert (5, len(first.contacts)) == (crm.organizations.count(), crm.contacts.count())


def test_a_failure_rolls_back_the_whole_book(crm: CRM) -> None:
    """The book is built in one transaction: an error leaves nothing behind."""
    crm.contacts.create(first_name="Squatter", external_ref="demo-org-0002-c1")
    with pytest.raises(DuplicateError) as info:
        build_sample_book(crm, organizations=3)
    assert ("contact", "external_ref") == (info.value.entity, info.value.field)
    assert (0, 0, 1) == (crm.zones.count(), crm.organizations.count(), crm.contacts.count())


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"organizations": -1}, "organizations"),
        ({"organizations": True}, "organizations"),
        ({"organizations": "3"}, "organizations"),
        ({"seed": 1.5}, "seed"),
        ({"seed": False}, "seed"),
    ],
)
def test_bad_arguments_raise_validation_error(
    crm: CRM, arguments: dict[str, object], field: str
) -> None:
    """Counts and seeds must be integers; nothing is created otherwise."""
    with pytest.raises(ValidationError) as info:
        build_sample_book(crm, **arguments)  # type: ignore[arg-type]
    assert field == info.value.field
    assert 0 == crm.zones.count()
