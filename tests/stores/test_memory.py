"""MemoryStore: the store contract, plus what only an in-process store can promise."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from crmkit import ConcurrencyError, Organization
from crmkit.core.changes import create, update
from crmkit.core.ids import uuid7
from crmkit.stores.memory import MemoryStore
from crmkit.testing import StoreContract

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class TestMemoryStore(StoreContract):
    """Every contract test, run on a fresh MemoryStore."""

    def make_store(self) -> MemoryStore:
        return MemoryStore()


def test_concurrent_versioned_updates_lose_nothing() -> None:
    """4 threads racing read-then-update: the final version counts every success.

    Each thread reads the record in one unit of work and updates it in the
    next, so another thread may have moved the version in between; those
    updates must fail with ConcurrencyError and nothing else.
    """
    store = MemoryStore()
    acme, _ = create(Organization, id=uuid7(), now=T0, name="Acme")
    with store.unit_of_work() as uow:
        uow.repository(Organization).add(acme)
        uow.commit()

    start = threading.Barrier(4)
    successes: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        start.wait()
        for attempt in range(200):
            with store.unit_of_work(write=False) as uow:
                current = uow.repository(Organization).get(acme.id)
            changed, _ = update(current, {"notes": f"{worker}/{attempt}"}, now=T0)
            time.sleep(0)  # let another thread in between the read and the write
            try:
                with store.unit_of_work() as uow:
                    uow.repository(Organization).update(changed, expected_version=current.version)
                    uow.commit()
            except BaseException as exc:  # collected and checked below
                with lock:
                    failures.append(exc)
            else:
                with lock:
                    successes.append(worker)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with store.unit_of_work(write=False) as uow:
        final = uow.repository(Organization).get(acme.id)
    assert 800 == len(successes) + len(failures)
    assert 1 + len(successes) == final.version
    assert all(isinstance(exc, ConcurrencyError) for exc in failures)
    assert successes
    assert failures  # the race really happened


def test_repr_counts_records_per_table() -> None:
    """``repr`` shows how many records each table holds."""
    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.repository(Organization).add(create(Organization, id=uuid7(), now=T0, name="A")[0])
        uow.commit()
    assert "MemoryStore({'organization': 1})" == repr(store)
