"""Leads in the core: the status flow, reasons, conversion, and what a lead needs."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit import InvalidTransition, ValidationError
from crmkit.core import changes
from crmkit.core.ids import ContactId, OpportunityId, OrganizationId, uuid7
from crmkit.core.leads import (
    LEAD_FLOW,
    Lead,
    LeadChannel,
    LeadStatus,
    convert,
    move,
)

NOW: Final = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LATER: Final = NOW + timedelta(hours=1)

#: The flow as the issue states it, written out pair by pair (source, target).
ALLOWED: Final = {
    (LeadStatus.NEW, LeadStatus.WORKING),
    (LeadStatus.NEW, LeadStatus.QUALIFIED),
    (LeadStatus.NEW, LeadStatus.DISQUALIFIED),
    (LeadStatus.WORKING, LeadStatus.QUALIFIED),
    (LeadStatus.WORKING, LeadStatus.DISQUALIFIED),
    (LeadStatus.QUALIFIED, LeadStatus.WORKING),
    (LeadStatus.QUALIFIED, LeadStatus.DISQUALIFIED),
    (LeadStatus.DISQUALIFIED, LeadStatus.WORKING),
}


def _lead(**values: Any) -> Lead:
    values = {"first_name": "Ana", **values}
    lead, _ = changes.create(Lead, id=uuid7(), now=NOW, **values)
    return lead


def _in(status: LeadStatus) -> Lead:
    reason = "no budget" if status is LeadStatus.DISQUALIFIED else None
    return _lead(status=status, status_reason=reason)


# --------------------------------------------------------------------- flow


def test_the_flow_table_is_the_documented_flow() -> None:
    """LEAD_FLOW holds exactly the pairs of the issue, and every status is a key."""
    table = {(source, target) for source, targets in LEAD_FLOW.items() for target in targets}
    assert ALLOWED == table
    assert set(LeadStatus) == set(LEAD_FLOW)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (s, t)
        for s, t in itertools.product(LeadStatus, LeadStatus)
        if s is not t and (s, t) not in ALLOWED
    ],
    ids=lambda s: s.value,
)
def test_a_move_the_flow_does_not_allow_names_both_statuses(
    source: LeadStatus, target: LeadStatus
) -> None:
    """E.g. converted -> working, new -> converted: InvalidTransition with source and target."""
    with pytest.raises(InvalidTransition) as info:
        move(_in(source), target, now=LATER, reason="because")
    assert ("lead", source.value, target.value) == (
        info.value.entity,
        info.value.source,
        info.value.target,
    )


@pytest.mark.parametrize(("source", "target"), sorted(ALLOWED, key=str), ids=str)
def test_an_allowed_move_changes_the_status_and_the_version(
    source: LeadStatus, target: LeadStatus
) -> None:
    """The new lead has the target status, one more version, and the event says so."""
    lead = _in(source)
    new, event = move(lead, target, now=LATER, reason="no budget")
    assert (target, lead.version + 1, LATER) == (new.status, new.version, new.updated_at)
    assert event is not None
    assert (source, target) in {(c.old, c.new) for c in event.changes if c.field == "status"}


def test_moving_to_the_current_status_changes_nothing() -> None:
    """working -> working returns the same lead and no event."""
    lead = _in(LeadStatus.WORKING)
    assert (lead, None) == move(lead, LeadStatus.WORKING, now=LATER)


def test_converted_is_reached_only_through_conversion() -> None:
    """No status moves to converted; converting sets it from new, working or qualified."""
    assert all(LeadStatus.CONVERTED not in targets for targets in LEAD_FLOW.values())
    assert frozenset() == LEAD_FLOW[LeadStatus.CONVERTED]


# ------------------------------------------------------------------ reasons


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_disqualifying_needs_a_reason(reason: str | None) -> None:
    """No reason, or a blank one: ValidationError on reason, code required."""
    with pytest.raises(ValidationError) as info:
        move(_lead(), LeadStatus.DISQUALIFIED, now=LATER, reason=reason)
    assert ("reason", "required") == (info.value.field, info.value.code)


def test_the_disqualification_reason_is_kept_stripped_and_cleared_on_reopening() -> None:
    """The reason is stored without surrounding space; going back to working drops it."""
    out, _ = move(_lead(), LeadStatus.DISQUALIFIED, now=LATER, reason="  sin presupuesto ")
    assert "sin presupuesto" == out.status_reason
    back, _ = move(out, LeadStatus.WORKING, now=LATER)
    assert (LeadStatus.WORKING, None) == (back.status, back.status_reason)


def test_a_reason_that_is_not_text_is_rejected() -> None:
    """reason=42 is a type error on reason."""
    with pytest.raises(ValidationError) as info:
        move(_lead(), LeadStatus.DISQUALIFIED, now=LATER, reason=42)  # type: ignore[arg-type]
    assert ("reason", "type") == (info.value.field, info.value.code)


def test_an_overlong_reason_is_rejected() -> None:
    """More than 2000 characters: too_long on reason."""
    with pytest.raises(ValidationError) as info:
        move(_lead(), LeadStatus.DISQUALIFIED, now=LATER, reason="x" * 2001)
    assert ("reason", "too_long") == (info.value.field, info.value.code)


@given(
    st.lists(
        st.tuples(st.sampled_from(list(LeadStatus)), st.sampled_from([None, "", "dup", "x"])),
        max_size=12,
    )
)
def test_any_sequence_of_moves_keeps_the_flow_invariants(
    steps: list[tuple[LeadStatus, str | None]],
) -> None:
    """Whatever is tried: a failed move changes nothing, the version counts the
    effective moves, a disqualified lead has a reason, converted is never reached."""
    lead = _lead()
    for target, reason in steps:
        before = lead
        try:
            lead, event = move(lead, target, now=LATER, reason=reason)
        except (InvalidTransition, ValidationError):
            assert before == lead
            continue
        assert (event is None) == (before.status is target)
        assert before.version + (event is not None) == lead.version
        assert target == lead.status
    assert LeadStatus.CONVERTED is not lead.status
    if lead.status is LeadStatus.DISQUALIFIED:
        assert lead.status_reason


# --------------------------------------------------------------- conversion


@pytest.mark.parametrize("status", [LeadStatus.NEW, LeadStatus.WORKING, LeadStatus.QUALIFIED])
def test_converting_keeps_the_links_and_the_time(status: LeadStatus) -> None:
    """An open lead becomes converted, with the ids of what it became and converted_at."""
    org, contact, opp = OrganizationId(uuid7()), ContactId(uuid7()), OpportunityId(uuid7())
    lead = _in(status)
    new, event = convert(
        lead, now=LATER, organization_id=org, contact_id=contact, opportunity_id=opp
    )
    assert (LeadStatus.CONVERTED, org, contact, opp, LATER) == (
        new.status,
        new.organization_id,
        new.contact_id,
        new.opportunity_id,
        new.converted_at,
    )
    assert new.is_closed
    assert {"status", "organization_id", "contact_id", "opportunity_id", "converted_at"} <= {
        c.field for c in event.changes
    }


@pytest.mark.parametrize("status", [LeadStatus.DISQUALIFIED, LeadStatus.CONVERTED])
def test_a_closed_lead_cannot_be_converted(status: LeadStatus) -> None:
    """Disqualified or converted: InvalidTransition towards converted."""
    with pytest.raises(InvalidTransition) as info:
        convert(_in(status), now=LATER, organization_id=None, contact_id=None)
    assert (status.value, "converted") == (info.value.source, info.value.target)


# ------------------------------------------------------------ what a lead is


def test_a_lead_needs_something_to_go_on() -> None:
    """No name, company, e-mail or phone: ValidationError on first_name, code required."""
    with pytest.raises(ValidationError) as info:
        changes.create(Lead, id=uuid7(), now=NOW, job_title="CTO", message="hola")
    assert ("first_name", "required") == (info.value.field, info.value.code)


@pytest.mark.parametrize(
    "values",
    [
        {"first_name": "Ana"},
        {"last_name": "García"},
        {"company": "Acme"},
        {"email": "ana@acme.es"},
        {"phone": "+34911234567"},
    ],
    ids=lambda v: next(iter(v)),
)
def test_any_one_of_name_company_email_or_phone_is_enough(values: dict[str, str]) -> None:
    """Each of the five alone makes a valid new lead, captured by hand."""
    lead, _ = changes.create(Lead, id=uuid7(), now=NOW, **values)
    assert (LeadStatus.NEW, LeadChannel.MANUAL) == (lead.status, lead.channel)


def test_blank_text_does_not_count_as_something_to_go_on() -> None:
    """Names and company of only spaces are empty: still required."""
    with pytest.raises(ValidationError) as info:
        changes.create(Lead, id=uuid7(), now=NOW, first_name="  ", company=" ")
    assert "required" == info.value.code


def test_a_lead_phone_must_be_international() -> None:
    """The entity reads only +... numbers (the service reads national ones)."""
    with pytest.raises(ValidationError) as info:
        _lead(phone="911234567")
    assert "phone" == info.value.field


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [("Ana", "García", "Ana García"), ("Ana", None, "Ana"), (None, "García", "García")],
)
def test_full_name_joins_the_names_there_are(
    first: str | None, last: str | None, expected: str
) -> None:
    """First and last name, either alone, joined by a space."""
    assert expected == _lead(first_name=first, last_name=last).full_name


def test_a_company_only_lead_has_no_full_name() -> None:
    """No names: full_name is None."""
    assert _lead(first_name=None, company="Acme").full_name is None
