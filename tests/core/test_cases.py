"""Post-sale cases in the core: the status flow, reopening, SLA due times across DST."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crmkit.core import changes
from crmkit.core.cases import (
    BUILTIN_CASE_TYPES,
    CASE_FLOW,
    SETTLED,
    Case,
    CasePriority,
    CaseStatus,
    CaseType,
    SlaTarget,
    is_overdue,
    move,
    reopen,
    sla_due,
)
from crmkit.core.errors import InvalidTransition, ValidationError
from crmkit.core.ids import CaseId, OrganizationId, uuid7

T0: Final = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MADRID: Final = ZoneInfo("Europe/Madrid")
NEW_YORK: Final = ZoneInfo("America/New_York")
LORD_HOWE: Final = ZoneInfo("Australia/Lord_Howe")  # DST moves the clock by 30 minutes
ZONES: Final[tuple[tzinfo, ...]] = (UTC, MADRID, NEW_YORK, LORD_HOWE)

S = CaseStatus
#: The flow written out by hand, so that a change to CASE_FLOW fails a test.
LEGAL_MOVES: Final = {
    (S.OPEN, S.IN_PROGRESS),
    (S.OPEN, S.WAITING),
    (S.OPEN, S.RESOLVED),
    (S.IN_PROGRESS, S.WAITING),
    (S.IN_PROGRESS, S.RESOLVED),
    (S.WAITING, S.IN_PROGRESS),
    (S.WAITING, S.RESOLVED),
    (S.RESOLVED, S.CLOSED),
}


def _case(**values: Any) -> Case:
    fields: dict[str, Any] = {
        "subject": "Pedido incompleto",
        "case_type": "claim",
        "organization_id": OrganizationId(uuid7()),
        "opened_at": T0,
        "sla_due": T0 + timedelta(days=3),
        **values,
    }
    case, _ = changes.create(Case, id=CaseId(uuid7()), now=T0, **fields)
    return case


# ==================================================================== the flow


@pytest.mark.parametrize(
    ("source", "target"),
    list(itertools.product(CaseStatus, CaseStatus)),
    ids=lambda s: s.value,
)
def test_every_move_of_the_flow_is_allowed_or_refused_as_the_table_says(
    source: CaseStatus, target: CaseStatus
) -> None:
    """Legal moves change the status and bump the version; the others raise, naming both."""
    case = _case(status=source)
    later = T0 + timedelta(hours=1)
    if (source, target) in LEGAL_MOVES:
        moved, event = move(case, target, now=later)
        assert (target, 2, later) == (moved.status, moved.version, moved.updated_at)
        assert moved is event.entity
    else:
        with pytest.raises(InvalidTransition) as info:
            move(case, target, now=later)
        assert ("case", source.value, target.value) == (
            info.value.entity,
            info.value.source,
            info.value.target,
        )


def test_the_flow_table_is_the_one_documented() -> None:
    """CASE_FLOW holds exactly the legal moves; closed is final; settled is resolved and closed."""
    table = {(source, target) for source, targets in CASE_FLOW.items() for target in targets}
    assert LEGAL_MOVES == table
    assert frozenset() == CASE_FLOW[S.CLOSED]
    assert frozenset({S.RESOLVED, S.CLOSED}) == SETTLED


def test_every_status_is_reachable_from_open() -> None:
    """Walking the flow from open reaches every status."""
    seen, frontier = {S.OPEN}, [S.OPEN]
    while frontier:
        for target in CASE_FLOW[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert set(CaseStatus) == seen


def test_resolving_stamps_the_time_and_keeps_the_resolution() -> None:
    """resolved_at is the move's time; the resolution is stored; the event lists the changes."""
    at = T0 + timedelta(hours=5)
    resolved, event = move(_case(), S.RESOLVED, now=at, resolution="Repuesto enviado")
    assert (at, "Repuesto enviado", None) == (
        resolved.resolved_at,
        resolved.resolution,
        resolved.closed_at,
    )
    assert {"status", "resolved_at", "resolution"} == {c.field for c in event.changes}


def test_closing_stamps_the_close_time_and_keeps_the_resolution_time() -> None:
    """Closing a resolved case sets closed_at and leaves resolved_at as it was."""
    resolved, _ = move(_case(), S.RESOLVED, now=T0 + timedelta(hours=1))
    closed, _ = move(resolved, S.CLOSED, now=T0 + timedelta(days=2))
    assert (T0 + timedelta(hours=1), T0 + timedelta(days=2)) == (
        closed.resolved_at,
        closed.closed_at,
    )


def test_a_resolution_given_on_another_move_is_ignored() -> None:
    """Only resolving records a resolution."""
    started, _ = move(_case(), S.IN_PROGRESS, now=T0, resolution="too early")
    assert None is started.resolution


