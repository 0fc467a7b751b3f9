"""The types of imports, exports and file formats, as a type checker sees them."""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

import crmkit
from crmkit import FileFormat, ImportReport, RowError


def test_import_and_export_types(crm: crmkit.CRM, tmp_path: Path) -> None:
    """exports return how many rows they wrote; imports an ImportReport of RowErrors."""
    crm.organizations.create(name="Acme")
    path = tmp_path / "o.csv"

    written = crm.exports.csv(path, entity="organizations")
    report = crm.imports.csv(path, entity="organizations", mode="partial", dry_run=True)

    assert_type(written, int)
    assert_type(report, ImportReport)
    assert_type(report.errors, tuple[RowError, ...])
    assert_type(report.failed_lines, list[int])
    assert_type(crm.formats.get("csv"), FileFormat)
    assert (1, 1) == (written, report.unchanged)
