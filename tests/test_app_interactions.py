"""Interactions through the facade: logging, follow-ups, status moves, reassignment,
sequences, kinds from plugins, the logged hook and opportunities born from interest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import crmkit
from crmkit import (
    CRM,
    Interaction,
    InteractionKind,
    InteractionStatus,
    InvalidTransition,
    Money,
    NotFoundError,
    PluginError,
    Sequence,
    SequenceStep,
    ValidationError,
    hookimpl,
)
from crmkit.core import changes
from crmkit.core.ids import InteractionId, uuid7
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # the fixed clock's start, a Monday
LOGGED = "crmkit_interaction_logged"


@pytest.fixture
def acme(any_crm: CRM) -> crmkit.Organization:
    return any_crm.organizations.create(name="Acme S.A.")


@pytest.fixture
def ana(any_crm: CRM, acme: crmkit.Organization) -> crmkit.Contact:
    return any_crm.contacts.create(first_name="Ana", last_name="Pérez", organization=acme)


@pytest.fixture
def luis(any_crm: CRM) -> crmkit.User:
    return any_crm.users.create(name="Luis")


@pytest.fixture
def marta(any_crm: CRM) -> crmkit.User:
    return any_crm.users.create(name="Marta")


def _plan(crm: CRM, org: crmkit.Organization, **values: Any) -> Interaction:
    fields: dict[str, Any] = {"kind": "call", "scheduled_at": T0 + timedelta(days=1)}
    fields.update(values)
    return crm.interactions.plan(organization=org, **fields)


def _actions(crm: CRM, id: InteractionId) -> list[tuple[str, list[str]]]:
    return [(e.action.value, sorted(c.field for c in e.changes)) for e in crm.history(id)]


# ------------------------------------------------------------------- logging


def test_logging_with_a_next_step_plans_the_linked_follow_up(
    any_crm: CRM, acme: crmkit.Organization, ana: crmkit.Contact, luis: crmkit.User
) -> None:
    """Same kind, the step as subject, due one day later, same people, pointing back."""
    done = any_crm.interactions.log(
        kind="call",
        organization=acme,
        contact=ana,
        outcome="initial-interest",
        next_step="Send the proposal",
        assignee=luis,
    )

    [follow] = any_crm.interactions.follow_ups(done)
    initial_interest = any_crm.outcomes.get_by_key("initial-interest")
    assert (InteractionStatus.DONE, T0, initial_interest.id) == (
        done.status,
        done.occurred_at,
        done.outcome_id,
    )
    assert (
        "call",
        InteractionStatus.PLANNED,
        "Send the proposal",
        T0 + timedelta(days=1),
        luis.id,
        acme.id,
        ana.id,
        done.id,
    ) == (
        follow.kind,
        follow.status,
        follow.subject,
        follow.scheduled_at,
        follow.assignee_id,
        follow.organization_id,
        follow.contact_id,
        follow.follow_up_of,
    )
    assert [done, follow] == [
        any_crm.interactions.get(done.id),
        any_crm.interactions.get(follow.id),
    ]


def test_a_next_step_takes_an_explicit_kind_and_due_time(
    any_crm: CRM, acme: crmkit.Organization
) -> None:
    """next_kind and next_due set the follow-up's kind and time."""
    due = T0 + timedelta(days=3, hours=2)
    done = any_crm.interactions.log(
        kind="meeting",
        organization=acme,
        occurred_at=T0 - timedelta(hours=1),
        next_step="Visit the plant",
        next_kind="visit",
        next_due=due,
    )

    assert [("visit", due, "Visit the plant")] == [
        (f.kind, f.scheduled_at, f.subject) for f in any_crm.interactions.follow_ups(done)
    ]
    assert T0 - timedelta(hours=1) == done.occurred_at


def test_logging_without_a_next_step_plans_nothing(any_crm: CRM, acme: crmkit.Organization) -> None:
    """Only the done interaction is written."""
    done = any_crm.interactions.log(kind="note", organization=acme, subject="Met at the fair")
    assert ([], 1) == (any_crm.interactions.follow_ups(done), any_crm.interactions.count())


