"""Post-sale cases through the facade: opening with an SLA, the flow, hooks, overdue, audit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import crmkit
from crmkit import (
    Case,
    CasePriority,
    CaseStatus,
    CaseType,
    ConcurrencyError,
    DuplicateError,
    InvalidTransition,
    NotFoundError,
    SlaTarget,
    UserId,
    ValidationError,
    hookimpl,
)
from crmkit.core.ids import uuid7
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock, record_counts

MADRID = ZoneInfo("Europe/Madrid")


class Boom(Exception):
    """Raised by a test to roll a transaction back."""


@pytest.fixture
def acme(any_crm: crmkit.CRM) -> crmkit.Organization:
    return any_crm.organizations.create(name="Acme S.A.")


def _open(crm: crmkit.CRM, org: crmkit.Organization, **values: Any) -> Case:
    arguments: dict[str, Any] = {"subject": "Pedido incompleto", "case_type": "claim", **values}
    return crm.cases.open(organization=org, **arguments)


def _counts(crm: crmkit.CRM) -> dict[str, int]:
    """How many records of each kind, cases included."""
    return record_counts(crm) | {"cases": crm.cases.count(archived=None)}


# ================================================================== opening


@pytest.mark.parametrize(
    ("case_type", "priority", "sla"),
    [
        ("claim", "normal", timedelta(days=3)),
        ("claim", "urgent", timedelta(hours=4)),
        ("incident", "high", timedelta(hours=8)),
        ("service_request", "low", timedelta(days=10)),
    ],
)
def test_opening_a_case_sets_its_sla_from_the_type_and_priority(
    any_crm: crmkit.CRM,
    acme: crmkit.Organization,
    clock: FixedClock,
    case_type: str,
    priority: str,
    sla: timedelta,
) -> None:
    """opened_at is now, sla_due now plus the type's target for the priority; status open."""
    case = _open(any_crm, acme, case_type=case_type, priority=priority)
    assert (CaseStatus.OPEN, CasePriority(priority), clock.current, clock.current + sla) == (
        case.status,
        case.priority,
        case.opened_at,
        case.sla_due,
    )
    assert case == any_crm.cases.get(case.id)


def test_the_priority_defaults_to_normal(any_crm: crmkit.CRM, acme: crmkit.Organization) -> None:
    """Without a priority, a claim is normal and due in 3 days."""
    case = _open(any_crm, acme)
    assert (CasePriority.NORMAL, timedelta(days=3)) == (
        case.priority,
        case.sla_due - case.opened_at,
    )


@pytest.fixture
def madrid_crm(backend_url: str) -> Iterator[tuple[crmkit.CRM, FixedClock]]:
    """A CRM on each backend whose business clock is Madrid's, on Saturday 28 March 2026."""
    clock = FixedClock(datetime(2026, 3, 28, 9, 0, tzinfo=MADRID))
    with crmkit.open(backend_url, clock=clock, timezone="Europe/Madrid") as crm:
        yield crm, clock


def test_a_one_day_sla_across_the_spring_change_is_due_at_the_same_wall_time(
    madrid_crm: tuple[crmkit.CRM, FixedClock],
) -> None:
    """Opened Saturday 09:00 in Madrid with a 1-day SLA: due Sunday 09:00, 23 hours later."""
    crm, clock = madrid_crm
    org = crm.organizations.create(name="Talleres Ruiz S.L.")
    case = _open(crm, org, priority="high")  # a high-priority claim has a 1-day target
    stored = crm.cases.get(case.id)
    assert clock.current == stored.opened_at
    assert datetime(2026, 3, 29, 9, 0, tzinfo=MADRID) == stored.sla_due
    assert (9, 0) == (stored.sla_due.astimezone(MADRID).hour, stored.sla_due.minute)
    assert timedelta(hours=23) == stored.sla_due - stored.opened_at


def test_hours_of_sla_are_elapsed_hours_across_the_spring_change(
    madrid_crm: tuple[crmkit.CRM, FixedClock],
) -> None:
    """An urgent claim (4 hours) opened at 00:30 on the change night is due 05:30, 4 hours on."""
    crm, clock = madrid_crm
    clock.current = datetime(2026, 3, 29, 0, 30, tzinfo=MADRID)
    org = crm.organizations.create(name="Talleres Ruiz S.L.")
    case = _open(crm, org, priority="urgent")
    assert datetime(2026, 3, 29, 5, 30, tzinfo=MADRID) == crm.cases.get(case.id).sla_due


