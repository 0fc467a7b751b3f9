"""The benchmark script keeps working (tiny sizes: the figures come from `make bench`)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "crmkit_benchmarks", Path(__file__).parent.parent / "benchmarks" / "run.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
run = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(run)


def test_the_benchmark_runs_every_contender_and_prints_the_ratios(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert 0 == run.main(
        [
            "--rows",
            "300",
            "--lookups",
            "50",
            "--repeat",
            "2",
            "--import-rows",
            "50",
            "--dedupe-rows",
            "2000",
            "--forecast-deals",
            "300",
            "--opportunities",
            "300",
        ]
    )

    out = capsys.readouterr().out
    for contender in ("raw sqlite3", "SQLAlchemy Core", "floor", "crmkit bulk_create"):
        assert contender in out
    assert re.search(r"^RESULT bulk_ratio=\d+\.\d\d get_ratio=\d+\.\d\d$", out, re.MULTILINE)
    assert re.search(r"^RESULT dedupe_ratio=\d+\.\d\d$", out, re.MULTILINE)
    assert "baseline blocking + rapidfuzz" in out
    assert re.search(
        r"^RESULT import_ratio=\d+\.\d\d import_memory_growth_mb=-?\d+\.\d$", out, re.MULTILINE
    )
    assert re.search(r"^RESULT forecast_seconds=\d+\.\d\d$", out, re.MULTILINE)
    assert re.search(r"^RESULT analytics_ratio=\d+\.\d\d$", out, re.MULTILINE)
    assert re.search(
        r"^RESULT frames_ratio=\d+\.\d\d frames_all_fields_ratio=\d+\.\d\d$", out, re.MULTILINE
    )
