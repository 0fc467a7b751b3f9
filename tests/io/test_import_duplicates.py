"""crm.imports and the duplicate check on create, on every store."""

from __future__ import annotations

from pathlib import Path

import pytest

import crmkit
from crmkit import ValidationError

CONTACTS = "external_ref,first_name,last_name,email,phones\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_refuse_reports_the_row_duplicating_a_stored_contact(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    ana = any_crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana@acme.es")
    path = write(
        tmp_path / "c.csv",
        CONTACTS + "C1,Luis,Gómez,luis@globex.com,\nC2,Ana,Perez,ANA@acme.es,\n",
    )

    report = any_crm.imports.csv(path, entity="contacts", duplicate_check="refuse")

    [error] = report.errors
    assert (3, "email", "duplicate") == (error.line, error.column, error.code)
    assert str(ana.id) in error.message
    assert not report.written
    assert 1 == any_crm.contacts.count()


def test_refuse_in_partial_mode_writes_every_other_row(any_crm: crmkit.CRM, tmp_path: Path) -> None:
    """Rows of the same file are checked against each other too (same batch or not)."""
    path = write(
        tmp_path / "c.csv",
        CONTACTS
        + "C1,Eva,Sanz,,+34 699 111 222\n"
        + "C2,Luis,Gómez,luis@globex.com,\n"
        + "C3,Eva,Sanz,,699111222\n"
        + "C4,Luis,Gomez,LUIS@globex.com,\n",
    )

    report = any_crm.imports.csv(
        path, entity="contacts", mode="partial", duplicate_check="refuse", batch_size=3
    )

    assert [4, 5] == report.failed_lines
    assert {"duplicate"} == {e.code for e in report.errors}
    assert "line 2" in report.errors[0].message
    assert ["C1", "C2"] == sorted(c.external_ref or "" for c in any_crm.contacts.find())


def test_warn_imports_the_rows_and_lists_them_as_warnings(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    any_crm.organizations.create(name="Acme S.L.", tax_id="B12345678")
    path = write(
        tmp_path / "o.csv",
        "external_ref,name,tax_id\nO1,Globex S.A.,\nO2,ACME SL,B-12345678\n",
    )

    report = any_crm.imports.csv(path, entity="organizations", duplicate_check="warn")

    assert report.written
    assert not report.errors
    assert 2 == report.created
    [warning] = report.warnings
    assert (3, "duplicate") == (warning.line, warning.code)
    assert "1 likely duplicates" in report.summary()
    assert 3 == any_crm.organizations.count()


def test_the_import_follows_the_crm_setting_unless_told(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    any_crm.duplicates.on_create = "refuse"
    path = write(
        tmp_path / "c.csv", CONTACTS + "C1,Ana,Pérez,ana@acme.es,\nC2,Ana,Pérez,ana@acme.es,\n"
    )

    refused = any_crm.imports.csv(path, entity="contacts", dry_run=True)
    allowed = any_crm.imports.csv(path, entity="contacts", duplicate_check="off")

    assert [3] == refused.failed_lines
    assert allowed.written
    assert 2 == allowed.created


def test_reimporting_the_same_file_is_not_a_duplicate(any_crm: crmkit.CRM, tmp_path: Path) -> None:
    """Rows matching a record by external_ref update it: the check is for new records."""
    path = write(tmp_path / "c.csv", CONTACTS + "C1,Ana,Pérez,ana@acme.es,612345678\n")
    any_crm.imports.csv(path, entity="contacts")

    again = any_crm.imports.csv(path, entity="contacts", duplicate_check="refuse")

    assert again.ok
    assert 1 == again.unchanged


def test_a_bad_duplicate_check_is_refused(crm: crmkit.CRM, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", CONTACTS)

    with pytest.raises(ValidationError) as error:
        crm.imports.csv(path, entity="contacts", duplicate_check="loud")

    assert ("duplicate_check", "choice") == (error.value.field, error.value.code)