@pytest.mark.parametrize("settled", [S.RESOLVED, S.CLOSED])
def test_reopening_restarts_the_sla_and_clears_the_settlement(settled: CaseStatus) -> None:
    """opened_at becomes now, sla_due counts from it, resolved/closed/resolution are cleared."""
    case = _case(
        status=settled,
        resolved_at=T0 + timedelta(hours=2),
        closed_at=T0 + timedelta(hours=3) if settled is S.CLOSED else None,
        resolution="Sustituido",
    )
    now = datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # Saturday 09:00 in Madrid
    reopened, event = reopen(case, now=now, sla=SlaTarget(days=1), tz=MADRID)
    assert (S.OPEN, now, datetime(2026, 3, 29, 7, 0, tzinfo=UTC)) == (
        reopened.status,
        reopened.opened_at,
        reopened.sla_due,
    )
    assert (None, None, None) == (reopened.resolved_at, reopened.closed_at, reopened.resolution)
    assert case.version + 1 == reopened.version
    assert "status" in {c.field for c in event.changes}


@pytest.mark.parametrize("status", [S.OPEN, S.IN_PROGRESS, S.WAITING])
def test_an_unsettled_case_cannot_be_reopened(status: CaseStatus) -> None:
    """Reopening needs a resolved or closed case."""
    with pytest.raises(InvalidTransition) as info:
        reopen(_case(status=status), now=T0, sla=SlaTarget(days=1))
    assert (status.value, "open") == (info.value.source, info.value.target)


def test_a_case_needs_an_organization_or_a_contact() -> None:
    """Neither given: ValidationError on organization."""
    with pytest.raises(ValidationError) as info:
        _case(organization_id=None)
    assert ("organization", "required") == (info.value.field, info.value.code)


# =================================================================== types


def test_the_builtin_types_have_a_target_for_every_priority() -> None:
    """Claim, incident and service request, each with four SLA targets, in Spanish too."""
    assert ["claim", "incident", "service_request"] == [t.key for t in BUILTIN_CASE_TYPES]
    assert ["Reclamación", "Incidencia", "Solicitud de servicio"] == [
        t.label("es") for t in BUILTIN_CASE_TYPES
    ]
    for case_type in BUILTIN_CASE_TYPES:
        assert set(CasePriority) == set(case_type.sla)


def test_a_type_without_a_target_for_some_priority_is_refused() -> None:
    """Every priority needs an SLA target."""
    with pytest.raises(ValidationError) as info:
        CaseType(key="warranty", name="Warranty", sla={"urgent": SlaTarget(hours=4)})
    assert "sla" == info.value.field


def test_a_type_with_an_unknown_priority_is_refused() -> None:
    """Priorities are the CasePriority values."""
    sla = {p: SlaTarget(days=1) for p in CasePriority} | {"critical": SlaTarget(hours=1)}
    with pytest.raises(ValidationError) as info:
        CaseType(key="warranty", name="Warranty", sla=sla)
    assert ("sla", "choice", "critical") == (info.value.field, info.value.code, info.value.value)


@pytest.mark.parametrize(("days", "hours"), [(-1, 0), (0, -2), (True, 0), (1.5, 0)])
def test_an_sla_target_takes_whole_non_negative_numbers(days: Any, hours: Any) -> None:
    """Negative, boolean or fractional days and hours are refused."""
    with pytest.raises(ValidationError) as info:
        SlaTarget(days=days, hours=hours)
    assert info.value.field in {"days", "hours"}


# ============================================================= SLA, examples


