"""The agenda (panel de control): overdue, today, upcoming and overdue cases.

The first part runs on every store.  The second proves the agenda scales: a
SQLite file where one user has 100,000 interactions (and another user more)
answers each list and each count with exactly one SQL statement that searches
an index, counted on the DBAPI connections themselves; PostgreSQL is checked
the same way on a smaller book.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import psycopg
import pytest
import sqlalchemy as sa

import crmkit
from crmkit import CRM, Interaction, InteractionStatus, ValidationError
from crmkit.core import changes
from crmkit.core.cases import Case, CaseStatus
from crmkit.core.ids import OrganizationId, UserId, uuid7
from tests.conftest import FixedClock

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # the fixed clock's start: Monday 09:00 UTC
TOMORROW = datetime(2026, 1, 6, 0, 0, tzinfo=UTC)
WEEK_END = datetime(2026, 1, 13, 0, 0, tzinfo=UTC)  # the default upcoming list ends here
MADRID = ZoneInfo("Europe/Madrid")


@pytest.fixture
def acme(any_crm: CRM) -> crmkit.Organization:
    return any_crm.organizations.create(name="Acme S.A.")


@pytest.fixture
def luis(any_crm: CRM) -> crmkit.User:
    return any_crm.users.create(name="Luis")


@pytest.fixture
def marta(any_crm: CRM) -> crmkit.User:
    return any_crm.users.create(name="Marta")


def _plan(
    crm: CRM, org: crmkit.Organization, at: datetime, who: crmkit.User | None, **values: Any
) -> Interaction:
    return crm.interactions.plan(
        kind="call", organization=org, scheduled_at=at, assignee=who, **values
    )


def _ids(items: list[Interaction] | list[Case]) -> list[Any]:
    return [i.id for i in items]


# ================================================================ every store


def test_overdue_today_and_upcoming_split_planned_work_around_now(
    any_crm: CRM, acme: crmkit.Organization, luis: crmkit.User
) -> None:
    """Before now: overdue; now to midnight: today; the next 7 days: upcoming; nothing twice."""
    at = [
        T0 - timedelta(days=2),  # overdue
        T0 - timedelta(seconds=1),  # overdue, by a second
        T0,  # today: "now" itself is not overdue
        TOMORROW - timedelta(microseconds=1),  # today, the last instant
        TOMORROW,  # upcoming, the first instant
        WEEK_END - timedelta(microseconds=1),  # upcoming, the seventh day's end
        WEEK_END,  # beyond the default horizon
    ]
    planned = [_plan(any_crm, acme, t, luis) for t in reversed(at)]  # created out of order
    planned.reverse()
    done = any_crm.interactions.log(kind="call", organization=acme, assignee=luis)
    cancelled = _plan(any_crm, acme, T0 - timedelta(hours=1), luis)
    any_crm.interactions.cancel(cancelled.id)
    archived = _plan(any_crm, acme, T0 - timedelta(hours=2), luis)
    any_crm.interactions.archive(archived.id, expected_version=1)

    agenda = any_crm.agenda.view(user=luis)

    assert (T0, _ids(planned[0:2]), _ids(planned[2:4]), _ids(planned[4:6])) == (
        agenda.now,
        _ids(agenda.overdue),
        _ids(agenda.today),
        _ids(agenda.upcoming),
    )
    assert done.id not in _ids(agenda.overdue + agenda.today + agenda.upcoming)
    assert (2, 2, 2, 0) == attrs.astuple(agenda.counts)


def test_days_sets_how_far_upcoming_looks(
    any_crm: CRM, acme: crmkit.Organization, luis: crmkit.User
) -> None:
    """days=0: nothing; days=1: tomorrow only; days=None: all of the future."""
    tomorrow = _plan(any_crm, acme, TOMORROW + timedelta(hours=10), luis)
    next_day = _plan(any_crm, acme, TOMORROW + timedelta(days=1, hours=10), luis)
    next_year = _plan(any_crm, acme, T0 + timedelta(days=365), luis)

    assert [] == any_crm.agenda.upcoming(user=luis, days=0)
    assert [tomorrow.id] == _ids(any_crm.agenda.upcoming(user=luis, days=1))
    assert [tomorrow.id, next_day.id] == _ids(any_crm.agenda.upcoming(user=luis))
    assert [tomorrow.id, next_day.id, next_year.id] == _ids(
        any_crm.agenda.upcoming(user=luis, days=None)
    )
    assert 3 == any_crm.agenda.count("upcoming", user=luis, days=None)


def test_an_agenda_is_for_a_user_a_team_or_everyone(
    any_crm: CRM, acme: crmkit.Organization, luis: crmkit.User, marta: crmkit.User
) -> None:
    """user: theirs; team: any member's; neither: everyone's, unassigned included."""
    pablo = any_crm.users.create(name="Pablo")
    his = _plan(any_crm, acme, T0 - timedelta(hours=3), luis)
    hers = _plan(any_crm, acme, T0 - timedelta(hours=2), marta)
    pablos = _plan(any_crm, acme, T0 - timedelta(hours=1), pablo)
    nobodys = _plan(any_crm, acme, T0 - timedelta(minutes=30), None)

    assert [his.id] == _ids(any_crm.agenda.overdue(user=luis))
    assert [his.id] == _ids(any_crm.agenda.overdue(user=luis.id))
    assert [his.id, hers.id] == _ids(any_crm.agenda.overdue(team=[luis, marta.id]))
    assert [his.id, hers.id, pablos.id, nobodys.id] == _ids(any_crm.agenda.overdue())
    assert [] == any_crm.agenda.overdue(team=[])
    assert (1, 2, 4) == (
        any_crm.agenda.count("overdue", user=luis),
        any_crm.agenda.count("overdue", team=[luis, marta]),
        any_crm.agenda.count("overdue"),
    )


def test_completing_rescheduling_cancelling_and_reassigning_move_agenda_items(
    any_crm: CRM, acme: crmkit.Organization, luis: crmkit.User, marta: crmkit.User
) -> None:
    """Done and cancelled leave the agenda; a new time or a new assignee moves the item."""
    to_do, to_move, to_drop, to_give = (
        _plan(any_crm, acme, T0 - timedelta(hours=h), luis) for h in (4, 3, 2, 1)
    )

    any_crm.interactions.complete(to_do.id)
    any_crm.interactions.reschedule(to_move.id, to=TOMORROW + timedelta(hours=9))
    any_crm.interactions.cancel(to_drop.id)
    any_crm.interactions.reassign([to_give.id], to=marta)

    assert ([], [to_move.id], [to_give.id]) == (
        any_crm.agenda.overdue(user=luis),
        _ids(any_crm.agenda.upcoming(user=luis)),
        _ids(any_crm.agenda.overdue(user=marta)),
    )


def test_today_ends_at_local_midnight_in_the_crm_time_zone(
    backend_url: str, clock: FixedClock
) -> None:
    """Madrid (UTC+1 in January): 22:30 UTC is today, 23:30 UTC is already tomorrow."""
    with crmkit.open(backend_url, clock=clock, timezone="Europe/Madrid") as crm:
        org = crm.organizations.create(name="Acme S.A.")
        late = _plan(crm, org, datetime(2026, 1, 5, 22, 30, tzinfo=UTC), None)
        after_midnight = _plan(crm, org, datetime(2026, 1, 5, 23, 30, tzinfo=UTC), None)
        last_day = _plan(crm, org, datetime(2026, 1, 12, 22, 59, tzinfo=UTC), None)
        beyond = _plan(crm, org, datetime(2026, 1, 12, 23, 0, tzinfo=UTC), None)

        agenda = crm.agenda.view()

        assert ([late.id], [after_midnight.id, last_day.id]) == (
            _ids(agenda.today),
            _ids(agenda.upcoming),
        )
        assert [beyond.id] == _ids(crm.agenda.upcoming(days=8))[-1:]


def test_upcoming_days_are_calendar_days_across_summer_time(backend_url: str) -> None:
    """Saturday before the spring change: days=1 is all of Sunday, a 23-hour day."""
    saturday_noon = datetime(2026, 3, 28, 12, 0, tzinfo=MADRID)
    with crmkit.open(backend_url, clock=lambda: saturday_noon, timezone="Europe/Madrid") as crm:
        org = crm.organizations.create(name="Acme S.A.")
        sunday_night = _plan(crm, org, datetime(2026, 3, 29, 23, 30, tzinfo=MADRID), None)
        _plan(crm, org, datetime(2026, 3, 30, 0, 30, tzinfo=MADRID), None)  # Monday
        saturday_night = _plan(crm, org, datetime(2026, 3, 28, 23, 59, tzinfo=MADRID), None)

        assert ([saturday_night.id], [sunday_night.id]) == (
            _ids(crm.agenda.today()),
            _ids(crm.agenda.upcoming(days=1)),
        )


def test_counts_equal_list_lengths_and_limits_cut_lists_not_counts(
    any_crm: CRM, acme: crmkit.Organization, luis: crmkit.User
) -> None:
    """Under the limit counts are the lengths; limit=2 shows the first two of each."""
    overdue = [_plan(any_crm, acme, T0 - timedelta(hours=h), luis) for h in (5, 4, 3)]
    today = [_plan(any_crm, acme, T0 + timedelta(hours=h), luis) for h in (1, 2, 3, 4)]
    upcoming = [_plan(any_crm, acme, TOMORROW + timedelta(days=d), luis) for d in range(5)]

    full = any_crm.agenda.view(user=luis)
    cut = any_crm.agenda.view(user=luis, limit=2)

    lengths = (len(full.overdue), len(full.today), len(full.upcoming), len(full.overdue_cases))
    assert (3, 4, 5, 0) == lengths == attrs.astuple(full.counts)
    assert (_ids(overdue[:2]), _ids(today[:2]), _ids(upcoming[:2])) == (
        _ids(cut.overdue),
        _ids(cut.today),
        _ids(cut.upcoming),
    )
    assert full.counts == cut.counts
    assert _ids(today[:3]) == _ids(any_crm.agenda.today(user=luis, limit=3))
    assert _ids(today) == _ids(any_crm.agenda.today(user=luis, limit=None))


def test_overdue_cases_are_open_cases_past_their_sla(
    any_crm: CRM,
    clock: FixedClock,
    acme: crmkit.Organization,
    luis: crmkit.User,
    marta: crmkit.User,
) -> None:
    """Unsettled and due before now, most overdue first; resolved or not yet due: not listed."""
    urgent = any_crm.cases.open(  # due T0 + 2 h
        subject="Line down", case_type="incident", priority="urgent", organization=acme, owner=luis
    )
    clock.advance(hours=1)
    hers = any_crm.cases.open(  # due T0 + 3 h
        subject="Wrong invoice",
        case_type="incident",
        priority="urgent",
        organization=acme,
        owner=marta,
    )
    resolved = any_crm.cases.open(  # due T0 + 3 h, but resolved
        subject="Typo", case_type="incident", priority="urgent", organization=acme, owner=luis
    )
    any_crm.cases.resolve(resolved.id, resolution="Fixed")
    any_crm.cases.open(  # due in 3 days
        subject="Slow screen", case_type="claim", organization=acme, owner=luis
    )
    later = T0 + timedelta(hours=5)

    assert [urgent.id] == _ids(any_crm.agenda.overdue_cases(user=luis, now=later))
    assert [urgent.id, hers.id] == _ids(any_crm.agenda.overdue_cases(team=[luis, marta], now=later))
    assert [urgent.id, hers.id] == _ids(any_crm.agenda.overdue_cases(now=later))
    assert [] == any_crm.agenda.overdue_cases(now=T0 + timedelta(hours=2))  # due is not overdue
    assert (1, 2) == (
        any_crm.agenda.view(user=luis, now=later).counts.overdue_cases,
        any_crm.agenda.count("overdue_cases", now=later),
    )


@pytest.mark.parametrize(
    ("call", "field", "code"),
    [
        (lambda c, u: c.agenda.view(user=u, team=[u]), "team", "conflict"),
        (lambda c, u: c.agenda.overdue(now=datetime(2026, 1, 5, 9)), "now", "naive_datetime"),
        (lambda c, u: c.agenda.today(now="2026-01-05"), "now", "type"),
        (lambda c, u: c.agenda.upcoming(days=-1), "days", "range"),
        (lambda c, u: c.agenda.upcoming(days=7.0), "days", "type"),
        (lambda c, u: c.agenda.view(days=True), "days", "type"),
        (lambda c, u: c.agenda.count("later"), "which", "choice"),
        (lambda c, u: c.agenda.overdue(team=u), "team", "type"),
        (lambda c, u: c.agenda.overdue(user="luis"), "user", "type"),
        (lambda c, u: c.agenda.overdue(team=[u, "marta"]), "team[1]", "type"),
        (lambda c, u: c.agenda.today(limit=-1), "limit", "invalid"),
    ],
    ids=[
        "user-and-team",
        "naive-now",
        "text-now",
        "negative-days",
        "float-days",
        "bool-days",
        "unknown-list",
        "team-of-one-user",
        "user-by-name",
        "team-member-by-name",
        "negative-limit",
    ],
)
def test_bad_agenda_arguments_are_validation_errors(
    any_crm: CRM,
    luis: crmkit.User,
    call: Callable[[CRM, crmkit.User], object],
    field: str,
    code: str,
) -> None:
    """Each bad argument is a ValidationError naming it."""
    with pytest.raises(ValidationError) as info:
        call(any_crm, luis)
    assert (field, code) == (info.value.field, info.value.code)


# ====================================================== one query per list, at scale

LISTS = ["overdue", "today", "upcoming", "overdue_cases"]
SCOPES = ["user", "team", "everyone"]
BIG_USER = 100_000  # the interactions of the user whose agenda is read
OTHER_USER = 120_000  # another user has more
SMALL_USER = 10_000
UNASSIGNED = 5_000
CASES_EACH = 2_000
BOOK_SIZE = BIG_USER + OTHER_USER + SMALL_USER + UNASSIGNED


@attrs.frozen
class Book:
    """A CRM filled through the store, and what its agenda must answer."""

    crm: CRM
    luis: UserId
    marta: UserId
    planned: list[Interaction]  # every planned interaction of the book, by anyone
    cases: list[Case]


def _entities(
    org: OrganizationId, who: UserId | None, n: int, offset: timedelta
) -> Iterator[Interaction]:
    """n interactions: 80% done, 10% cancelled, 10% planned from 30 days ago, one per 6 min."""
    for i in range(n):
        if i % 10 == 0:
            values: dict[str, Any] = {
                "status": InteractionStatus.PLANNED,
                "scheduled_at": T0 - timedelta(days=30) + (i // 10) * timedelta(minutes=6) + offset,
            }
        elif i % 10 == 1:
            values = {
                "status": InteractionStatus.CANCELLED,
                "scheduled_at": T0 - timedelta(days=30) + (i // 10) * timedelta(minutes=6),
            }
        else:
            values = {
                "status": InteractionStatus.DONE,
                "occurred_at": T0 - i * timedelta(minutes=1),
            }
        yield changes.create(
            Interaction,
            id=uuid7(),
            now=T0,
            kind="call",
            organization_id=org,
            assignee_id=who,
            **values,
        )[0]


def _cases(org: OrganizationId, who: UserId, n: int) -> Iterator[Case]:
    """n cases, due every 20 minutes from 20 days ago; a quarter of them resolved."""
    statuses = [CaseStatus.OPEN, CaseStatus.IN_PROGRESS, CaseStatus.WAITING, CaseStatus.RESOLVED]
    for i in range(n):
        opened = T0 - timedelta(days=21) + i * timedelta(minutes=20)
        yield changes.create(
            Case,
            id=uuid7(),
            now=T0,
            subject=f"Case {i}",
            case_type="claim",
            status=statuses[i % 4],
            organization_id=org,
            owner_id=who,
            opened_at=opened,
            sla_due=opened + timedelta(days=1),
        )[0]


def _fill(crm: CRM, sizes: dict[str, int], unassigned: int, cases_each: int) -> Book:
    """Users luis, marta and pablo with sizes[name] interactions each, plus unassigned ones."""
    org = crm.organizations.create(name="Acme S.A.").id
    users = {name: crm.users.create(name=name).id for name in ("luis", "marta", "pablo")}
    planned: list[Interaction] = []
    case_list: list[Case] = []
    batches: list[tuple[UserId | None, int]] = [(users[n], size) for n, size in sizes.items()]
    for shift, (who, size) in enumerate([*batches, (None, unassigned)]):
        batch = list(_entities(org, who, size, timedelta(minutes=shift)))
        with crm.store.unit_of_work(write=True) as uow:
            uow.repository(Interaction).add_many(batch)
            uow.commit()
        planned += [i for i in batch if i.status is InteractionStatus.PLANNED]
    for who in (users["luis"], users["marta"]):
        batch_cases = list(_cases(org, who, cases_each))
        with crm.store.unit_of_work(write=True) as uow:
            uow.repository(Case).add_many(batch_cases)
            uow.commit()
        case_list += batch_cases
    return Book(crm, users["luis"], users["marta"], planned, case_list)


def _scope(book: Book, scope: str) -> dict[str, Any]:
    scopes: dict[str, dict[str, Any]] = {
        "user": {"user": book.luis},
        "team": {"team": [book.luis, book.marta]},
        "everyone": {},
    }
    return scopes[scope]


def _expected(book: Book, which: str, scope: str) -> list[Any]:
    """The whole list, computed here in Python from what was inserted."""
    owners = {"user": {book.luis}, "team": {book.luis, book.marta}}.get(scope)
    if which == "overdue_cases":
        open_ = {CaseStatus.OPEN, CaseStatus.IN_PROGRESS, CaseStatus.WAITING}
        found_cases = [
            c
            for c in book.cases
            if c.status in open_ and c.sla_due < T0 and (owners is None or c.owner_id in owners)
        ]
        return [c.id for c in sorted(found_cases, key=lambda c: (c.sla_due, c.id))]
    low, high = {
        "overdue": (datetime.min.replace(tzinfo=UTC), T0),
        "today": (T0, TOMORROW),
        "upcoming": (TOMORROW, WEEK_END),
    }[which]
    found = [
        i
        for i in book.planned
        if low <= i.when < high and (owners is None or i.assignee_id in owners)
    ]
    return [i.id for i in sorted(found, key=lambda i: (i.when, i.id))]


def _read(book: Book, which: str, scope: str) -> tuple[list[Any], int]:
    agenda = book.crm.agenda
    args = _scope(book, scope)
    items: list[Interaction] | list[Case]
    if which == "overdue_cases":
        items = agenda.overdue_cases(now=T0, **args)
    else:
        items = getattr(agenda, which)(now=T0, **args)
    return _ids(items), agenda.count(which, now=T0, **args)


# ------------------------------------------------------------------- SQLite


@attrs.define
class _Trace:
    """Every statement run on the SQLite connections to one database file."""

    path: str
    statements: list[str] = attrs.Factory(list)

    def on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        files = [row[2] for row in dbapi_connection.execute("PRAGMA database_list")]
        if self.path in files:
            dbapi_connection.set_trace_callback(self.statements.append)


@pytest.fixture(scope="module")
def sqlite_book(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Book, _Trace]]:
    """A SQLite file: Luis has 100,000 interactions, Marta 120,000; every connection traced."""
    path = str(tmp_path_factory.mktemp("agenda") / "crm.db")
    trace = _Trace(path)
    sa.event.listen(sa.pool.Pool, "connect", trace.on_connect)  # before the CRM connects
    try:
        with crmkit.open(path, clock=lambda: T0, synchronous="NORMAL") as crm:
            sizes = {"luis": BIG_USER, "marta": OTHER_USER, "pablo": SMALL_USER}
            book = _fill(crm, sizes, UNASSIGNED, CASES_EACH)
            assert BIG_USER == crm.interactions.count(assignee=book.luis)
            yield book, trace
    finally:
        sa.event.remove(sa.pool.Pool, "connect", trace.on_connect)


def _sqlite_plan(path: str, sql: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]


def _searches_an_index(plan: list[str], table: str) -> bool:
    """Every step that reads ``table`` searches one of its indexes (never a full scan)."""
    reads = [step for step in plan if f" {table} " in f" {step} "]
    return bool(reads) and all(step.startswith("SEARCH") and "INDEX" in step for step in reads)


@pytest.mark.slow
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("which", LISTS)
def test_each_agenda_list_is_one_indexed_select_on_a_big_sqlite_book(
    sqlite_book: tuple[Book, _Trace], which: str, scope: str
) -> None:
    """One SELECT per list and per count, searching an index, in well under a second."""
    book, trace = sqlite_book
    expected = _expected(book, which, scope)
    agenda = book.crm.agenda
    args = _scope(book, scope)
    table = "cases" if which == "overdue_cases" else "interactions"
    lister = agenda.overdue_cases if which == "overdue_cases" else getattr(agenda, which)

    trace.statements.clear()
    started = time.perf_counter()
    shown = _ids(lister(now=T0, limit=50, **args))
    list_seconds = time.perf_counter() - started
    list_statements = list(trace.statements)

    trace.statements.clear()
    started = time.perf_counter()
    counted = agenda.count(which, now=T0, **args)
    count_seconds = time.perf_counter() - started
    count_statements = list(trace.statements)

    print(
        f"\n{which} for {scope}: {len(expected):,} items; the user has {BIG_USER:,} of the "
        f"{BOOK_SIZE:,} interactions; list {list_seconds * 1000:.1f} ms, "
        f"count {count_seconds * 1000:.1f} ms"
    )
    assert (expected[:50], len(expected)) == (shown, counted)
    assert len(expected) > 50  # the limit cuts the list, not the count
    assert [1, 1] == [len(list_statements), len(count_statements)]
    assert ["SELECT", "SELECT"] == [list_statements[0][:6], count_statements[0][:6]]
    for sql in (list_statements[0], count_statements[0]):
        plan = _sqlite_plan(trace.path, sql)
        assert _searches_an_index(plan, table), plan
    assert max(list_seconds, count_seconds) < 1.0


@pytest.mark.slow
def test_the_agenda_view_of_a_big_sqlite_book_is_eight_statements(
    sqlite_book: tuple[Book, _Trace],
) -> None:
    """view() is four counts and four lists: eight SELECTs, whatever the book's size."""
    book, trace = sqlite_book
    trace.statements.clear()

    agenda = book.crm.agenda.view(user=book.luis, now=T0)

    assert 8 == len(trace.statements)
    assert all(s.startswith("SELECT") for s in trace.statements)
    assert (
        len(_expected(book, "overdue", "user")),
        len(_expected(book, "today", "user")),
        len(_expected(book, "upcoming", "user")),
        len(_expected(book, "overdue_cases", "user")),
    ) == attrs.astuple(agenda.counts)


