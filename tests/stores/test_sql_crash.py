"""``kill -9`` in the middle of a bulk create leaves a sound database.

Only whole committed batches remain, each with its audit rows.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import crmkit

ROOT = Path(__file__).resolve().parents[2]
ROWS = 50_000
RUNS = 10


def _rows(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=10) as conn:
            return int(conn.execute("SELECT count(*) FROM organizations").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("run", range(RUNS))
def test_kill_during_bulk_create_leaves_whole_batches(tmp_path: Path, run: int) -> None:
    """After SIGKILL: integrity ok, foreign keys clean, whole audited batches only."""
    path = tmp_path / "crm.db"
    crmkit.open(path, seed_masters=False).close()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.stores.workers", "bulk", str(path), str(ROWS)],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    rng = random.Random(run)
    deadline = time.monotonic() + 60
    while _rows(path) == 0 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.5))  # land somewhere inside the insert phase
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    with sqlite3.connect(path) as conn:
        assert "ok" == conn.execute("PRAGMA integrity_check").fetchone()[0]
        assert [] == conn.execute("PRAGMA foreign_key_check").fetchall()
    with crmkit.open(path, seed_masters=False) as crm:
        count = crm.organizations.count()
        orgs = crm.organizations.find(limit=5)
        audited = [crm.history(o.id) for o in orgs]
    assert 0 == count % 1000  # whole batches only
    assert all(1 == len(h) and "create" == h[0].action.value for h in audited)
    with sqlite3.connect(path) as conn:
        audit_rows = conn.execute(
            "SELECT count(*) FROM audit_log WHERE entity = 'organization'"
        ).fetchone()[0]
    assert count == audit_rows
