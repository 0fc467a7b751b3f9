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


def test_card_calendar_and_inbox_types(crm: crmkit.CRM, tmp_path: Path) -> None:
    """cards and calendars report like imports; the inbox says what it did."""
    from crmkit.io import Direction, Ingested

    crm.contacts.create(first_name="Ana", email="ana@acme.es")
    cards = crm.cards.export(tmp_path / "c.vcf")
    events = crm.calendar.export(tmp_path / "c.ics")
    done = crm.inbox.ingest(b"From: ana@acme.es\nSubject: hola\n\nhola\n")

    assert_type(cards, int)
    assert_type(events, int)
    assert_type(crm.cards.import_file(tmp_path / "c.vcf"), ImportReport)
    assert_type(crm.calendar.import_file(tmp_path / "c.ics"), ImportReport)
    assert_type(crm.calendar.feed(), bytes)
    assert_type(done, Ingested)
    assert_type(done.direction, Direction)
    assert (cards, events, done.direction) == (1, 0, Direction.INBOUND)