# --------------------------------------------------------------- PostgreSQL


class _CountingCursor(psycopg.Cursor[Any]):
    """A psycopg cursor that notes every statement it runs in ``statements``."""

    statements: list[tuple[str, Any]]

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        self.statements.append((str(query), params))
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        self.statements.append((str(query), "many"))
        super().executemany(query, params_seq, **kwargs)


@pytest.mark.slow
@pytest.mark.postgres
def test_each_agenda_list_is_one_statement_on_postgresql(postgres_url: str) -> None:
    """On a smaller PostgreSQL book, every list and count is one statement using an index."""
    database = sa.make_url(postgres_url).database
    statements: list[tuple[str, Any]] = []
    counting = type("Counting", (_CountingCursor,), {"statements": statements})

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if (
            isinstance(dbapi_connection, psycopg.Connection)
            and dbapi_connection.info.dbname == database
        ):
            dbapi_connection.cursor_factory = counting

    sa.event.listen(sa.pool.Pool, "connect", on_connect)
    try:
        with crmkit.open(postgres_url, clock=lambda: T0) as crm:
            book = _fill(crm, {"luis": 10_000, "marta": 12_000, "pablo": 2_000}, 1_000, 500)
            explainer = sa.create_engine(postgres_url)
            try:
                with explainer.begin() as conn:
                    conn.exec_driver_sql("ANALYZE")
                for which in LISTS:
                    for scope in SCOPES:
                        statements.clear()
                        shown, counted = _read(book, which, scope)
                        expected = _expected(book, which, scope)
                        assert (expected[:50], len(expected)) == (shown, counted)
                        assert 2 == len(statements), (which, scope, statements)
                        for sql, params in list(statements):  # EXPLAIN adds more
                            with explainer.connect() as conn:
                                raw = conn.connection.driver_connection
                                assert raw is not None
                                plan = [r[0] for r in raw.execute("EXPLAIN " + sql, params)]
                            # three quarters of these 1,000 cases are overdue: for a team
                            # or everyone, a scan is PostgreSQL's better plan, and it takes it
                            if which != "overdue_cases":
                                assert any("Index" in step for step in plan), (which, scope, plan)
            finally:
                explainer.dispose()
    finally:
        sa.event.remove(sa.pool.Pool, "connect", on_connect)
