"""crmkit.open(), the CRM object's lifecycle, its clock and actor, and import side effects."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import pytest

import crmkit
from crmkit import CRM, ValidationError
from crmkit.core.entities import Entity
from crmkit.stores.base import UnitOfWork
from crmkit.stores.memory import MemoryStore
from tests.conftest import FixedClock

E = TypeVar("E", bound=Entity)


class SpyStore:
    """A MemoryStore that counts how often it is closed."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.closed = 0

    def unit_of_work(self, *, write: bool = True) -> AbstractContextManager[UnitOfWork]:
        """Delegate to the memory store."""
        return self.inner.unit_of_work(write=write)

    def get(self, cls: type[E], id: UUID) -> E:
        """Delegate to the memory store."""
        return self.inner.get(cls, id)

    def close(self) -> None:
        """Count the call."""
        self.closed += 1


# -------------------------------------------------------------------- open


def test_open_memory_url_returns_a_working_crm() -> None:
    """ ":memory:" and "memory://" open an empty CRM on a MemoryStore."""
    for url in (":memory:", "memory://"):
        with crmkit.open(url) as crm:
            assert isinstance(crm, CRM)
            assert isinstance(crm.store, MemoryStore)
            acme = crm.organizations.create(name="Acme")
            assert acme == crm.organizations.get(acme.id)


def test_open_with_a_store_object_uses_it() -> None:
    """open(store=...) runs on the given store; a second CRM on it sees the same data."""
    store = MemoryStore()

    with crmkit.open(store=store) as first:
        acme = first.organizations.create(name="Acme")
        assert store is first.store
    with crmkit.open(store=store) as second:
        assert acme == second.organizations.get(acme.id)


def test_open_with_both_url_and_store_raises_validation_error() -> None:
    """A url and a store together are ambiguous."""
    with pytest.raises(ValidationError) as info:
        crmkit.open(":memory:", store=MemoryStore())

    assert "store" == info.value.field


@pytest.mark.parametrize("url", ["nosuchscheme://somewhere/crm", "mongodb://localhost/crm"])
def test_open_with_an_unknown_url_raises_validation_error(url: str) -> None:
    """A url crmkit cannot open is a ValidationError on field url, keeping the url."""
    with pytest.raises(ValidationError) as info:
        crmkit.open(url)

    assert "url" == info.value.field
    assert url == info.value.value


@pytest.mark.parametrize("region", ["XX", "es", "ESP", "", 34])
def test_open_with_a_bad_default_region_raises_validation_error(region: object) -> None:
    """default_region must be an ISO 3166 alpha-2 code."""
    with pytest.raises(ValidationError) as info:
        crmkit.open(":memory:", default_region=region)  # type: ignore[arg-type]

    assert ("default_region", "country") == (info.value.field, info.value.code)


def test_crm_as_context_manager_closes_its_store() -> None:
    """Leaving ``with crmkit.open(...) as crm`` closes the store once."""
    store = SpyStore()

    with crmkit.open(store=store) as crm:
        crm.organizations.create(name="Acme")
        assert 0 == store.closed

    assert 1 == store.closed


def test_close_closes_the_store() -> None:
    """crm.close() releases the store."""
    store = SpyStore()
    crm = crmkit.open(store=store)

    crm.close()

    assert 1 == store.closed


def test_open_closes_the_store_it_created_when_seeding_fails() -> None:
    """A failure while opening does not leak the store: it is closed before the error leaves."""
    store = SpyStore()

    def naive() -> datetime:
        return datetime(2026, 1, 5, 9, 0)  # naive: the point of the test

    with pytest.raises(ValidationError):
        crmkit.open(store=store, clock=naive)

    assert 1 == store.closed


# ------------------------------------------------------------------- clock


def test_the_injected_clock_stamps_created_at_and_updated_at(
    crm: crmkit.CRM, clock: FixedClock
) -> None:
    """create, update and archive take their times from the clock passed to open()."""
    start = clock.current
    acme = crm.organizations.create(name="Acme")
    updated_at = clock.advance(hours=2)
    updated = crm.organizations.update(acme.id, expected_version=1, name="Acme S.A.")
    archived_at = clock.advance(days=1)
    archived = crm.organizations.archive(acme.id, expected_version=2)

    assert (start, start) == (acme.created_at, acme.updated_at)
    assert (start, updated_at) == (updated.created_at, updated.updated_at)
    assert (start, archived_at) == (archived.created_at, archived.updated_at)
    assert [start, updated_at, archived_at] == [e.at for e in crm.history(acme.id)]
    assert archived_at == crm.now()