@pytest.mark.parametrize(
    ("opened", "target", "due", "elapsed"),
    [
        pytest.param(  # Saturday 09:00 before the spring change: Sunday 09:00, 23 hours
            datetime(2026, 3, 28, 9, 0, tzinfo=MADRID),
            SlaTarget(days=1),
            datetime(2026, 3, 29, 9, 0, tzinfo=MADRID),
            timedelta(hours=23),
            id="madrid-spring",
        ),
        pytest.param(  # Saturday 09:00 before the autumn change: Sunday 09:00, 25 hours
            datetime(2026, 10, 24, 9, 0, tzinfo=MADRID),
            SlaTarget(days=1),
            datetime(2026, 10, 25, 9, 0, tzinfo=MADRID),
            timedelta(hours=25),
            id="madrid-autumn",
        ),
        pytest.param(  # hours are elapsed time: 4 hours over the change are 4 hours
            datetime(2026, 3, 29, 0, 30, tzinfo=MADRID),
            SlaTarget(hours=4),
            datetime(2026, 3, 29, 5, 30, tzinfo=MADRID),
            timedelta(hours=4),
            id="madrid-hours",
        ),
        pytest.param(  # 2 days and 8 hours in New York across the March change
            datetime(2026, 3, 7, 10, 0, tzinfo=NEW_YORK),
            SlaTarget(days=2, hours=8),
            datetime(2026, 3, 9, 18, 0, tzinfo=NEW_YORK),
            timedelta(days=2, hours=7),
            id="new-york",
        ),
        pytest.param(  # Lord Howe moves its clock by half an hour
            datetime(2026, 4, 4, 12, 0, tzinfo=LORD_HOWE),
            SlaTarget(days=1),
            datetime(2026, 4, 5, 12, 0, tzinfo=LORD_HOWE),
            timedelta(hours=24, minutes=30),
            id="lord-howe",
        ),
        pytest.param(  # the due wall time 02:30 does not exist: read before the gap
            datetime(2026, 3, 28, 2, 30, tzinfo=MADRID),
            SlaTarget(days=1),
            datetime(2026, 3, 29, 3, 30, tzinfo=MADRID),
            timedelta(hours=24),
            id="madrid-gap",
        ),
        pytest.param(  # the due wall time 02:30 happens twice: the first one
            datetime(2026, 10, 24, 2, 30, tzinfo=MADRID),
            SlaTarget(days=1),
            datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=MADRID),
            timedelta(hours=24),
            id="madrid-fold",
        ),
        pytest.param(  # opened in the repeated hour, hours only: exactly 4 hours later
            datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=MADRID),
            SlaTarget(hours=4),
            datetime(2026, 10, 25, 6, 30, tzinfo=MADRID),
            timedelta(hours=4),
            id="madrid-opened-in-fold",
        ),
    ],
)
def test_sla_days_follow_the_wall_clock_and_hours_elapse(
    opened: datetime, target: SlaTarget, due: datetime, elapsed: timedelta
) -> None:
    """Worked examples of the days-vs-hours rule around DST changes."""
    tz = opened.tzinfo
    assert tz is not None
    actual = sla_due(opened, target, tz)
    assert UTC is actual.tzinfo
    assert (due.astimezone(UTC), elapsed) == (actual, actual - opened)


def test_sla_due_refuses_a_naive_opening_time() -> None:
    """A naive opened_at: ValidationError naive_datetime."""
    with pytest.raises(ValidationError) as info:
        sla_due(datetime(2026, 1, 5, 9, 0), SlaTarget(days=1))
    assert ("opened_at", "naive_datetime") == (info.value.field, info.value.code)


def test_an_sla_beyond_the_calendar_is_a_validation_error() -> None:
    """A due time after year 9999: ValidationError out_of_range, not OverflowError."""
    with pytest.raises(ValidationError) as info:
        sla_due(datetime(9999, 12, 30, tzinfo=UTC), SlaTarget(days=5), MADRID)
    assert ("sla_due", "out_of_range") == (info.value.field, info.value.code)


def test_is_overdue_refuses_a_naive_now() -> None:
    """A naive now cannot be compared with an instant."""
    with pytest.raises(ValidationError) as info:
        is_overdue(_case(), datetime(2026, 1, 9))
    assert ("now", "naive_datetime") == (info.value.field, info.value.code)


def test_is_overdue_compares_instants_inside_a_repeated_hour() -> None:
    """Due 02:30 (first), now 02:30 (second) in the same zone: an hour late, so overdue."""
    due = datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=MADRID)
    now = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=MADRID)
    assert (False, True) == (
        is_overdue(_case(sla_due=now), due),
        is_overdue(_case(sla_due=due), now),
    )


# =========================================================== SLA, properties


