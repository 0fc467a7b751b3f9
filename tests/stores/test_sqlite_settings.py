"""Every SQLite connection crmkit opens is configured for safety."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import crmkit
from crmkit.stores.sql import BUSY_TIMEOUT_MS, SqlStore


def _settings(store: SqlStore) -> tuple[str, int, int, int]:
    with store.unit_of_work(write=False) as uow:
        conn = uow.connection
        return (
            conn.exec_driver_sql("PRAGMA journal_mode").scalar_one(),
            conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one(),
            conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one(),
            conn.exec_driver_sql("PRAGMA synchronous").scalar_one(),
        )


def test_every_sqlite_connection_reports_wal_foreign_keys_and_busy_timeout(
    tmp_path: Path,
) -> None:
    """Connections made on several threads all run WAL, foreign keys, busy timeout, FULL sync."""
    with crmkit.open(tmp_path / "crm.db") as crm:
        store = crm.store
        assert isinstance(store, SqlStore)
        seen: list[tuple[str, int, int, int]] = []
        threads = [threading.Thread(target=lambda: seen.append(_settings(store))) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen.append(_settings(store))
    assert 7 == len(seen)
    assert {("wal", 1, BUSY_TIMEOUT_MS, 2)} == set(seen)  # synchronous 2 = FULL


def test_synchronous_normal_is_an_explicit_opt_out(tmp_path: Path) -> None:
    """crmkit.open(..., synchronous="NORMAL") relaxes durability, nothing else."""
    with crmkit.open(tmp_path / "fast.db", synchronous="NORMAL") as crm:
        assert isinstance(crm.store, SqlStore)
        assert ("wal", 1, BUSY_TIMEOUT_MS, 1) == _settings(crm.store)


def test_an_invalid_synchronous_setting_is_a_validation_error(tmp_path: Path) -> None:
    """Only FULL, NORMAL and EXTRA are accepted."""
    with pytest.raises(crmkit.ValidationError) as info:
        crmkit.open(tmp_path / "x.db", synchronous="OFF")
    assert "synchronous" == info.value.field


def test_one_engine_per_file_per_process(tmp_path: Path) -> None:
    """Two CRMs on the same file share one engine; it is disposed with the last one."""
    a = crmkit.open(tmp_path / "crm.db")
    b = crmkit.open(str(tmp_path / "crm.db"))
    assert isinstance(a.store, SqlStore)
    assert isinstance(b.store, SqlStore)
    assert a.store.engine is b.store.engine
    a.close()
    assert 1 == b.organizations.count() + 1  # still usable after the other closed
    b.close()
