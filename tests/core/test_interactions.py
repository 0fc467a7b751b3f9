"""Interactions as values: invariants, status moves, kinds, sequences and their times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit import (
    Interaction,
    InteractionKind,
    InteractionStatus,
    InvalidTransition,
    OrganizationId,
    OutcomeId,
    Sequence,
    SequenceStep,
    ValidationError,
)
from crmkit.core import changes
from crmkit.core.ids import uuid7
from crmkit.core.interactions import (
    BUILTIN_INTERACTION_KINDS,
    cancel,
    complete,
    plan_sequence,
    reschedule,
    shift,
)
from tests.strategies import aware_datetimes

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MADRID = ZoneInfo("Europe/Madrid")
ORG = OrganizationId(uuid7())


def _interaction(**values: Any) -> Interaction:
    fields: dict[str, Any] = {
        "kind": "call",
        "status": InteractionStatus.PLANNED,
        "scheduled_at": T0 + timedelta(days=1),
        "organization_id": ORG,
    }
    fields.update(values)
    interaction, _ = changes.create(Interaction, id=uuid7(), now=T0, **fields)
    return interaction


def _done() -> Interaction:
    return _interaction(status=InteractionStatus.DONE, scheduled_at=None, occurred_at=T0)


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"organization_id": None}, "organization", "required"),
        ({"scheduled_at": None}, "scheduled_at", "required"),
        ({"status": InteractionStatus.DONE, "occurred_at": None}, "occurred_at", "required"),
        ({"occurred_at": T0}, "occurred_at", "conflict"),
        ({"kind": "Phone Call"}, "kind", "key"),
        ({"status": "finished"}, "status", "choice"),
        ({"scheduled_at": datetime(2026, 1, 6, 9)}, "scheduled_at", "naive_datetime"),
    ],
    ids=[
        "no-organization-nor-contact",
        "planned-without-time",
        "done-without-time",
        "planned-that-happened",
        "bad-kind-key",
        "unknown-status",
        "naive-time",
    ],
)
def test_an_invalid_interaction_names_its_field(
    values: dict[str, Any], field: str, code: str
) -> None:
    """Each invariant is a ValidationError on the field that breaks it."""
    with pytest.raises(ValidationError) as info:
        _interaction(**values)
    assert (field, code) == (info.value.field, info.value.code)


def test_a_contact_alone_is_enough() -> None:
    """An interaction needs an organization or a contact, not both."""
    contact = uuid7()
    interaction = _interaction(organization_id=None, contact_id=contact)
    assert (None, contact) == (interaction.organization_id, interaction.contact_id)


def test_a_cancelled_interaction_needs_no_time_it_happened() -> None:
    """Cancelled: scheduled_at may stay, occurred_at is not required."""
    interaction = _interaction(status=InteractionStatus.CANCELLED)
    assert (InteractionStatus.CANCELLED, None) == (interaction.status, interaction.occurred_at)


def test_when_is_the_time_it_happened_else_the_planned_time() -> None:
    """``when`` prefers occurred_at over scheduled_at."""
    assert T0 + timedelta(days=1) == _interaction().when
    assert T0 == _done().when


def test_the_builtin_kinds_are_the_seven_of_the_issue_with_spanish_labels() -> None:
    """call, email, meeting, visit, document, presentation, note; each labelled in es."""
    assert ["call", "email", "meeting", "visit", "document", "presentation", "note"] == [
        k.key for k in BUILTIN_INTERACTION_KINDS
    ]
    assert ("Llamada", "Call") == (
        BUILTIN_INTERACTION_KINDS[0].label("es"),
        BUILTIN_INTERACTION_KINDS[0].label("en"),
    )
    assert "Nota" == BUILTIN_INTERACTION_KINDS[-1].label("es-ES")


def test_a_kind_without_a_spanish_label_falls_back_to_english() -> None:
    """label("es") is the English name when name_es is missing."""
    assert "WhatsApp" == InteractionKind(key="whatsapp", name="WhatsApp").label("es")


def test_a_kind_key_must_be_a_key() -> None:
    """Upper case and spaces are refused on the key field."""
    with pytest.raises(ValidationError) as info:
        InteractionKind(key="Whats App", name="WhatsApp")
    assert ("key", "key") == (info.value.field, info.value.code)


# -------------------------------------------------------------- status moves


def test_complete_marks_a_planned_interaction_done_with_its_outcome() -> None:
    """Status done, occurred_at now by default, outcome and next step kept; one version up."""
    planned = _interaction()
    outcome = OutcomeId(uuid7())
    now = T0 + timedelta(hours=3)

    done, event = complete(planned, now=now, outcome_id=outcome, next_step="Send the offer")

    assert (InteractionStatus.DONE, now, outcome, "Send the offer") == (
        done.status,
        done.occurred_at,
        done.outcome_id,
        done.next_step,
    )
    assert (planned.version + 1, done) == (done.version, event.entity)
    assert {"status", "occurred_at", "outcome_id", "next_step"} == {c.field for c in event.changes}


def test_complete_keeps_an_explicit_occurred_at() -> None:
    """occurred_at given wins over now."""
    earlier = T0 - timedelta(hours=1)
    done, _ = complete(_interaction(), now=T0, occurred_at=earlier)
    assert earlier == done.occurred_at


def test_cancel_appends_the_reason_to_the_description() -> None:
    """The reason goes after the existing description, separated by a blank line."""
    planned = _interaction(description="Demo of the ERP")
    cancelled, _ = cancel(planned, now=T0, reason="Customer asked to postpone")
    assert InteractionStatus.CANCELLED == cancelled.status
    assert "Demo of the ERP\n\nCustomer asked to postpone" == cancelled.description


def test_reschedule_moves_the_planned_time() -> None:
    """A new time is one version up; the same time is no change at all."""
    planned = _interaction()
    later = T0 + timedelta(days=3)

    moved, event = reschedule(planned, to=later, now=T0)
    same, no_event = reschedule(moved, to=later, now=T0)

    assert (later, planned.version + 1) == (moved.scheduled_at, moved.version)
    assert event is not None
    assert (moved, None) == (same, no_event)


def test_reschedule_to_a_naive_time_names_the_to_argument() -> None:
    """A naive ``to`` is a ValidationError on ``to``, not on scheduled_at."""
    with pytest.raises(ValidationError) as info:
        reschedule(_interaction(), to=datetime(2026, 1, 9, 9), now=T0)
    assert ("to", "naive_datetime") == (info.value.field, info.value.code)


@pytest.mark.parametrize("status", [InteractionStatus.DONE, InteractionStatus.CANCELLED])
@pytest.mark.parametrize(
    ("move", "target"),
    [
        (lambda i: complete(i, now=T0), "done"),
        (lambda i: cancel(i, now=T0), "cancelled"),
        (lambda i: reschedule(i, to=T0 + timedelta(days=2), now=T0), "planned"),
    ],
    ids=["complete", "cancel", "reschedule"],
)
def test_only_a_planned_interaction_moves(
    status: InteractionStatus, move: Any, target: str
) -> None:
    """Done and cancelled interactions are final: InvalidTransition naming both statuses."""
    if status is InteractionStatus.DONE:
        final = _done()
    else:
        final, _ = cancel(_interaction(), now=T0)
    with pytest.raises(InvalidTransition) as info:
        move(final)
    assert ("interaction", status.value, target) == (
        info.value.entity,
        info.value.source,
        info.value.target,
    )


# ----------------------------------------------------------------- sequences

NURTURE = Sequence(
    key="nurture",
    name="Nurture",
    name_es="Maduración",
    steps=[
        SequenceStep(kind="call", subject="First call"),
        SequenceStep(kind="email", after=timedelta(days=3), subject="Send the brochure"),
        SequenceStep(kind="visit", after=timedelta(days=7, hours=2)),
    ],
)


def test_plan_sequence_adds_each_after_to_the_step_before() -> None:
    """call at start, e-mail 3 days later, visit 7 days and 2 hours after the e-mail."""
    planned = plan_sequence(NURTURE, T0)
    assert [
        ("call", T0),
        ("email", T0 + timedelta(days=3)),
        ("visit", T0 + timedelta(days=10, hours=2)),
    ] == [(step.kind, at) for step, at in planned]


def test_plan_sequence_counts_days_on_the_wall_clock_across_summer_time() -> None:
    """In Madrid, 3 days after Friday 10:00 (CET) is Monday 10:00 (CEST), 71 hours later."""
    friday = datetime(2026, 3, 27, 10, 0, tzinfo=MADRID)  # summer time starts Sunday 29th
    sequence = Sequence(
        key="s",
        name="S",
        steps=[SequenceStep(kind="call"), SequenceStep(kind="email", after=timedelta(days=3))],
    )

    (_, first), (_, second) = plan_sequence(sequence, friday, MADRID)

    assert datetime(2026, 3, 30, 10, 0, tzinfo=MADRID) == second
    assert timedelta(hours=71) == second - first
    assert UTC == second.tzinfo


def test_shift_counts_hours_as_elapsed_time() -> None:
    """Two hours after 01:30 on the night summer time starts is 04:30 on the wall clock."""
    night = datetime(2026, 3, 29, 1, 30, tzinfo=MADRID)
    assert datetime(2026, 3, 29, 4, 30, tzinfo=MADRID) == shift(night, timedelta(hours=2), MADRID)


@pytest.mark.parametrize(
    ("start", "code"),
    [
        (datetime(2026, 1, 5, 9), "naive_datetime"),
        ("2026-01-05T09:00Z", "type"),
        (datetime(9999, 12, 25, tzinfo=UTC), "out_of_range"),
    ],
    ids=["naive", "text", "past-year-9999"],
)
def test_plan_sequence_rejects_a_bad_start(start: Any, code: str) -> None:
    """A start that is not an aware datetime, or steps past year 9999, name ``start``."""
    with pytest.raises(ValidationError) as info:
        plan_sequence(NURTURE, start)
    assert ("start", code) == (info.value.field, info.value.code)


@pytest.mark.parametrize(
    ("build", "field", "code"),
    [
        (lambda: Sequence(key="s", name="S", steps=[]), "steps", "required"),
        (lambda: Sequence(key="s", name="S", steps="call"), "steps", "type"),
        (lambda: Sequence(key="s", name="S", steps=["call"]), "steps[0]", "type"),
        (lambda: Sequence(key="No Key", name="S", steps=[SequenceStep(kind="call")]), "key", "key"),
        (lambda: SequenceStep(kind="call", after=timedelta(days=-1)), "after", "type"),
        (lambda: SequenceStep(kind="call", after=3), "after", "type"),
        (lambda: SequenceStep(kind="Call"), "kind", "key"),
    ],
    ids=[
        "no-steps",
        "steps-text",
        "step-not-a-step",
        "bad-key",
        "negative-after",
        "int-after",
        "bad-kind",
    ],
)
def test_an_invalid_sequence_names_its_field(build: Any, field: str, code: str) -> None:
    """Sequences need steps; steps need a kind key and a non-negative timedelta."""
    with pytest.raises(ValidationError) as info:
        build()
    assert (field, code) == (info.value.field, info.value.code)


_steps = st.lists(
    st.builds(
        SequenceStep,
        kind=st.sampled_from(["call", "email", "visit"]),
        after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
    ),
    min_size=1,
    max_size=8,
)


@given(start=aware_datetimes(), steps=_steps)
def test_plan_sequence_times_never_go_back_and_end_at_start_plus_every_after(
    start: datetime, steps: list[SequenceStep]
) -> None:
    """Times are non-decreasing, one per step in order; the last is start + sum of afters."""
    sequence = Sequence(key="s", name="S", steps=steps)

    planned = plan_sequence(sequence, start)

    times = [at for _, at in planned]
    assert steps == [step for step, _ in planned]
    assert sorted(times) == times
    assert start + sum((s.after for s in steps), timedelta(0)) == times[-1]
    assert start + steps[0].after == times[0]