def test_the_default_follow_up_keeps_the_wall_clock_time_across_summer_time(
    backend_url: str,
) -> None:
    """In Madrid, logged Saturday 18:00 before summer time: the follow-up is Sunday 18:00 CEST."""
    madrid = ZoneInfo("Europe/Madrid")
    saturday = datetime(2026, 3, 28, 18, 0, tzinfo=madrid)
    with crmkit.open(backend_url, clock=lambda: saturday, timezone="Europe/Madrid") as crm:
        org = crm.organizations.create(name="Acme S.A.")
        done = crm.interactions.log(kind="call", organization=org, next_step="Call back")

        [follow] = crm.interactions.follow_ups(done)

        assert datetime(2026, 3, 29, 18, 0, tzinfo=madrid) == follow.scheduled_at
        assert timedelta(hours=23) == follow.scheduled_at - saturday


def test_a_contact_only_log_takes_the_contacts_organization(
    any_crm: CRM, acme: crmkit.Organization, ana: crmkit.Contact
) -> None:
    """Given only a contact, organization_id is the contact's organization (follow-up too)."""
    done = any_crm.interactions.log(kind="email", contact=ana.id, next_step="Reply")
    [follow] = any_crm.interactions.follow_ups(done)
    assert [(acme.id, ana.id)] * 2 == [(i.organization_id, i.contact_id) for i in (done, follow)]


def test_a_contact_without_an_organization_is_enough(any_crm: CRM) -> None:
    """A freelance contact: the interaction has a contact and no organization."""
    solo = any_crm.contacts.create(first_name="Eva")
    done = any_crm.interactions.log(kind="call", contact=solo)
    assert (None, solo.id) == (done.organization_id, done.contact_id)


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"kind": "fax"}, "kind", "reference"),
        ({"outcome": "very-interested"}, "outcome", "reference"),
        ({"organization": None}, "organization", "required"),
        ({"next_due": T0 + timedelta(days=2)}, "next_step", "required"),
        ({"next_step": "Call back", "next_kind": "fax"}, "next_kind", "reference"),
        ({"next_step": "  ", "next_kind": "email"}, "next_step", "required"),
        (
            {"next_step": "Call back", "next_due": datetime(2026, 1, 6, 9)},
            "next_due",
            "naive_datetime",
        ),
        ({"occurred_at": datetime(2026, 1, 5, 8)}, "occurred_at", "naive_datetime"),
        ({"assignee": uuid7()}, "assignee", "reference"),
    ],
    ids=[
        "unknown-kind",
        "unknown-outcome",
        "nobody",
        "due-without-step",
        "unknown-next-kind",
        "blank-next-step",
        "naive-next-due",
        "naive-occurred-at",
        "missing-user",
    ],
)
def test_a_bad_log_names_its_field_and_writes_nothing(
    any_crm: CRM, acme: crmkit.Organization, values: dict[str, Any], field: str, code: str
) -> None:
    """Unknown kinds and outcomes, missing people, naive times: ValidationError, no row."""
    arguments: dict[str, Any] = {"kind": "call", "organization": acme}
    arguments.update(values)
    with pytest.raises(ValidationError) as info:
        any_crm.interactions.log(**arguments)
    assert (field, code) == (info.value.field, info.value.code)
    assert 0 == any_crm.interactions.count()


def test_outcomes_are_a_master_list_that_can_grow(any_crm: CRM, acme: crmkit.Organization) -> None:
    """The seeded outcomes are there; a new one is usable by key at once."""
    assert {
        "initial-interest",
        "schedule-meeting",
        "send-information",
        "send-proposal",
        "call-back",
        "no-answer",
        "not-interested",
    } <= {o.key for o in any_crm.outcomes.find()}
    demo = any_crm.outcomes.create(key="demo-requested", name="Demo requested", name_es="Pide demo")

    done = any_crm.interactions.log(kind="call", organization=acme, outcome="demo-requested")

    assert demo.id == done.outcome_id