def _transitions(zone: tzinfo, year: int) -> list[tuple[datetime, tzinfo]]:
    """The UTC hours at which ``zone`` changes its offset during ``year``, with the zone."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    hours = (start + timedelta(hours=h) for h in range(366 * 24))
    found: list[tuple[datetime, tzinfo]] = []
    previous = start.astimezone(zone).utcoffset()
    for at in hours:
        offset = at.astimezone(zone).utcoffset()
        if offset != previous:
            found.append((at, zone))
        previous = offset
    return found


TRANSITIONS: Final = tuple(
    at for zone in ZONES for year in (2025, 2026) for at in _transitions(zone, year)
)


def test_the_zones_under_test_do_change_their_clocks() -> None:
    """Madrid, New York and Lord Howe each change twice a year (the properties need it)."""
    assert 2 * 2 * 3 == len(TRANSITIONS)


zones = st.sampled_from(ZONES)
#: Distances from a DST change: within its hour or two (folds, gaps) or days.
shifts = st.one_of(
    st.timedeltas(min_value=timedelta(hours=-2), max_value=timedelta(hours=2)),
    st.timedeltas(min_value=timedelta(days=-4), max_value=timedelta(days=4)),
)
anywhere = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
#: (instant, business zone): near one of the zone's DST changes, or any instant and zone.
openings = st.one_of(
    st.builds(
        lambda change, shift: (change[0] + shift, change[1]), st.sampled_from(TRANSITIONS), shifts
    ),
    st.tuples(anywhere, zones),
)
#: Instants near any DST change, or anywhere in 1990-2100.
instants = st.one_of(
    st.builds(lambda change, shift: change[0] + shift, st.sampled_from(TRANSITIONS), shifts),
    anywhere,
)
targets = st.builds(
    SlaTarget,
    days=st.one_of(st.just(0), st.integers(min_value=0, max_value=30)),
    hours=st.integers(min_value=0, max_value=72),
)


def _wall(at: datetime, tz: tzinfo) -> datetime:
    return at.astimezone(tz).replace(tzinfo=None)


def _unambiguous(wall: datetime, tz: tzinfo) -> bool:
    """The wall time exists once: both folds give the same offset (none in a gap or overlap)."""
    return (
        wall.replace(tzinfo=tz, fold=0).utcoffset() == wall.replace(tzinfo=tz, fold=1).utcoffset()
    )


@given(openings, targets, zones)
@example((datetime(2026, 3, 28, 8, 0, tzinfo=UTC), MADRID), SlaTarget(days=1), MADRID)
def test_sla_days_keep_the_wall_clock(
    opening: tuple[datetime, tzinfo], target: SlaTarget, shown_in: tzinfo
) -> None:
    """Minus its hours, the due time shows the opening's wall time ``days`` later (when unique)."""
    opened, tz = opening[0].astimezone(shown_in), opening[1]
    due = sla_due(opened, target, tz)
    wall = _wall(opened, tz) + timedelta(days=target.days)
    if _unambiguous(wall, tz):
        assert wall == _wall(due - timedelta(hours=target.hours), tz)


@given(openings, targets, zones)
@example((datetime(2026, 10, 25, 1, 30, tzinfo=UTC), MADRID), SlaTarget(hours=4), MADRID)
def test_sla_elapsed_time_is_days_and_hours_give_or_take_the_offset_change(
    opening: tuple[datetime, tzinfo], target: SlaTarget, shown_in: tzinfo
) -> None:
    """Elapsed = days + hours - (offset at the due wall time - offset at opening), exactly."""
    opened, tz = opening[0].astimezone(shown_in), opening[1]
    due = sla_due(opened, target, tz)
    nominal = timedelta(days=target.days, hours=target.hours)
    if target.days == 0:
        assert nominal == due - opened
        return
    opened_offset = opened.astimezone(tz).utcoffset()
    due_offset = (_wall(opened, tz) + timedelta(days=target.days)).replace(tzinfo=tz).utcoffset()
    assert opened_offset is not None
    assert due_offset is not None
    assert nominal - (due_offset - opened_offset) == due - opened
    assert abs(due - opened - nominal) <= timedelta(hours=1)  # these zones shift by 1 h at most


@given(openings, targets, st.timezones(), st.timezones())
def test_sla_due_depends_on_the_instant_not_on_how_it_is_written(
    opening: tuple[datetime, tzinfo], target: SlaTarget, first: tzinfo, second: tzinfo
) -> None:
    """The same instant written in any two zones gives the same due time, in UTC."""
    opened, tz = opening
    one = sla_due(opened.astimezone(first), target, tz)
    other = sla_due(opened.astimezone(second), target, tz)
    assert (UTC, UTC) == (one.tzinfo, other.tzinfo)
    assert one == other


@given(
    instants,
    st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)),
    zones,
    st.timezones(),
    st.booleans(),
)
@example(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), timedelta(hours=1), MADRID, MADRID, True)
def test_a_case_is_overdue_exactly_once_now_passes_its_due_time(
    due: datetime, delta: timedelta, now_zone: tzinfo, due_zone: tzinfo, same_zone: bool
) -> None:
    """Overdue iff now is after sla_due as instants, whatever zones both are written in."""
    written_due = due.astimezone(now_zone if same_zone else due_zone)
    case = _case(sla_due=written_due)
    now = (due + delta).astimezone(now_zone)
    assert (delta > timedelta(0)) == is_overdue(case, now)


@given(instants)
def test_a_case_is_not_overdue_at_its_due_instant(due: datetime) -> None:
    """At sla_due exactly, not yet; a microsecond later, overdue."""
    case = _case(sla_due=due)
    assert (False, True) == (
        is_overdue(case, due),
        is_overdue(case, due + timedelta(microseconds=1)),
    )


@given(
    st.sampled_from(sorted(SETTLED, key=lambda s: s.value)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)),
)
def test_a_settled_case_is_never_overdue(status: CaseStatus, late: timedelta) -> None:
    """Resolved and closed cases are not overdue however late it is."""
    case = _case(status=status, resolved_at=T0)
    assert False is is_overdue(case, case.sla_due + late)
