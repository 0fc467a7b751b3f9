"""The import's promises on a file with 1% bad rows at known positions.

The report names exactly the bad rows (precision = recall = 100%); a dry run
and an atomic import write nothing; a partial import writes exactly the valid
rows; importing the same file again changes nothing (no new version, no audit
entry).  1,000 rows on every store; 100,000 on SQLite (``-m slow``).
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

import crmkit
from crmkit import In
from tests.conftest import FixedClock
from tests.io import SCORE

#: What makes each kind of bad row bad: (cells changed, column reported, code).
FAULTS = [
    ({"name": ""}, "name", "required"),
    ({"emails": "ventas@@empresa.es"}, "emails", "invalid_email"),
    ({"custom.score": "mucho"}, "custom.score", "integer"),
    ({"lifecycle": "eterno"}, "lifecycle", "choice"),
    ({"custom.score": "101"}, "custom.score", "out_of_range"),
]
HEADER = ["external_ref", "name", "emails", "lifecycle", "custom.score"]


def bad_lines(rows: int) -> dict[int, int]:
    """1% of the rows, spread over the file: file line -> index of its fault."""
    return {2 + i: n % len(FAULTS) for n, i in enumerate(range(37, rows, 100))}


def write_file(path: Path, rows: int) -> dict[int, int]:
    """A CSV of ``rows`` organizations (one in ten with an e-mail); returns the bad lines."""
    bad = bad_lines(rows)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(rows):
            row = {
                "external_ref": f"ORG-{i:06}",
                "name": f"Empresa {i} S.L.",
                "emails": f"ventas{i}@empresa{i}.es" if i % 10 == 0 else "",
                "lifecycle": ("target", "prospect", "customer")[i % 3],
                "custom.score": str(i % 101),
            }
            fault = bad.get(i + 2)
            if fault is not None:
                row.update(FAULTS[fault][0])
            writer.writerow([row[c] for c in HEADER])
    return bad


def audit_entries(database: Path) -> int:
    with closing(sqlite3.connect(database)) as db:
        count: int = db.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    return count


def define_score(crm: crmkit.CRM) -> None:
    crm.custom_fields.register(SCORE)


def check_the_promises(
    crm: crmkit.CRM,
    path: Path,
    rows: int,
    bad: dict[int, int],
    audited: Callable[[], int] | None = None,
) -> dict[str, float]:
    """Run dry run, atomic, partial and partial again; assert every promise; return timings."""
    expected = sorted((line, FAULTS[f][1], FAULTS[f][2]) for line, f in bad.items())
    timings: dict[str, float] = {}

    def run(name: str, **options: object) -> crmkit.ImportReport:
        start = time.perf_counter()
        report = crm.imports.csv(path, entity="organizations", batch_size=1000, **options)
        timings[name] = time.perf_counter() - start
        assert expected == [(e.line, e.column, e.code) for e in report.errors], name
        return report

    dry = run("dry run", dry_run=True)
    assert (rows - len(bad), False) == (dry.created, dry.written)
    assert 0 == crm.organizations.count(archived=None)

    atomic = run("atomic")
    assert (rows - len(bad), False) == (atomic.created, atomic.written)
    assert 0 == crm.organizations.count(archived=None)

    partial = run("partial", mode="partial")
    assert (rows - len(bad), True) == (partial.created, partial.written)
    assert rows - len(bad) == crm.organizations.count(archived=None)
    bad_refs = [f"ORG-{line - 2:06}" for line in bad]
    assert [] == crm.organizations.find(In("external_ref", bad_refs), archived=None)

    versions = {o.id: o.version for o in crm.organizations.find(limit=500)}
    entries = audited() if audited is not None else None
    again = run("partial again", mode="partial")
    assert (0, 0, rows - len(bad)) == (again.created, again.updated, again.unchanged)
    assert versions == {o.id: o.version for o in crm.organizations.find(limit=500)}
    assert entries == (audited() if audited is not None else None)
    return timings


def test_an_import_keeps_its_promises_on_every_store(any_crm: crmkit.CRM, tmp_path: Path) -> None:
    """1,000 rows, 10 bad: exact report, nothing written but by the partial import, idempotent."""
    define_score(any_crm)
    path = tmp_path / "orgs.csv"
    bad = write_file(path, 1000)
    assert 10 == len(bad)

    check_the_promises(any_crm, path, 1000, bad)
    versions_before = {o.id: o.version for o in any_crm.organizations.find()}
    history = [len(any_crm.history(o)) for o in list(versions_before)[:50]]
    third = any_crm.imports.csv(path, entity="organizations", mode="partial")

    assert (0, 0) == (third.created, third.updated)
    assert versions_before == {o.id: o.version for o in any_crm.organizations.find()}
    assert history == [len(any_crm.history(o)) for o in list(versions_before)[:50]]


@pytest.mark.slow
def test_a_100000_row_import_keeps_its_promises(tmp_path: Path, clock: FixedClock) -> None:
    """100,000 rows, 1,000 bad, on SQLite; the second import adds no audit entry."""
    path = tmp_path / "orgs.csv"
    bad = write_file(path, 100_000)
    database = tmp_path / "crm.db"
    with crmkit.open(database, clock=clock, default_region="ES") as crm:
        define_score(crm)
        timings = check_the_promises(crm, path, 100_000, bad, lambda: audit_entries(database))

    assert 1000 == len(bad)
    print(", ".join(f"{name}: {seconds:.1f} s" for name, seconds in timings.items()))
