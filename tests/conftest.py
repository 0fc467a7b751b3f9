"""Shared fixtures: a fixed clock and CRMs on every backend that is available."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

import crmkit
from crmkit.testing.plugins import RecordingPlugin
from tests.postgres_server import PostgresServer, find_bin_dir

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


class FixedClock:
    """A clock tests move by hand; starts at 2026-01-05 09:00 UTC."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)):
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def record_counts(crm: crmkit.CRM) -> dict[str, int]:
    """How many records of each kind the CRM holds, archived included."""
    return {
        "organizations": crm.organizations.count(archived=None),
        "contacts": crm.contacts.count(archived=None),
        "sources": crm.sources.count(archived=None),
        "markets": crm.markets.count(archived=None),
        "positions": crm.positions.count(archived=None),
        "zones": crm.zones.count(archived=None),
        "users": crm.users.count(archived=None),
        "opportunities": crm.opportunities.count(archived=None),
    }


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def crm(clock: FixedClock) -> Iterator[crmkit.CRM]:
    """A CRM on a fresh MemoryStore with the fixed clock and Spain as phone region."""
    with crmkit.open(":memory:", clock=clock, default_region="ES") as crm:
        yield crm


# ------------------------------------------------------------------ PostgreSQL

_REQUIRE_POSTGRES = os.environ.get("CRMKIT_REQUIRE_POSTGRES") == "1"
_NO_POSTGRES = (
    "PostgreSQL tests skipped: no server binaries found. Install them (Debian: "
    "`apt-get install postgresql`) and the tests start a throwaway server themselves."
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole session (skipped without binaries)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if _REQUIRE_POSTGRES:
            pytest.fail(_NO_POSTGRES.replace("skipped", "required (CRMKIT_REQUIRE_POSTGRES=1)"))
        pytest.skip(_NO_POSTGRES)
    server = PostgresServer(bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


_database_counter = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the throwaway server."""
    name = f"crmkit_test_{os.getpid()}_{next(_database_counter)}"
    admin = sa.create_engine(postgres_server.url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield postgres_server.url(name)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


# -------------------------------------------------------------------- backends

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL on each backend: memory, a SQLite file, PostgreSQL."""
    if request.param == "memory":
        return ":memory:"
    if request.param == "sqlite":
        return str(tmp_path / "crm.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def any_crm(backend_url: str, clock: FixedClock) -> Iterator[crmkit.CRM]:
    """A CRM on each backend in turn, with the fixed clock."""
    with crmkit.open(backend_url, clock=clock, default_region="ES") as crm:
        yield crm


@pytest.fixture
def recorded(backend_url: str, clock: FixedClock) -> Iterator[tuple[crmkit.CRM, RecordingPlugin]]:
    """A CRM on each backend with a plugin recording every hook call."""
    recorder = RecordingPlugin()
    with crmkit.open(backend_url, clock=clock, plugins=[recorder]) as crm:
        yield crm, recorder
