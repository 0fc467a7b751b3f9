"""Concurrent writers from separate OS processes never lose an update.

Real processes and real connections (no transaction-wrapped fixture, which
would hide locking bugs), on a SQLite file in WAL mode and on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import crmkit
from tests.stores import workers

PROCESSES = 8
ATTEMPTS = 200

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file or PostgreSQL database, created at the schema head."""
    if request.param == "sqlite":
        url = str(tmp_path / "crm.db")
    else:
        url = request.getfixturevalue("postgres_url")
    crmkit.open(url, seed_masters=False).close()
    return url


def _pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn"))


@pytest.mark.slow
def test_concurrent_read_modify_write_loses_no_update(sql_url: str) -> None:
    """8 processes x 200 versioned edits: the final counter equals the acknowledged commits."""
    with crmkit.open(sql_url, seed_masters=False) as crm:
        org = crm.organizations.create(name="Contended S.A.", notes="0")
    with _pool() as pool:
        futures = [
            pool.submit(workers.edit_counter, sql_url, str(org.id), ATTEMPTS)
            for _ in range(PROCESSES)
        ]
        results = [f.result() for f in futures]
    acknowledged = sum(ok for ok, _, _ in results)
    conflicts = sum(c for _, c, _ in results)
    errors = [e for _, _, other in results for e in other]
    assert [] == errors  # every failed attempt was a ConcurrencyError
    assert PROCESSES * ATTEMPTS == acknowledged + conflicts
    with crmkit.open(sql_url, seed_masters=False) as crm:
        final = crm.organizations.get(org.id)
        history = crm.history(org.id)
    assert str(acknowledged) == final.notes
    assert 1 + acknowledged == final.version
    assert 1 + acknowledged == len(history)


@pytest.mark.slow
def test_concurrent_creates_of_one_external_ref_make_exactly_one_row(sql_url: str) -> None:
    """8 processes x 200 creates of the same external_ref: one row, every other a DuplicateError."""
    with _pool() as pool:
        futures = [
            pool.submit(workers.create_same_ref, sql_url, ATTEMPTS) for _ in range(PROCESSES)
        ]
        results = [f.result() for f in futures]
    assert [] == [e for _, _, other in results for e in other]
    assert 1 == sum(created for created, _, _ in results)
    assert PROCESSES * ATTEMPTS - 1 == sum(dups for _, dups, _ in results)
    with crmkit.open(sql_url, seed_masters=False) as crm:
        assert 1 == crm.organizations.count(external_ref="erp-1")