def test_a_case_opened_for_a_contact_takes_the_contacts_organization(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """Given only a contact, organization_id is the contact's organization."""
    ana = any_crm.contacts.create(first_name="Ana", last_name="Gil", organization=acme)
    case = any_crm.cases.open(subject="Factura duplicada", case_type="claim", contact=ana)
    assert (acme.id, ana.id) == (case.organization_id, case.contact_id)


def test_a_case_keeps_its_references(any_crm: crmkit.CRM, acme: crmkit.Organization) -> None:
    """Opportunity and owner are stored by id; tags and external_ref as given."""
    opp = any_crm.opportunities.create(name="ERP para Acme", organization=acme)
    eva = any_crm.users.create(name="Eva Soler")
    case = _open(
        any_crm, acme, opportunity=opp, owner=eva.id, tags=["garantia"], external_ref="EXP-7"
    )
    stored = any_crm.cases.get_by_external_ref("EXP-7")
    assert (opp.id, eva.id, ("garantia",)) == (stored.opportunity_id, stored.owner_id, stored.tags)
    assert case == stored


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"case_type": "warranty"}, "case_type", "reference"),
        ({"case_type": 7}, "case_type", "type"),
        ({"priority": "critical"}, "priority", "choice"),
        ({"subject": ""}, "subject", "required"),
        ({"organization": None}, "organization", "required"),
        ({"owner": UserId(uuid7())}, "owner", "reference"),
    ],
)
def test_invalid_input_names_the_field_and_writes_nothing(
    any_crm: crmkit.CRM,
    acme: crmkit.Organization,
    values: dict[str, Any],
    field: str,
    code: str,
) -> None:
    """An unknown type or priority, no subject, no customer, a missing owner: nothing written."""
    before = _counts(any_crm)
    with pytest.raises(ValidationError) as info:
        any_crm.cases.open(**{"subject": "x", "case_type": "claim", "organization": acme, **values})
    assert (field, code) == (info.value.field, info.value.code)
    assert before == _counts(any_crm)
    assert 0 == before["cases"]


# ===================================================================== flow


def test_a_case_moves_through_the_flow_with_one_audited_update_per_move(
    any_crm: crmkit.CRM, acme: crmkit.Organization, clock: FixedClock
) -> None:
    """open -> in progress -> waiting -> in progress -> resolved -> closed, each move audited."""
    case = _open(any_crm, acme)
    case = any_crm.cases.start(case.id)
    case = any_crm.cases.wait(case.id, expected_version=case.version)
    case = any_crm.cases.start(case.id)
    resolved_at = clock.advance(hours=5)
    case = any_crm.cases.resolve(case.id, resolution="Repuesto enviado")
    closed_at = clock.advance(days=1)
    case = any_crm.cases.close(case.id)

    assert (CaseStatus.CLOSED, 6, resolved_at, closed_at, "Repuesto enviado") == (
        case.status,
        case.version,
        case.resolved_at,
        case.closed_at,
        case.resolution,
    )
    history = any_crm.history(case.id)
    assert ["create"] + ["update"] * 5 == [e.action.value for e in history]
    assert [1, 2, 3, 4, 5, 6] == [e.version for e in history]
    statuses = [next(c.new for c in e.changes if c.field == "status") for e in history[1:]]
    assert ["in_progress", "waiting", "in_progress", "resolved", "closed"] == statuses
    assert case == any_crm.cases.get(case.id)


@pytest.mark.parametrize(
    ("moves", "illegal"),
    [
        ((), "close"),
        ((), "reopen"),
        (("start",), "start"),
        (("resolve",), "wait"),
        (("resolve", "close"), "start"),
        (("resolve", "close"), "resolve"),
    ],
)
def test_an_illegal_move_raises_and_changes_nothing(
    any_crm: crmkit.CRM, acme: crmkit.Organization, moves: tuple[str, ...], illegal: str
) -> None:
    """Closing an open case, reopening it, starting twice, anything after closing but reopen."""
    case = _open(any_crm, acme)
    for name in moves:
        case = getattr(any_crm.cases, name)(case.id)
    with pytest.raises(InvalidTransition) as info:
        getattr(any_crm.cases, illegal)(case.id)
    assert ("case", case.status.value) == (info.value.entity, info.value.source)
    assert case == any_crm.cases.get(case.id)
    assert case.version == len(any_crm.history(case.id))


