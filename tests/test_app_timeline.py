"""crm.timeline(): everything that happened to a record, newest first, paginated."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

import crmkit
from crmkit import Money, NotFoundError, ValidationError
from tests.conftest import FixedClock


@pytest.fixture
def book(any_crm: crmkit.CRM, clock: FixedClock) -> dict[str, object]:
    """An organization with a contact, an interaction, an opportunity, a case, a lead.

    Each event happens one minute after the previous one.
    """
    crm = any_crm
    acme = crm.organizations.create(name="Acme S.A.")
    clock.advance(minutes=1)
    ana = crm.contacts.create(first_name="Ana", organization=acme)
    clock.advance(minutes=1)
    call = crm.interactions.log(kind="call", contact=ana, subject="First call")
    clock.advance(minutes=1)
    deal = crm.opportunities.create(name="ERP", organization=acme, amount=Money("900", "EUR"))
    clock.advance(minutes=1)
    deal = crm.opportunities.advance(deal.id, to="qualified")
    clock.advance(minutes=1)
    case = crm.cases.open(subject="Broken delivery", case_type="claim", contact=ana)
    clock.advance(minutes=1)
    acme = crm.organizations.update(acme.id, expected_version=1, website="https://acme.es")
    clock.advance(minutes=1)
    other = crm.organizations.create(name="Other Ltd")
    crm.interactions.log(kind="note", organization=other, subject="Not about Acme")
    return {"acme": acme, "ana": ana, "call": call, "deal": deal, "case": case}


def _kinds(entries: list[crmkit.TimelineEntry]) -> list[str]:
    return [f"{e.entity}:{e.kind}" for e in entries]


def test_an_organization_timeline_merges_its_own_and_its_contacts_events(
    any_crm: crmkit.CRM, book: dict[str, object]
) -> None:
    """Audit, contacts, interactions, stage changes and cases, newest first."""
    assert [
        "organization:updated",
        "case:case_opened",
        "opportunity:stage_change",
        "opportunity:stage_change",
        "opportunity:created",
        "interaction:interaction",
        "contact:created",
        "organization:created",
    ] == _kinds(any_crm.timeline(book["acme"]))  # type: ignore[arg-type]


def test_entries_carry_what_changed_and_the_record(
    any_crm: crmkit.CRM, book: dict[str, object]
) -> None:
    """An update lists its field changes; an interaction entry holds the interaction."""
    entries = any_crm.timeline(book["acme"])  # type: ignore[arg-type]
    update = entries[0]
    interaction = next(e for e in entries if e.kind == "interaction")

    assert ["website"] == [c.field for c in update.changes]
    assert "https://acme.es" == update.changes[0].new
    assert book["call"] == interaction.record
    assert "call (done): First call" == interaction.summary


def test_a_contact_timeline_holds_only_the_contacts_events(
    any_crm: crmkit.CRM, book: dict[str, object]
) -> None:
    """The contact's creation, interactions and cases; not the organization's."""
    ana = book["ana"]
    assert isinstance(ana, crmkit.Contact)

    assert ["case:case_opened", "interaction:interaction", "contact:created"] == _kinds(
        any_crm.timeline(ana.id)
    )


def test_an_opportunity_timeline_shows_moves_not_their_audit_twice(
    any_crm: crmkit.CRM, book: dict[str, object]
) -> None:
    """A stage move appears once, as a stage change naming both stages."""
    deal = book["deal"]
    assert isinstance(deal, crmkit.Opportunity)

    entries = any_crm.timeline(deal)

    assert ["opportunity:stage_change", "opportunity:stage_change", "opportunity:created"] == (
        _kinds(entries)
    )
    assert "opportunity ERP: lead -> qualified" == entries[0].summary


def test_the_timeline_pages_with_limit_and_offset(
    any_crm: crmkit.CRM, book: dict[str, object]
) -> None:
    """Pages are consecutive slices of the whole timeline."""
    acme = book["acme"]
    assert isinstance(acme, crmkit.Organization)
    everything = any_crm.timeline(acme)

    pages = [any_crm.timeline(acme, limit=3, offset=n) for n in (0, 3, 6)]

    assert everything == [entry for page in pages for entry in page]
    assert [3, 3, 2] == [len(page) for page in pages]


def test_lead_conversion_and_case_closure_appear(
    any_crm: crmkit.CRM, clock: FixedClock, book: dict[str, object]
) -> None:
    """A converted lead and a closed case show on the organization's timeline."""
    acme = book["acme"]
    case = book["case"]
    assert isinstance(acme, crmkit.Organization)
    assert isinstance(case, crmkit.Case)
    lead = any_crm.leads.create(first_name="Luis", company="ACME, S.A.")
    clock.advance(minutes=1)
    any_crm.leads.convert(lead.id)
    clock.advance(minutes=1)
    any_crm.cases.resolve(case.id)
    clock.advance(minutes=1)
    any_crm.cases.close(case.id)

    kinds = _kinds(any_crm.timeline(acme, limit=5))

    assert ["case:case_closed", "case:case_resolved", "lead:lead_converted"] == [
        k for k in kinds if k.startswith(("case", "lead"))
    ][:3]


def test_planned_interactions_appear_at_their_scheduled_time(
    any_crm: crmkit.CRM, clock: FixedClock
) -> None:
    """A follow-up planned for tomorrow sorts before today's events."""
    acme = any_crm.organizations.create(name="Acme S.A.")
    any_crm.interactions.log(kind="call", organization=acme, next_step="Send the offer")

    first = any_crm.timeline(acme)[0]

    assert "call (planned): Send the offer" == first.summary
    assert clock.current + timedelta(days=1) == first.at


def test_an_unknown_id_is_not_found(any_crm: crmkit.CRM) -> None:
    """An id of nothing the timeline covers raises NotFoundError."""
    with pytest.raises(NotFoundError):
        any_crm.timeline(uuid.uuid4())


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"limit": -1}, "limit"), ({"limit": 10_000}, "limit"), ({"offset": -2}, "offset")],
)
def test_bad_paging_is_a_validation_error(
    crm: crmkit.CRM, arguments: dict[str, int], field: str
) -> None:
    """Paging arguments are checked."""
    acme = crm.organizations.create(name="Acme S.A.")
    with pytest.raises(ValidationError) as caught:
        crm.timeline(acme, **arguments)
    assert field == caught.value.field


def test_a_target_of_the_wrong_type_is_a_validation_error(crm: crmkit.CRM) -> None:
    """Only organizations, contacts, opportunities or their ids have timelines."""
    with pytest.raises(ValidationError) as caught:
        crm.timeline("acme")  # type: ignore[arg-type]
    assert "target" == caught.value.field