# --------------------------------------------------------------- status moves


def test_complete_through_the_facade_is_audited_and_can_plan_the_next_step(
    any_crm: CRM, clock: FixedClock, acme: crmkit.Organization, luis: crmkit.User
) -> None:
    """complete() sets done, the time, outcome; a next step plans a follow-up for the assignee."""
    planned = _plan(any_crm, acme, assignee=luis)
    clock.advance(days=1, hours=1)

    done = any_crm.interactions.complete(
        planned.id, outcome="schedule-meeting", next_step="Meeting with IT", next_kind="meeting"
    )

    assert (InteractionStatus.DONE, clock.current, 2) == (
        done.status,
        done.occurred_at,
        done.version,
    )
    assert [("meeting", luis.id, clock.current + timedelta(days=1))] == [
        (f.kind, f.assignee_id, f.scheduled_at) for f in any_crm.interactions.follow_ups(done)
    ]
    assert [
        ("create", ["kind", "organization_id", "scheduled_at", "status"]),
        ("update", ["next_step", "occurred_at", "outcome_id", "status"]),
    ] == [(a, [f for f in fs if f != "assignee_id"]) for a, fs in _actions(any_crm, planned.id)]
    last = any_crm.history(planned.id)[-1]
    assert ("planned", "done") == next((c.old, c.new) for c in last.changes if c.field == "status")


def test_reschedule_and_cancel_through_the_facade_are_audited(
    any_crm: CRM, acme: crmkit.Organization
) -> None:
    """Each move is one audited update; the cancel reason lands in the description."""
    planned = _plan(any_crm, acme)
    later = T0 + timedelta(days=4)

    moved = any_crm.interactions.reschedule(planned.id, to=later)
    cancelled = any_crm.interactions.cancel(
        planned.id, reason="They bought elsewhere", expected_version=moved.version
    )

    assert (later, InteractionStatus.CANCELLED, "They bought elsewhere", 3) == (
        moved.scheduled_at,
        cancelled.status,
        cancelled.description,
        cancelled.version,
    )
    assert [
        ("create", ["kind", "organization_id", "scheduled_at", "status"]),
        ("update", ["scheduled_at"]),
        ("update", ["description", "status"]),
    ] == _actions(any_crm, planned.id)
    assert cancelled == any_crm.interactions.get(planned.id)


def test_a_done_interaction_cannot_be_completed_rescheduled_or_cancelled(
    any_crm: CRM, acme: crmkit.Organization
) -> None:
    """InvalidTransition from done; the record and its audit trail stay as they were."""
    done = any_crm.interactions.log(kind="call", organization=acme)
    moves: list[Callable[[], object]] = [
        lambda: any_crm.interactions.complete(done.id),
        lambda: any_crm.interactions.reschedule(done.id, to=T0 + timedelta(days=1)),
        lambda: any_crm.interactions.cancel(done.id),
    ]
    for move in moves:
        with pytest.raises(InvalidTransition) as info:
            move()
        assert "done" == info.value.source
    assert (done, 1) == (any_crm.interactions.get(done.id), len(any_crm.history(done.id)))


def test_a_blank_next_step_plans_nothing(any_crm: CRM, acme: crmkit.Organization) -> None:
    """Whitespace is no next step: complete() writes no follow-up."""
    planned = _plan(any_crm, acme)
    done = any_crm.interactions.complete(planned.id, next_step="   ")
    assert (None, []) == (done.next_step, any_crm.interactions.follow_ups(done))


def test_reschedule_to_a_naive_time_names_to(any_crm: CRM, acme: crmkit.Organization) -> None:
    """ValidationError on ``to``; the interaction keeps its time."""
    planned = _plan(any_crm, acme)
    with pytest.raises(ValidationError) as info:
        any_crm.interactions.reschedule(planned.id, to=datetime(2026, 1, 9, 10))
    assert ("to", "naive_datetime") == (info.value.field, info.value.code)
    assert planned == any_crm.interactions.get(planned.id)


