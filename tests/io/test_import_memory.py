"""crm.imports streams: its peak memory does not grow with the file's rows."""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path

import crmkit


def write_organizations(path: Path, rows: int) -> Path:
    """``rows`` organizations; their e-mail addresses repeat every 200 rows, so that
    the bounded cache of validated addresses is as full after the small file."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["external_ref", "name", "tax_id", "emails", "phones", "tags"])
        for i in range(rows):
            writer.writerow(
                [f"O{i}", f"Empresa {i} S.L.", f"B{i:08d}", f"info@e{i % 200}.es", "", "a|b"]
            )
    return path


def import_peak(tmp_path: Path, rows: int, **options: object) -> int:
    """The peak of Python memory (bytes) while importing ``rows`` organizations."""
    path = write_organizations(tmp_path / f"orgs-{rows}.csv", rows)
    with crmkit.open(tmp_path / f"crm-{rows}.db", default_region="ES") as crm:
        warm = write_organizations(tmp_path / "warm.csv", 50)
        crm.imports.csv(warm, entity="organizations", dry_run=True)  # caches filled
        tracemalloc.start()
        try:
            report = crm.imports.csv(path, entity="organizations", **options)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert rows == report.created
    return peak


def test_an_atomic_import_of_eight_times_the_rows_peaks_at_the_same_memory(
    tmp_path: Path,
) -> None:
    """500 then 4,000 rows in one transaction: a file held in memory, or every
    new record kept until the commit, would add megabytes."""
    small = import_peak(tmp_path, 500)
    large = import_peak(tmp_path, 4_000)

    assert large - small < 300_000, (small, large)


def test_a_partial_import_of_eight_times_the_rows_peaks_at_the_same_memory(
    tmp_path: Path,
) -> None:
    small = import_peak(tmp_path, 500, mode="partial")
    large = import_peak(tmp_path, 4_000, mode="partial")

    assert large - small < 300_000, (small, large)