def test_a_stale_version_is_a_concurrency_error(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """A move with an old expected_version raises and leaves the case as it was."""
    case = _open(any_crm, acme)
    started = any_crm.cases.start(case.id, expected_version=case.version)
    with pytest.raises(ConcurrencyError):
        any_crm.cases.resolve(case.id, expected_version=case.version)
    assert started == any_crm.cases.get(case.id)


def test_moving_a_missing_case_is_not_found(any_crm: crmkit.CRM) -> None:
    """An id that names no case: NotFoundError."""
    with pytest.raises(NotFoundError):
        any_crm.cases.start(crmkit.CaseId(uuid7()))


def test_reopening_restarts_the_sla_from_now(
    any_crm: crmkit.CRM, acme: crmkit.Organization, clock: FixedClock
) -> None:
    """A closed incident reopened 10 days later is open again, due 2 days from the reopening."""
    case = _open(any_crm, acme, case_type="incident")
    case = any_crm.cases.resolve(case.id, resolution="Reiniciado")
    case = any_crm.cases.close(case.id)
    reopened_at = clock.advance(days=10)
    case = any_crm.cases.reopen(case.id, expected_version=case.version)
    assert (CaseStatus.OPEN, reopened_at, reopened_at + timedelta(days=2)) == (
        case.status,
        case.opened_at,
        case.sla_due,
    )
    assert (None, None, None) == (case.resolved_at, case.closed_at, case.resolution)
    assert case == any_crm.cases.get(case.id)


# ==================================================================== hooks


def test_case_opened_and_closed_fire_once_each_after_commit(
    backend_url: str, clock: FixedClock
) -> None:
    """Inside a transaction nothing is heard; after it, one opened and, later, one closed."""
    recorder = RecordingPlugin()
    with crmkit.open(backend_url, clock=clock, plugins=[recorder]) as crm:
        org = crm.organizations.create(name="Acme S.A.")
        with crm.transaction():
            case = _open(crm, org)
            assert [] == recorder.calls_to("crmkit_case_opened")
        assert [case] == [c.kwargs["case"] for c in recorder.calls_to("crmkit_case_opened")]
        assert crm is recorder.calls_to("crmkit_case_opened")[0].kwargs["crm"]

        case = crm.cases.resolve(case.id)
        assert [] == recorder.calls_to("crmkit_case_closed")
        closed = crm.cases.close(case.id)
        assert [closed] == [c.kwargs["case"] for c in recorder.calls_to("crmkit_case_closed")]
        assert 1 == len(recorder.calls_to("crmkit_case_opened"))


def test_reopening_fires_case_opened_again(backend_url: str, clock: FixedClock) -> None:
    """The reopened case is announced as opened, with its new SLA."""
    recorder = RecordingPlugin()
    with crmkit.open(backend_url, clock=clock, plugins=[recorder]) as crm:
        org = crm.organizations.create(name="Acme S.A.")
        case = crm.cases.resolve(_open(crm, org).id)
        reopened = crm.cases.reopen(case.id)
        opened = [c.kwargs["case"] for c in recorder.calls_to("crmkit_case_opened")]
        assert [CaseStatus.OPEN, CaseStatus.OPEN] == [c.status for c in opened]
        assert reopened == opened[1]


def test_no_case_hook_fires_when_the_transaction_rolls_back(
    backend_url: str, clock: FixedClock
) -> None:
    """Opened and closed inside a failed transaction: never heard, nothing kept."""
    recorder = RecordingPlugin()
    with crmkit.open(backend_url, clock=clock, plugins=[recorder]) as crm:
        org = crm.organizations.create(name="Acme S.A.")

        def work() -> None:
            with crm.transaction():
                case = _open(crm, org)
                crm.cases.close(crm.cases.resolve(case.id).id)
                raise Boom

        with pytest.raises(Boom):
            work()
        assert [] == recorder.calls_to("crmkit_case_opened")
        assert [] == recorder.calls_to("crmkit_case_closed")
        assert 0 == crm.cases.count(archived=None)


class WarrantyPlugin:
    """Registers a warranty case type (garantía) with its own SLA."""

    @hookimpl
    def crmkit_register_case_types(self, crm: crmkit.CRM) -> list[CaseType]:
        sla = {p: SlaTarget(days=15) for p in CasePriority} | {
            CasePriority.URGENT: SlaTarget(days=1, hours=12)
        }
        return [CaseType(key="warranty", name="Warranty", name_es="Garantía", sla=sla)]


def test_a_plugin_case_type_can_be_used(backend_url: str, clock: FixedClock) -> None:
    """A type registered through crmkit_register_case_types opens cases with its SLA."""
    with crmkit.open(backend_url, clock=clock, plugins=[WarrantyPlugin()]) as crm:
        org = crm.organizations.create(name="Acme S.A.")
        case = _open(crm, org, case_type="warranty", priority="urgent")
        assert "Garantía" == crm.cases.types.get("warranty").label("es")
        assert timedelta(days=1, hours=12) == case.sla_due - case.opened_at
        assert "warranty" == crm.cases.get(case.id).case_type


def test_a_type_registered_through_the_api_can_be_used(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """register_type adds a type; registering its key twice is a DuplicateError."""
    sla = {p: SlaTarget(hours=48) for p in CasePriority}
    returns = CaseType(key="return", name="Return", name_es="Devolución", sla=sla)
    assert returns is any_crm.cases.register_type(returns)
    case = _open(any_crm, acme, case_type="return")
    assert timedelta(hours=48) == case.sla_due - case.opened_at
    with pytest.raises(DuplicateError):
        any_crm.cases.register_type(returns)


# =================================================================== update


def test_changing_the_priority_recomputes_the_sla_from_the_opening(
    any_crm: crmkit.CRM, acme: crmkit.Organization, clock: FixedClock
) -> None:
    """A normal claim made urgent a day later is due 4 hours after it was opened."""
    case = _open(any_crm, acme)
    clock.advance(days=1)
    case = any_crm.cases.update(case.id, expected_version=case.version, priority="urgent")
    assert (CasePriority.URGENT, case.opened_at + timedelta(hours=4)) == (
        case.priority,
        case.sla_due,
    )
    changed = {c.field for c in any_crm.history(case.id)[-1].changes}
    assert {"priority", "sla_due"} == changed


def test_changing_the_type_recomputes_the_sla(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """A normal claim (3 days) that is really a service request is due in 5 days."""
    case = _open(any_crm, acme)
    case = any_crm.cases.update(case.id, expected_version=case.version, case_type="service_request")
    assert timedelta(days=5) == case.sla_due - case.opened_at


def test_changing_details_keeps_the_sla(any_crm: crmkit.CRM, acme: crmkit.Organization) -> None:
    """Subject, owner and tags change; sla_due does not."""
    eva = any_crm.users.create(name="Eva Soler")
    case = _open(any_crm, acme)
    updated = any_crm.cases.update(
        case.id, expected_version=case.version, subject="Caja dañada", owner=eva, tags=["envio"]
    )
    assert ("Caja dañada", eva.id, ("envio",), case.sla_due) == (
        updated.subject,
        updated.owner_id,
        updated.tags,
        updated.sla_due,
    )
    assert updated == any_crm.cases.get(case.id)


@pytest.mark.parametrize(
    ("values", "field"),
    [({"priority": "asap"}, "priority"), ({"case_type": "nope"}, "case_type")],
)
def test_an_invalid_update_changes_nothing(
    any_crm: crmkit.CRM, acme: crmkit.Organization, values: dict[str, Any], field: str
) -> None:
    """An unknown priority or type names the field; the case stays as it was."""
    case = _open(any_crm, acme)
    with pytest.raises(ValidationError) as info:
        any_crm.cases.update(case.id, expected_version=case.version, **values)
    assert field == info.value.field
    assert case == any_crm.cases.get(case.id)
    assert 1 == len(any_crm.history(case.id))


# ================================================================== overdue


def test_overdue_lists_unsettled_cases_past_their_sla_most_overdue_first(
    any_crm: crmkit.CRM, acme: crmkit.Organization, clock: FixedClock
) -> None:
    """Urgent (4 h) and high (1 d) claims are late after 2 days; normal (3 d) and resolved not."""
    high = _open(any_crm, acme, priority="high")
    urgent = _open(any_crm, acme, priority="urgent")
    _open(any_crm, acme, priority="normal")
    settled = any_crm.cases.resolve(_open(any_crm, acme, priority="urgent").id)
    waiting = any_crm.cases.wait(_open(any_crm, acme, case_type="incident", priority="urgent").id)
    clock.advance(days=2)

    overdue = any_crm.cases.overdue()

    assert [waiting.id, urgent.id, high.id] == [c.id for c in overdue]
    assert settled.id not in {c.id for c in overdue}
    assert [c.id for c in overdue] == [c.id for c in any_crm.agenda.overdue_cases()]


def test_a_case_is_not_overdue_at_its_due_time_only_after(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """overdue(now=sla_due) is empty; a microsecond later, and in another zone, it is not."""
    case = _open(any_crm, acme, priority="urgent")
    assert [] == any_crm.cases.overdue(now=case.sla_due)
    later = (case.sla_due + timedelta(microseconds=1)).astimezone(ZoneInfo("America/New_York"))
    assert [case.id] == [c.id for c in any_crm.cases.overdue(now=later)]


def test_overdue_can_be_limited_to_an_owner(
    any_crm: crmkit.CRM, acme: crmkit.Organization, clock: FixedClock
) -> None:
    """owner= keeps that user's cases; limit cuts the list."""
    eva = any_crm.users.create(name="Eva Soler")
    luis = any_crm.users.create(name="Luis Mora")
    first = _open(any_crm, acme, priority="urgent", owner=eva)
    clock.advance(minutes=1)
    _open(any_crm, acme, priority="urgent", owner=eva)
    _open(any_crm, acme, priority="urgent", owner=luis)
    clock.advance(days=1)
    assert 2 == len(any_crm.cases.overdue(owner=eva))
    assert [first.id] == [c.id for c in any_crm.cases.overdue(owner=eva.id, limit=1)]


def test_overdue_refuses_a_naive_now_and_a_bad_owner(any_crm: crmkit.CRM) -> None:
    """Both name their argument."""
    with pytest.raises(ValidationError) as naive:
        any_crm.cases.overdue(now=datetime(2026, 1, 9))
    with pytest.raises(ValidationError) as owner:
        any_crm.cases.overdue(owner="eva")  # type: ignore[arg-type]
    assert [("now", "naive_datetime"), ("owner", "type")] == [
        (naive.value.field, naive.value.code),
        (owner.value.field, owner.value.code),
    ]


# ===================================================================== bulk


def test_bulk_opening_sets_each_sla_and_announces_each_case(
    backend_url: str, clock: FixedClock
) -> None:
    """bulk_create takes open()'s arguments; every case has its SLA and one case_opened."""
    recorder = RecordingPlugin()
    with crmkit.open(backend_url, clock=clock, plugins=[recorder]) as crm:
        org = crm.organizations.create(name="Acme S.A.")
        cases = crm.cases.bulk_create(
            [
                {"subject": "Rotura", "case_type": "claim", "organization": org},
                {
                    "subject": "Caída",
                    "case_type": "incident",
                    "priority": "urgent",
                    "organization": org.id,
                },
            ],
            batch_size=1,
        )
        assert [timedelta(days=3), timedelta(hours=2)] == [c.sla_due - c.opened_at for c in cases]
        assert cases == [crm.cases.get(c.id) for c in cases]
        assert cases == [c.kwargs["case"] for c in recorder.calls_to("crmkit_case_opened")]


def test_an_invalid_bulk_item_writes_nothing(
    any_crm: crmkit.CRM, acme: crmkit.Organization
) -> None:
    """The second item's unknown type is reported with its index; no case is written."""
    with pytest.raises(ValidationError) as info:
        any_crm.cases.bulk_create(
            [
                {"subject": "Rotura", "case_type": "claim", "organization": acme},
                {"subject": "Caída", "case_type": "outage", "organization": acme},
            ]
        )
    assert ("[1].case_type", "reference") == (info.value.field, info.value.code)
    assert 0 == any_crm.cases.count(archived=None)


def test_case_times_are_stored_as_instants(any_crm: crmkit.CRM, acme: crmkit.Organization) -> None:
    """Read back, opened_at and sla_due are the same instants, in UTC."""
    case = _open(any_crm, acme)
    stored = any_crm.cases.get(case.id)
    zero = timedelta(0)
    assert (zero, zero) == (stored.opened_at.utcoffset(), stored.sla_due.utcoffset())
    assert (case.opened_at, case.sla_due) == (stored.opened_at, stored.sla_due)


def test_a_bulk_opening_that_fails_in_a_later_batch_keeps_no_case(
    backend_url: str, clock: FixedClock
) -> None:
    """A duplicate external_ref in the second batch undoes the first; nothing is announced."""
    recorder = RecordingPlugin()
    with crmkit.open(backend_url, clock=clock, plugins=[recorder]) as crm:
        org = crm.organizations.create(name="Acme S.A.")
        item = {"subject": "Rotura", "case_type": "claim", "organization": org}
        with pytest.raises(DuplicateError):
            crm.cases.bulk_create(
                [{**item, "external_ref": "EXP-1"}, {**item, "external_ref": "EXP-1"}],
                batch_size=1,
            )
        assert 0 == crm.cases.count(archived=None)
        assert [] == recorder.calls_to("crmkit_case_opened")