def test_a_stale_expected_version_changes_nothing(any_crm: CRM, acme: crmkit.Organization) -> None:
    """ConcurrencyError when the interaction moved on since the version the caller saw."""
    planned = _plan(any_crm, acme)
    any_crm.interactions.reschedule(planned.id, to=T0 + timedelta(days=2))
    with pytest.raises(crmkit.ConcurrencyError):
        any_crm.interactions.cancel(planned.id, expected_version=planned.version)
    assert InteractionStatus.PLANNED == any_crm.interactions.get(planned.id).status


def test_moves_on_a_missing_interaction_are_not_found(any_crm: CRM) -> None:
    """NotFoundError names the entity."""
    with pytest.raises(NotFoundError) as info:
        any_crm.interactions.complete(InteractionId(uuid7()))
    assert "interaction" == info.value.entity


def test_update_changes_details_and_is_audited(any_crm: CRM, acme: crmkit.Organization) -> None:
    """Subject, outcome and tags change with the expected version; one audited update."""
    done = any_crm.interactions.log(kind="visit", organization=acme)

    updated = any_crm.interactions.update(
        done.id,
        expected_version=done.version,
        subject="Plant tour",
        outcome="send-information",
        tags=["fair-2026"],
    )

    assert ("Plant tour", ("fair-2026",), 2) == (updated.subject, updated.tags, updated.version)
    assert ("update", ["outcome_id", "subject", "tags"]) == _actions(any_crm, done.id)[-1]


# --------------------------------------------------------------- reassignment


def test_reassign_one_interaction_is_audited(
    any_crm: CRM, acme: crmkit.Organization, luis: crmkit.User, marta: crmkit.User
) -> None:
    """The assignee changes, with an audit entry from Luis to Marta."""
    planned = _plan(any_crm, acme, assignee=luis)

    [moved] = any_crm.interactions.reassign(planned.id, to=marta)

    assert marta.id == moved.assignee_id == any_crm.interactions.get(planned.id).assignee_id
    last = any_crm.history(planned.id)[-1]
    assert [("assignee_id", str(luis.id), str(marta.id))] == [
        (c.field, c.old, c.new) for c in last.changes
    ]


def test_reassign_many_at_once_leaves_those_already_assigned_alone(
    any_crm: CRM, acme: crmkit.Organization, luis: crmkit.User, marta: crmkit.User
) -> None:
    """All move to Marta; hers stays at version 1; duplicates count once; None unassigns."""
    first, second = _plan(any_crm, acme, assignee=luis), _plan(any_crm, acme, assignee=luis)
    hers = _plan(any_crm, acme, assignee=marta)

    moved = any_crm.interactions.reassign([first.id, second.id, hers.id, first.id], to=marta)

    assert [(first.id, 2), (second.id, 2), (hers.id, 1)] == [(i.id, i.version) for i in moved]
    assert {marta.id} == {i.assignee_id for i in any_crm.interactions.find()}
    [unassigned] = any_crm.interactions.reassign(hers.id, to=None)
    assert unassigned.assignee_id is None


def test_reassign_with_one_missing_id_changes_nothing(
    any_crm: CRM, acme: crmkit.Organization, luis: crmkit.User, marta: crmkit.User
) -> None:
    """NotFoundError, and every other interaction keeps its assignee and its history."""
    planned = [_plan(any_crm, acme, assignee=luis) for _ in range(3)]
    missing = InteractionId(uuid7())

    with pytest.raises(NotFoundError) as info:
        any_crm.interactions.reassign([p.id for p in planned[:2]] + [missing], to=marta)

    assert missing == info.value.id
    assert planned == [any_crm.interactions.get(p.id) for p in planned]
    assert [1, 1, 1] == [len(any_crm.history(p.id)) for p in planned]