def test_clock_in_another_timezone_is_accepted() -> None:
    """Any timezone-aware clock works; times keep their instant."""
    madrid = timezone(timedelta(hours=1))
    moment = datetime(2026, 3, 1, 10, 0, tzinfo=madrid)

    with crmkit.open(":memory:", clock=lambda: moment) as crm:
        acme = crm.organizations.create(name="Acme")

    assert datetime(2026, 3, 1, 9, 0, tzinfo=UTC) == acme.created_at


def test_naive_clock_makes_open_raise_validation_error() -> None:
    """A clock returning naive datetimes is refused as soon as it is used (seeding)."""

    def naive() -> datetime:
        return datetime(2026, 1, 5, 9, 0)  # naive: the point of the test

    with pytest.raises(ValidationError) as info:
        crmkit.open(":memory:", clock=naive)

    assert "clock" == info.value.field


@pytest.mark.parametrize(
    "value",
    [datetime(2026, 1, 5, 9, 0), "2026-01-05T09:00:00+00:00", None],
)
def test_bad_clock_makes_writes_raise_validation_error_and_store_nothing(value: object) -> None:
    """A clock returning naive datetimes or non-datetimes: ValidationError on field clock."""

    def bad_clock() -> datetime:
        return value  # type: ignore[return-value]

    with crmkit.open(":memory:", clock=bad_clock, seed_masters=False) as crm:
        with pytest.raises(ValidationError) as info:
            crm.organizations.create(name="Acme")

        assert "clock" == info.value.field
        assert 0 == crm.organizations.count(archived=None)


# ------------------------------------------------------------------- actor


def test_history_records_the_actor_given_to_open(clock: FixedClock) -> None:
    """Every audit entry carries the actor the CRM was opened with."""
    with crmkit.open(":memory:", clock=clock, actor="ana@acme.es") as crm:
        acme = crm.organizations.create(name="Acme")
        crm.organizations.update(acme.id, expected_version=1, name="Acme S.A.")

        assert ["ana@acme.es", "ana@acme.es"] == [e.actor for e in crm.history(acme.id)]


def test_history_actor_is_none_by_default(crm: crmkit.CRM) -> None:
    """Without an actor the changes are the system's."""
    acme = crm.organizations.create(name="Acme")

    assert [None] == [e.actor for e in crm.history(acme.id)]


def test_crms_on_one_store_keep_their_own_actor(clock: FixedClock) -> None:
    """Two CRMs sharing a store audit their changes under their own actors."""
    store = MemoryStore()
    with (
        crmkit.open(store=store, clock=clock, actor="ana") as ana,
        crmkit.open(store=store, clock=clock, actor="luis") as luis,
    ):
        acme = ana.organizations.create(name="Acme")
        luis.organizations.update(acme.id, expected_version=1, name="Acme S.A.")

        assert ["ana", "luis"] == [e.actor for e in ana.history(acme.id)]


# ---------------------------------------------------------- import effects


def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_importing_crmkit_opens_nothing_and_loads_no_plugins(tmp_path: Path) -> None:
    """import crmkit builds no plugin manager, reads no entry points, starts no engine."""
    code = """
        import importlib.metadata, sys
        import pluggy

        def forbidden(*args, **kwargs):
            raise AssertionError("called while importing crmkit")

        importlib.metadata.entry_points = forbidden
        importlib.metadata.distributions = forbidden
        pluggy.PluginManager.__init__ = forbidden
        pluggy.PluginManager.load_setuptools_entrypoints = forbidden

        import crmkit

        assert "sqlalchemy.engine" not in sys.modules, "an engine module was imported"
        print("ok")
    """

    result = _run_python(code, tmp_path)

    assert (0, "ok\n") == (result.returncode, result.stdout), result.stderr
    assert [] == list(tmp_path.iterdir())


def test_opening_a_memory_crm_creates_no_file(tmp_path: Path) -> None:
    """import crmkit plus crmkit.open(":memory:") leave the working directory empty."""
    code = """
        import crmkit

        with crmkit.open(":memory:") as crm:
            crm.organizations.create(name="Acme")
        print("ok")
    """

    result = _run_python(code, tmp_path)

    assert (0, "ok\n") == (result.returncode, result.stdout), result.stderr
    assert [] == list(tmp_path.iterdir())
    assert not (tmp_path / "crm.db").exists()
