"""SqlStore(creator=...): crmkit on a SQLite connection its caller owns (a Django project's).

The caller's statements on that connection join crmkit's transactions, so a
sales order the host writes in ``crmkit_create_sales_order`` commits with the
win or rolls back with it; crmkit never closes the connection, never commits
or rolls back a transaction the caller began, and keeps its tables beside the
caller's in one database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

import crmkit
from crmkit import Money, hookimpl
from crmkit.core.opportunities import Opportunity
from crmkit.core.pipelines import StageKind
from crmkit.stores.sql import SqlStore, sqlite_url
from tests.conftest import FixedClock


def _connect(path: Path, detect_types: int = 0) -> sqlite3.Connection:
    """The host's own connection, in autocommit mode as Django keeps it."""
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, detect_types=detect_types
    )
    connection.execute("CREATE TABLE IF NOT EXISTS orders (number TEXT PRIMARY KEY, opp TEXT)")
    return connection


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "host.db"


@pytest.fixture
def host(path: Path) -> Iterator[sqlite3.Connection]:
    connection = _connect(path)
    yield connection
    connection.close()


def _open(path: Path, creator: Callable[[], sqlite3.Connection], *plugins: object) -> crmkit.CRM:
    store = SqlStore(sqlite_url(path), creator=creator)
    return crmkit.open(store=store, plugins=plugins, clock=FixedClock())


def _orders(path: Path) -> list[tuple[str, str]]:
    """The host's orders as another process sees them: committed rows only."""
    with sqlite3.connect(path) as other:
        return [tuple(row) for row in other.execute("SELECT number, opp FROM orders")]


class HostOrders:
    """Writes the order on the shared connection; refuses when told to, after writing it."""

    def __init__(self, host: sqlite3.Connection) -> None:
        self.host = host
        self.refuse = False

    @hookimpl
    def crmkit_create_sales_order(self, crm: crmkit.CRM, opportunity: Opportunity) -> str | None:
        number = f"SO-{opportunity.name}"
        self.host.execute("INSERT INTO orders VALUES (?, ?)", (number, str(opportunity.id)))
        if self.refuse:
            raise RuntimeError("credit limit exceeded")
        return number


def _deal(crm: crmkit.CRM, name: str) -> Opportunity:
    org = crm.organizations.create(name=f"{name} S.A.")
    return crm.opportunities.create(
        name=name,
        organization=org,
        stage="negotiation",
        amount=Money("100", "EUR"),
        expected_close=date(2026, 3, 31),
    )


def test_crmkit_keeps_its_tables_beside_the_hosts_and_never_closes_its_connection(
    path: Path, host: sqlite3.Connection
) -> None:
    """The host's database gets crmkit's tables; after crm.close() the host's connection works."""
    host.execute("INSERT INTO orders VALUES ('SO-0', 'none')")
    crm = _open(path, lambda: host)
    crm.organizations.create(name="Acme S.A.")
    crm.close()

    assert [("Acme S.A.",)] == host.execute("SELECT name FROM organizations").fetchall()
    assert [("SO-0", "none")] == _orders(path)


def test_an_order_written_on_the_shared_connection_commits_with_the_win(
    path: Path, host: sqlite3.Connection
) -> None:
    """The hook's INSERT joins crmkit's transaction: another connection sees both or neither."""
    with _open(path, lambda: host, HostOrders(host)) as crm:
        deal = _deal(crm, "rollout")
        won = crm.opportunities.win(deal.id)

        assert ("SO-rollout", StageKind.WON) == (won.sales_order_ref, won.status)
        assert [("SO-rollout", str(deal.id))] == _orders(path)
    with crmkit.open(path) as other:  # crmkit on its own connection: the win is committed
        assert "SO-rollout" == other.opportunities.get(deal.id).sales_order_ref


def test_a_hook_failing_after_its_insert_rolls_the_order_back_with_the_win(
    path: Path, host: sqlite3.Connection
) -> None:
    """The order row written before the hook raised is undone; the caller gets HookError."""
    orders = HostOrders(host)
    orders.refuse = True
    with _open(path, lambda: host, orders) as crm:
        deal = _deal(crm, "support")
        with pytest.raises(crmkit.HookError) as info:
            crm.opportunities.win(deal.id)

        assert ("crmkit_create_sales_order", False) == (info.value.hook, info.value.committed)
        assert deal == crm.opportunities.get(deal.id)  # still open, same version
        assert [] == _orders(path)
        assert [] == host.execute("SELECT * FROM orders").fetchall()  # not even on the host's
        assert not host.in_transaction