@pytest.mark.parametrize(
    ("ids", "to", "field"),
    [
        ("not-an-id", None, "ids"),
        (["not-an-id"], None, "ids[0]"),
        (None, "luis", "to"),
    ],
    ids=["text", "text-in-list", "user-by-name"],
)
def test_reassign_rejects_bad_arguments(
    any_crm: CRM, acme: crmkit.Organization, ids: Any, to: Any, field: str
) -> None:
    """ids must be ids; ``to`` a user or user id."""
    planned = _plan(any_crm, acme)
    with pytest.raises(ValidationError) as info:
        any_crm.interactions.reassign(planned.id if ids is None else ids, to=to)
    assert field == info.value.field
    assert planned == any_crm.interactions.get(planned.id)


# ------------------------------------------------------------------ sequences

NURTURE = Sequence(
    key="nurture",
    name="New prospect",
    name_es="Nuevo prospecto",
    steps=[
        SequenceStep(kind="call", subject="Introduce ourselves"),
        SequenceStep(kind="email", after=timedelta(days=3), subject="Send the brochure"),
        SequenceStep(kind="visit", after=timedelta(days=4), subject="Visit"),
    ],
)


def test_apply_sequence_plans_every_step_for_the_organization(
    any_crm: CRM, acme: crmkit.Organization, ana: crmkit.Contact, luis: crmkit.User
) -> None:
    """call now, e-mail 3 days later, visit 4 days after that, all on Luis's agenda."""
    any_crm.interactions.sequences.register(NURTURE)

    planned = any_crm.interactions.apply_sequence("nurture", contact=ana, assignee=luis)

    assert [
        ("call", T0, "Introduce ourselves"),
        ("email", T0 + timedelta(days=3), "Send the brochure"),
        ("visit", T0 + timedelta(days=7), "Visit"),
    ] == [(i.kind, i.scheduled_at, i.subject) for i in planned]
    assert {(InteractionStatus.PLANNED, acme.id, ana.id, luis.id)} == {
        (i.status, i.organization_id, i.contact_id, i.assignee_id) for i in planned
    }
    assert planned == any_crm.interactions.find(order_by="scheduled_at")


def test_apply_sequence_starts_where_asked(any_crm: CRM, acme: crmkit.Organization) -> None:
    """start moves the whole series; an unregistered Sequence object works too."""
    monday = T0 + timedelta(days=7)
    planned = any_crm.interactions.apply_sequence(NURTURE, organization=acme, start=monday)
    assert [monday, monday + timedelta(days=3), monday + timedelta(days=7)] == [
        i.scheduled_at for i in planned
    ]


