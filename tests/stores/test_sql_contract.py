"""The published store contract suite, run on SQLite files and on PostgreSQL."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from crmkit.stores.sql import SqlStore, sqlite_url
from crmkit.testing import StoreContract

_files = itertools.count()


class TestSqliteStore(StoreContract):
    """Every contract test on a fresh SQLite file (WAL, foreign keys, BEGIN IMMEDIATE)."""

    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def make_store(self) -> SqlStore:
        return SqlStore(sqlite_url(self.directory / f"contract-{next(_files)}.db"))


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    """Every contract test on a fresh PostgreSQL database of the throwaway server."""

    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    def make_store(self) -> SqlStore:
        return SqlStore(self.url)