class SecondConnectionOrders:
    """Writes the order through a connection of its own: the naive design."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @hookimpl
    def crmkit_create_sales_order(self, crm: crmkit.CRM, opportunity: Opportunity) -> str | None:
        own = sqlite3.connect(self.path, timeout=0.2)
        try:
            with own:  # commits
                own.execute("INSERT INTO orders VALUES (?, ?)", (opportunity.name, "x"))
        finally:
            own.close()
        return opportunity.name


def test_an_order_written_through_a_second_connection_waits_for_crmkits_own_lock(
    path: Path, host: sqlite3.Connection
) -> None:
    """Why the connection is shared: SQLite has one writer, and the win holds the lock."""
    with crmkit.open(path.with_name("crm.db"), plugins=[SecondConnectionOrders(path)]) as crm:
        deal = _deal(crm, "elsewhere")
        assert "elsewhere" == crm.opportunities.win(deal.id).sales_order_ref  # another file: fine

    with _open(path, lambda: host, SecondConnectionOrders(path)) as crm:
        deal = _deal(crm, "locked")
        with pytest.raises(crmkit.HookError) as info:
            crm.opportunities.win(deal.id)

        assert "database is locked" in info.value.reason
        assert StageKind.OPEN == crm.opportunities.get(deal.id).status


def test_the_hosts_statements_in_a_crm_transaction_roll_back_with_it(
    path: Path, host: sqlite3.Connection
) -> None:
    """Inside ``crm.transaction()`` the host's writes are part of the same all-or-nothing."""
    with _open(path, lambda: host) as crm:

        def change_of_mind() -> None:
            with crm.transaction():
                crm.organizations.create(name="Acme S.A.")
                host.execute("INSERT INTO orders VALUES ('SO-1', 'x')")
                raise RuntimeError("changed my mind")

        with pytest.raises(RuntimeError):
            change_of_mind()

        assert (0, []) == (crm.organizations.count(), _orders(path))


def test_dates_read_right_on_a_connection_that_converts_declared_types(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Django opens SQLite with PARSE_DECLTYPES: DATE and DATETIME come back converted."""
    monkeypatch.setitem(
        sqlite3.converters, "DATETIME", lambda b: datetime.fromisoformat(b.decode())
    )
    monkeypatch.setitem(sqlite3.converters, "DATE", lambda b: date.fromisoformat(b.decode()))
    host = _connect(path, detect_types=sqlite3.PARSE_DECLTYPES)
    try:
        with _open(path, lambda: host) as crm:
            deal = _deal(crm, "dates")
            assert isinstance(
                host.execute("SELECT created_at FROM opportunities").fetchone()[0], datetime
            )

            assert deal == crm.opportunities.get(deal.id)  # the point read's fast path
            assert [deal] == crm.opportunities.find(name="dates")  # SQLAlchemy's path
            assert deal.created_at == crm.history(deal.id)[0].at
    finally:
        host.close()


def test_a_crmkit_write_inside_the_owners_transaction_is_refused_and_leaves_it_open(
    path: Path, host: sqlite3.Connection
) -> None:
    """crmkit cannot commit the owner's transaction: a write is refused, reads still work."""
    with _open(path, lambda: host) as crm:
        host.execute("BEGIN")
        host.execute("INSERT INTO orders VALUES ('SO-1', 'x')")

        assert 0 == crm.organizations.count()
        with pytest.raises(crmkit.StorageError) as info:
            crm.organizations.create(name="Acme S.A.")
        assert "inside a transaction of its owner" in str(info.value)

        assert host.in_transaction
        host.execute("COMMIT")
        assert ([("SO-1", "x")], 0) == (_orders(path), crm.organizations.count())


def test_a_connection_the_owner_closed_and_reopened_is_picked_up(path: Path) -> None:
    """crmkit asks the creator at each unit of work, so it follows the owner's reconnects."""
    current = [_connect(path)]
    with _open(path, lambda: current[0]) as crm:
        crm.organizations.create(name="Acme S.A.")
        current[0].close()  # Django closes connections at the end of a request
        current[0] = _connect(path)

        assert ["Acme S.A."] == [o.name for o in crm.organizations.find()]
        crm.organizations.create(name="Globex S.L.")
        assert 2 == crm.organizations.count()
    current[0].close()


def test_a_connection_outside_autocommit_mode_is_refused(path: Path) -> None:
    """Setting isolation_level=None would commit the owner's work: crmkit asks for it instead."""
    legacy = sqlite3.connect(path)  # isolation_level="": the driver BEGINs on its own
    try:
        with pytest.raises(crmkit.StorageError) as info:
            SqlStore(sqlite_url(path), creator=lambda: legacy)
        assert "autocommit" in str(info.value)
    finally:
        legacy.close()


def test_a_table_named_like_crmkits_in_the_hosts_database_is_refused(
    path: Path, host: sqlite3.Connection
) -> None:
    """Beside the host's tables, yes; over a table crmkit would create, no. Nothing is created."""
    host.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY)")
    with pytest.raises(crmkit.StorageError) as info:
        SqlStore(sqlite_url(path), creator=lambda: host)

    assert "contacts" in str(info.value)
    tables = {r[0] for r in host.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"orders", "contacts"} == tables


def test_creator_is_refused_on_postgresql_and_when_not_callable(host: sqlite3.Connection) -> None:
    """Sharing a connection is a SQLite feature; a creator must be a function."""
    with pytest.raises(crmkit.ValidationError) as info:
        SqlStore("postgresql+psycopg://crm@localhost/crm", creator=lambda: host)
    assert "creator" == info.value.field
    with pytest.raises(crmkit.ValidationError) as info:
        SqlStore("sqlite://", creator="host.db")  # type: ignore[arg-type]
    assert "creator" == info.value.field