def test_apply_sequence_is_one_transaction(
    any_crm: CRM, acme: crmkit.Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure at the third step leaves none of the steps planned."""
    real_create = changes.create
    made: list[object] = []

    def failing_create(cls: Any, **values: Any) -> Any:
        if cls is Interaction:
            made.append(values["kind"])
            if len(made) == 3:
                raise ValidationError("subject", "injected failure")
        return real_create(cls, **values)

    monkeypatch.setattr(changes, "create", failing_create)

    with pytest.raises(ValidationError, match="injected failure"):
        any_crm.interactions.apply_sequence(NURTURE, organization=acme)

    assert (["call", "email", "visit"], 0) == (made, any_crm.interactions.count())


@pytest.mark.parametrize(
    ("sequence", "values", "field"),
    [
        ("nope", {}, "sequence"),
        (
            Sequence(
                key="fax", name="Fax", steps=[SequenceStep(kind="call"), SequenceStep(kind="fax")]
            ),
            {},
            "steps[1].kind",
        ),
        (NURTURE, {"organization": None}, "organization"),
        (NURTURE, {"start": datetime(2026, 1, 5, 9)}, "start"),
    ],
    ids=["unknown-sequence", "unknown-step-kind", "nobody", "naive-start"],
)
def test_a_bad_sequence_application_names_its_field(
    any_crm: CRM,
    acme: crmkit.Organization,
    sequence: Any,
    values: dict[str, Any],
    field: str,
) -> None:
    """Unknown sequences or kinds, nobody to apply it to, a naive start: nothing planned."""
    arguments: dict[str, Any] = {"organization": acme}
    arguments.update(values)
    with pytest.raises(ValidationError) as info:
        any_crm.interactions.apply_sequence(sequence, **arguments)
    assert field == info.value.field
    assert 0 == any_crm.interactions.count()


def test_a_sequence_key_registers_once(any_crm: CRM) -> None:
    """Registering the same key twice is a DuplicateError."""
    any_crm.interactions.sequences.register(NURTURE)
    with pytest.raises(crmkit.DuplicateError):
        any_crm.interactions.sequences.register(NURTURE)
    assert ["nurture"] == any_crm.interactions.sequences.keys()


# ------------------------------------------------------------ kinds from plugins


class WhatsApp:
    """A plugin adding the whatsapp kind."""

    def __init__(self, key: str = "whatsapp") -> None:
        self.key = key

    @hookimpl
    def crmkit_register_interaction_kinds(self, crm: CRM) -> list[InteractionKind]:
        return [InteractionKind(key=self.key, name="WhatsApp message", name_es="WhatsApp")]


def test_a_plugin_kind_can_be_logged_planned_and_followed_up(
    backend_url: str, clock: FixedClock
) -> None:
    """The plugin's kind is accepted everywhere a kind is."""
    with crmkit.open(backend_url, clock=clock, plugins=[WhatsApp()]) as crm:
        org = crm.organizations.create(name="Acme S.A.")
        done = crm.interactions.log(
            kind="whatsapp", organization=org, next_step="Send a voice note", next_kind="whatsapp"
        )
        [follow] = crm.interactions.follow_ups(done)
        assert ("whatsapp", "whatsapp") == (done.kind, follow.kind)
        assert "whatsapp" in crm.interactions.kinds


def test_a_plugin_kind_with_a_taken_key_stops_open(backend_url: str) -> None:
    """A plugin registering "call" again: PluginError at crmkit.open."""
    with pytest.raises(PluginError):
        crmkit.open(backend_url, plugins=[WhatsApp(key="call")])


def test_register_kind_through_the_api(any_crm: CRM, acme: crmkit.Organization) -> None:
    """register_kind adds a kind; a taken key is a DuplicateError."""
    any_crm.interactions.register_kind(InteractionKind(key="fair", name="Trade fair"))
    assert "fair" == any_crm.interactions.log(kind="fair", organization=acme).kind
    with pytest.raises(crmkit.DuplicateError):
        any_crm.interactions.register_kind(InteractionKind(key="call", name="Call again"))


# ---------------------------------------------------- crmkit_interaction_logged


class SeesCommitted:
    """Records, at each notification, the interaction as a fresh read sees it."""

    def __init__(self) -> None:
        self.seen: list[Interaction] = []

    @hookimpl
    def crmkit_interaction_logged(self, crm: CRM, interaction: Interaction) -> None:
        self.seen.append(crm.interactions.get(interaction.id))


def test_interaction_logged_fires_once_after_commit(backend_url: str, clock: FixedClock) -> None:
    """log() and complete() notify once each, when the row is already committed."""
    recorder, sees = RecordingPlugin(), SeesCommitted()
    with crmkit.open(backend_url, clock=clock, plugins=[recorder, sees]) as crm:
        org = crm.organizations.create(name="Acme S.A.")
        done = crm.interactions.log(kind="call", organization=org, next_step="Call back")
        [follow] = crm.interactions.follow_ups(done)
        completed = crm.interactions.complete(follow.id)
        crm.interactions.plan(kind="visit", organization=org, scheduled_at=T0)  # not logged
        crm.interactions.cancel(
            crm.interactions.plan(kind="call", organization=org, scheduled_at=T0).id
        )

        assert [done, completed] == [c.kwargs["interaction"] for c in recorder.calls_to(LOGGED)]
        assert [done, completed] == sees.seen


def test_interaction_logged_waits_for_the_outer_transaction(
    backend_url: str, clock: FixedClock
) -> None:
    """Inside crm.transaction() nothing is heard until the block commits."""
    recorder = RecordingPlugin()
    with crmkit.open(backend_url, clock=clock, plugins=[recorder]) as crm:
        org = crm.organizations.create(name="Acme S.A.")
        with crm.transaction():
            first = crm.interactions.log(kind="call", organization=org)
            second = crm.interactions.log(kind="email", organization=org)
            assert [] == recorder.calls_to(LOGGED)

        assert [first, second] == [c.kwargs["interaction"] for c in recorder.calls_to(LOGGED)]


class Boom(Exception):
    """Raised by a test to abandon a transaction."""


def test_interaction_logged_is_not_heard_when_the_transaction_rolls_back(
    backend_url: str, clock: FixedClock
) -> None:
    """An exception leaving crm.transaction() drops the interaction and its notification."""
    recorder = RecordingPlugin()
    with crmkit.open(backend_url, clock=clock, plugins=[recorder]) as crm:
        org = crm.organizations.create(name="Acme S.A.")

        def work() -> None:
            with crm.transaction():
                crm.interactions.log(kind="call", organization=org, next_step="Call back")
                raise Boom

        with pytest.raises(Boom):
            work()

        assert ([], 0) == (recorder.calls_to(LOGGED), crm.interactions.count())


# ------------------------------------------------- opportunities from interest


def test_create_opportunity_opens_one_for_the_interaction_and_links_it(
    any_crm: CRM, acme: crmkit.Organization, ana: crmkit.Contact, luis: crmkit.User
) -> None:
    """Organization and contact from the interaction, owner its assignee; the link is audited."""
    done = any_crm.interactions.log(
        kind="meeting", contact=ana, assignee=luis, outcome="initial-interest"
    )

    opp = any_crm.opportunities.get(
        any_crm.interactions.create_opportunity(
            done.id, name="ERP para Acme", amount=Money("12000", "EUR")
        ).id
    )

    linked = any_crm.interactions.get(done.id)
    assert ("ERP para Acme", acme.id, ana.id, luis.id, Money("12000", "EUR"), "lead") == (
        opp.name,
        opp.organization_id,
        opp.contact_id,
        opp.owner_id,
        opp.amount,
        opp.stage,
    )
    assert (opp.id, 2) == (linked.opportunity_id, linked.version)
    assert ("update", ["opportunity_id"]) == _actions(any_crm, done.id)[-1]
    assert [linked] == any_crm.interactions.of(opp)


def test_create_opportunity_takes_pipeline_and_other_values(
    any_crm: CRM, acme: crmkit.Organization, luis: crmkit.User, marta: crmkit.User
) -> None:
    """pipeline, stage and owner are passed on; the owner given wins over the assignee."""
    done = any_crm.interactions.log(kind="visit", organization=acme, assignee=luis)
    opp = any_crm.interactions.create_opportunity(
        done.id,
        name="Renovación",
        pipeline="gestion-comercial",
        owner=marta,
    )
    assert ("gestion-comercial", marta.id) == (opp.pipeline, opp.owner_id)


def test_create_opportunity_that_fails_links_nothing(
    any_crm: CRM, acme: crmkit.Organization
) -> None:
    """A stage whose requirements are not met: no opportunity, interaction unchanged."""
    done = any_crm.interactions.log(kind="call", organization=acme)
    with pytest.raises(ValidationError):
        any_crm.interactions.create_opportunity(done.id, name="Too soon", stage="proposal")
    assert (0, done) == (any_crm.opportunities.count(), any_crm.interactions.get(done.id))


@pytest.mark.parametrize("values", [{"organization": None}, {"contact": None}])
def test_create_opportunity_takes_the_people_from_the_interaction(
    any_crm: CRM, acme: crmkit.Organization, values: dict[str, Any]
) -> None:
    """organization= or contact= is a conflict: they come from the interaction."""
    done = any_crm.interactions.log(kind="call", organization=acme)
    with pytest.raises(ValidationError) as info:
        any_crm.interactions.create_opportunity(done.id, name="X", **values)
    assert (next(iter(values)), "conflict") == (info.value.field, info.value.code)


def test_an_interaction_leads_to_one_opportunity_only(
    any_crm: CRM, acme: crmkit.Organization
) -> None:
    """A second create_opportunity is a conflict and opens nothing."""
    done = any_crm.interactions.log(kind="call", organization=acme)
    any_crm.interactions.create_opportunity(done.id, name="First")
    with pytest.raises(ValidationError) as info:
        any_crm.interactions.create_opportunity(done.id, name="Second")
    assert ("interaction", "conflict", 1) == (
        info.value.field,
        info.value.code,
        any_crm.opportunities.count(),
    )


def test_create_opportunity_inside_a_rolled_back_transaction_leaves_nothing(
    any_crm: CRM, acme: crmkit.Organization
) -> None:
    """Joined to crm.transaction(): an exception undoes the opportunity and the link."""
    done = any_crm.interactions.log(kind="call", organization=acme)

    def work() -> None:
        with any_crm.transaction():
            any_crm.interactions.create_opportunity(done.id, name="Maybe")
            raise Boom

    with pytest.raises(Boom):
        work()
    assert (0, done) == (any_crm.opportunities.count(), any_crm.interactions.get(done.id))


# ------------------------------------------------------------ bulk and reads


def test_bulk_create_plans_many_at_once(
    any_crm: CRM, acme: crmkit.Organization, ana: crmkit.Contact, luis: crmkit.User
) -> None:
    """Each item holds plan()'s arguments; every interaction is planned and audited."""
    recorder_calls_before = len(any_crm.history(acme.id))
    items = [
        {
            "kind": "call",
            "contact": ana,
            "scheduled_at": T0 + timedelta(days=d),
            "assignee": luis,
            "subject": f"Call {d}",
        }
        for d in range(1, 26)
    ]

    planned = any_crm.interactions.bulk_create(items, batch_size=10)

    assert 25 == len(planned) == any_crm.interactions.count(status="planned")
    assert {(InteractionStatus.PLANNED, acme.id, luis.id)} == {
        (i.status, i.organization_id, i.assignee_id) for i in planned
    }
    assert planned == any_crm.interactions.find(order_by="scheduled_at")
    assert ["create"] == [e.action.value for e in any_crm.history(planned[-1].id)]
    assert recorder_calls_before == len(any_crm.history(acme.id))


def test_bulk_create_with_one_bad_item_writes_nothing(
    any_crm: CRM, acme: crmkit.Organization
) -> None:
    """The index of the bad item leads the field; no row is written."""
    items: list[dict[str, Any]] = [
        {"kind": "call", "organization": acme, "scheduled_at": T0},
        {"kind": "fax", "organization": acme, "scheduled_at": T0},
    ]
    with pytest.raises(ValidationError) as info:
        any_crm.interactions.bulk_create(items)
    assert ("[1].kind", 0) == (info.value.field, any_crm.interactions.count())


def test_of_lists_done_ones_latest_first_then_planned_ones(
    any_crm: CRM, acme: crmkit.Organization, ana: crmkit.Contact
) -> None:
    """of(organization) and of(contact): done by occurred_at desc, then planned, latest first."""
    old = any_crm.interactions.log(kind="call", contact=ana, occurred_at=T0 - timedelta(days=9))
    new = any_crm.interactions.log(kind="email", organization=acme, occurred_at=T0)
    soon = _plan(any_crm, acme, scheduled_at=T0 + timedelta(days=1))
    later = _plan(any_crm, acme, scheduled_at=T0 + timedelta(days=5))

    assert [new, old, later, soon] == any_crm.interactions.of(acme)
    assert [old] == any_crm.interactions.of(ana)
    assert [new] == any_crm.interactions.of(acme, limit=1)
    with pytest.raises(ValidationError):
        any_crm.interactions.of("acme")  # type: ignore[arg-type]
