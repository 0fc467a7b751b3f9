"""crm.imports: files read into records through the services, on every store."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from rich.console import Console

import crmkit
from crmkit import CustomField, ImportReport, Money, RowError, ValidationError
from tests.conftest import FixedClock
from tests.io import SCORE

ORGS_HEADER = "external_ref,name,emails,phones,tags,custom.tier,custom.score\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def book(any_crm: crmkit.CRM) -> crmkit.CRM:
    """any_crm with organization custom fields tier (choice) and score (integer, 0-100)."""
    any_crm.custom_fields.register(
        CustomField(
            entity="organization",
            key="tier",
            label="Tier",
            type="choice",
            choices=["gold", "silver"],
        )
    )
    any_crm.custom_fields.register(SCORE)
    return any_crm


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Five organizations; lines 3 (bad e-mail) and 5 (score out of range) are bad."""
    return write(
        tmp_path / "orgs.csv",
        ORGS_HEADER
        + "A-1,Acme S.A.,ventas@acme.es,+34 911 234 567,retail|norte,gold,80\n"
        + "A-2,Beta S.L.,not-an-email,,,,\n"
        + "A-3,Gamma,,,,silver,\n"
        + "A-4,Delta,,,,,120\n"
        + "A-5,Épsilon,,,,,\n",
    )


# ================================================================== outcomes


def test_an_import_creates_the_records_of_the_file(book: crmkit.CRM, tmp_path: Path) -> None:
    """Every cell reaches the record: lists, phones, custom fields converted to their types."""
    path = write(
        tmp_path / "orgs.csv",
        ORGS_HEADER + "A-1,Acme S.A.,ventas@acme.es|info@acme.es,911 234 567,a|b,gold,80\n",
    )

    report = book.imports.csv(path, entity="organizations")
    acme = book.organizations.get_by_external_ref("A-1")

    assert (1, 0, 0, (), True) == (
        report.created,
        report.updated,
        report.unchanged,
        report.errors,
        report.written,
    )
    assert "Acme S.A." == acme.name
    assert ["ventas@acme.es", "info@acme.es"] == [e.value for e in acme.emails]
    assert ["+34911234567"] == [p.e164 for p in acme.phones]
    assert ("a", "b") == acme.tags
    assert {"tier": "gold", "score": 80} == dict(acme.custom)


def test_bad_rows_are_reported_with_line_column_code_and_message(
    book: crmkit.CRM, mixed: Path
) -> None:
    """The report names the file line and the column of each refused cell."""
    report = book.imports.csv(mixed, entity="organizations", mode="partial")

    assert [3, 5] == report.failed_lines
    assert [(3, "emails", "invalid_email"), (5, "custom.score", "out_of_range")] == [
        (e.line, e.column, e.code) for e in report.errors
    ]
    assert all(e.message for e in report.errors)


def test_atomic_import_with_an_error_writes_nothing(book: crmkit.CRM, mixed: Path) -> None:
    """The default mode is all or nothing: one bad row and no record is written."""
    report = book.imports.csv(mixed, entity="organizations")

    assert (False, [3, 5]) == (report.written, report.failed_lines)
    assert 0 == book.organizations.count(archived=None)


def test_dry_run_validates_everything_and_writes_nothing(book: crmkit.CRM, mixed: Path) -> None:
    """A dry run reports what would happen, in either mode, and leaves the store as it was."""
    atomic = book.imports.csv(mixed, entity="organizations", dry_run=True)
    partial = book.imports.csv(mixed, entity="organizations", dry_run=True, mode="partial")

    assert (3, [3, 5], False) == (atomic.created, atomic.failed_lines, atomic.written)
    assert (3, [3, 5], False) == (partial.created, partial.failed_lines, partial.written)
    assert 0 == book.organizations.count(archived=None)


def test_partial_import_writes_exactly_the_valid_rows(book: crmkit.CRM, mixed: Path) -> None:
    """Valid rows are committed batch by batch; the bad ones are left out."""
    report = book.imports.csv(mixed, entity="organizations", mode="partial", batch_size=2)

    assert (3, True) == (report.created, report.written)
    assert ["A-1", "A-3", "A-5"] == sorted(
        o.external_ref or "" for o in book.organizations.find(archived=None)
    )


def test_importing_the_same_file_twice_changes_nothing(book: crmkit.CRM, mixed: Path) -> None:
    """The second import matches every record by external_ref and writes nothing at all."""
    book.imports.csv(mixed, entity="organizations", mode="partial")
    before = {o.id: (o.version, len(book.history(o.id))) for o in book.organizations.find()}

    again = book.imports.csv(mixed, entity="organizations", mode="partial")
    after = {o.id: (o.version, len(book.history(o.id))) for o in book.organizations.find()}

    assert (0, 0, 3, [3, 5]) == (again.created, again.updated, again.unchanged, again.failed_lines)
    assert before == after


def test_a_changed_row_updates_the_record_it_matches(
    book: crmkit.CRM, tmp_path: Path, clock: FixedClock
) -> None:
    """A row whose values differ updates its record (one new version); other rows stay."""
    first = write(tmp_path / "a.csv", ORGS_HEADER + "A-1,Acme,,,,gold,10\nA-2,Beta,,,,,\n")
    book.imports.csv(first, entity="organizations")
    clock.advance(hours=1)
    second = write(tmp_path / "b.csv", ORGS_HEADER + "A-1,Acme,,,,silver,10\nA-2,Beta,,,,,\n")

    report = book.imports.csv(second, entity="organizations")
    acme = book.organizations.get_by_external_ref("A-1")

    assert (0, 1, 1) == (report.created, report.updated, report.unchanged)
    assert (2, "silver") == (acme.version, acme.custom["tier"])
    assert 1 == book.organizations.get_by_external_ref("A-2").version


def test_the_same_external_ref_twice_in_a_file_updates_the_first_row(
    book: crmkit.CRM, tmp_path: Path
) -> None:
    """A later row for the same record is an update of the one just created."""
    path = write(tmp_path / "o.csv", ORGS_HEADER + "A-1,Acme,,,,gold,\nA-1,Acme,,,,silver,\n")

    report = book.imports.csv(path, entity="organizations")

    assert (1, 1) == (report.created, report.updated)
    assert "silver" == book.organizations.get_by_external_ref("A-1").custom["tier"]


def test_rows_without_external_ref_match_by_id(book: crmkit.CRM, tmp_path: Path) -> None:
    """An export's id column lets records without an external_ref be updated in place."""
    acme = book.organizations.create(name="Acme")
    path = write(tmp_path / "o.csv", f"id,name\n{acme.id},Acme Ibérica\n")

    report = book.imports.csv(path, entity="organizations")

    assert (0, 1) == (report.created, report.updated)
    assert "Acme Ibérica" == book.organizations.get(acme.id).name


def test_a_row_with_a_new_external_ref_and_a_known_id_updates_that_record(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    """No record has the external_ref yet: the id matches, and the record gets the ref."""
    acme = crm.organizations.create(name="Acme")
    path = write(tmp_path / "o.csv", f"id,external_ref,name\n{acme.id},A-1,Acme\n")

    report = crm.imports.csv(path, entity="organizations")

    assert (0, 1) == (report.created, report.updated)
    assert [acme.id] == [o.id for o in crm.organizations.find()]
    assert "A-1" == crm.organizations.get(acme.id).external_ref


# ================================================================ references


def test_references_name_records_by_external_ref_or_id(any_crm: crmkit.CRM, tmp_path: Path) -> None:
    """Contacts point at organizations by external_ref or id; an unknown one is refused."""
    acme = any_crm.organizations.create(name="Acme", external_ref="A-1")
    beta = any_crm.organizations.create(name="Beta")
    path = write(
        tmp_path / "c.csv",
        "first_name,organization,position\n"
        f"Ana,A-1,\nLuis,{beta.id},\nEva,A-404,\nJon,,no-such-position\n",
    )

    report = any_crm.imports.csv(path, entity="contacts", mode="partial")

    assert [(4, "organization", "reference"), (5, "position", "reference")] == [
        (e.line, e.column, e.code) for e in report.errors
    ]
    assert {"Ana": acme.id, "Luis": beta.id} == {
        c.first_name: c.organization_id for c in any_crm.contacts.find()
    }


def test_a_row_may_refer_to_a_record_created_earlier_in_the_same_file(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    """An organization's parent may be a row above it."""
    path = write(tmp_path / "o.csv", "external_ref,name,parent\nP,Holding,\nC,Filial,P\n")

    report = any_crm.imports.csv(path, entity="organizations")
    parent = any_crm.organizations.get_by_external_ref("P")

    assert (2, ()) == (report.created, report.errors)
    assert parent.id == any_crm.organizations.get_by_external_ref("C").parent_id


# ================================================================ entities


def test_leads_opportunities_and_interactions_import(any_crm: crmkit.CRM, tmp_path: Path) -> None:
    """Every importable entity goes through its service's rules."""
    any_crm.organizations.create(name="Acme", external_ref="A-1")
    leads = write(
        tmp_path / "l.csv",
        "external_ref,first_name,company,email,channel\nL-1,Ana,Acme,ana@acme.es,web_form\n"
        "L-2,,,,\n",
    )
    opportunities = write(
        tmp_path / "o.csv",
        "external_ref,name,organization,pipeline,amount,expected_close\n"
        "O-1,ERP,A-1,sales,12000.50 EUR,2026-03-31\n"
        "O-2,CRM,A-1,no-such-pipeline,,\n",
    )
    interactions = write(
        tmp_path / "i.csv",
        "external_ref,kind,status,occurred_at,scheduled_at,organization,subject\n"
        "I-1,call,done,2026-01-02T10:00:00+01:00,,A-1,Primera llamada\n"
        "I-2,visit,planned,,2026-02-01T09:00:00,A-1,Visita\n"
        "I-3,telepathy,planned,,2026-02-01T09:00:00,A-1,?\n",
    )

    lead_report = any_crm.imports.csv(leads, entity="leads", mode="partial")
    opportunity_report = any_crm.imports.csv(opportunities, entity="opportunities", mode="partial")
    interaction_report = any_crm.imports.csv(interactions, entity="interactions", mode="partial")
    erp = any_crm.opportunities.get_by_external_ref("O-1")
    call = any_crm.interactions.get_by_external_ref("I-1")
    visit = any_crm.interactions.get_by_external_ref("I-2")

    assert ([3], [3], [4]) == (
        lead_report.failed_lines,
        opportunity_report.failed_lines,
        interaction_report.failed_lines,
    )
    assert "web_form" == any_crm.leads.get_by_external_ref("L-1").channel.value
    assert (Money("12000.50", "EUR"), date(2026, 3, 31)) == (erp.amount, erp.expected_close)
    assert ("done", datetime(2026, 1, 2, 9, 0, tzinfo=UTC)) == (call.status.value, call.occurred_at)
    assert datetime(2026, 2, 1, 9, 0, tzinfo=UTC) == visit.scheduled_at  # the CRM's zone: UTC


# ======================================================= spreadsheets, files


def test_a_spanish_spreadsheet_reads_latin1_semicolons_and_decimal_commas(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    """Latin-1 and ``;`` are sniffed; amounts and dates follow the options."""
    any_crm.organizations.create(name="Panadería Núñez", external_ref="B-1")
    path = write(
        tmp_path / "oportunidades.csv",
        "external_ref;name;organization;amount;expected_close\n"
        'O-1;"Hornos; fase 2";B-1;12.000,50;31/03/2026\n',
        encoding="latin-1",
    )

    report = any_crm.imports.csv(
        path,
        entity="opportunities",
        decimal_comma=True,
        date_format="%d/%m/%Y",
        currency="EUR",
    )
    hornos = any_crm.opportunities.get_by_external_ref("O-1")

    assert () == report.errors
    assert ("Hornos; fase 2", Money("12000.50", "EUR")) == (hornos.name, hornos.amount)
    assert date(2026, 3, 31) == hornos.expected_close


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "latin-1"])
def test_encodings_are_sniffed(crm: crmkit.CRM, tmp_path: Path, encoding: str) -> None:
    """UTF-8 with or without BOM and Latin-1 read the same (the BOM is not in the header)."""
    path = write(tmp_path / "o.csv", "name,notes\nAño Nuevo,Peña\n", encoding=encoding)

    report = crm.imports.csv(path, entity="organizations")

    assert () == report.errors
    assert ("Año Nuevo", "Peña") == (
        crm.organizations.find()[0].name,
        crm.organizations.find()[0].notes,
    )


def test_mapping_renames_headers_and_skips_some(crm: crmkit.CRM, tmp_path: Path) -> None:
    """mapping= sends a header to a column or to None; other headers match by name."""
    path = write(
        tmp_path / "c.csv",
        "Nombre,Apellidos,Correo electrónico,Comentario,Last-Name\nAna,Pérez,ana@acme.es,x,\n",
    )

    report = crm.imports.csv(
        path,
        entity="contacts",
        mapping={
            "Nombre": "first_name",
            "Apellidos": "last_name",
            "Correo electrónico": "email",
            "Comentario": None,
            "Last-Name": None,
        },
    )
    ana = crm.contacts.find()[0]

    assert () == report.errors
    assert ("Ana", "Pérez", "ana@acme.es") == (ana.first_name, ana.last_name, str(ana.email))


def test_an_unknown_header_stops_the_import_before_writing(crm: crmkit.CRM, tmp_path: Path) -> None:
    """A header no column matches is a ValidationError naming it (code unknown_column)."""
    path = write(tmp_path / "c.csv", "first_name,shoe_size\nAna,42\n")

    with pytest.raises(ValidationError) as caught:
        crm.imports.csv(path, entity="contacts")

    assert ("mapping", "unknown_column", "shoe_size") == (
        caught.value.field,
        caught.value.code,
        caught.value.value,
    )
    assert 0 == crm.contacts.count()


def test_jsonl_rows_keep_json_types_and_malformed_lines_are_reported(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    """JSON values need no text conversion; a line that is not an object is a row error."""
    path = write(
        tmp_path / "c.jsonl",
        '{"first_name": "Ana", "do_not_contact": true, "tags": ["vip", "madrid"]}\n'
        "\n"
        "not json\n"
        '["a list"]\n'
        '{"first_name": "Luis", "do_not_contact": "maybe"}\n',
    )

    report = crm.imports.jsonl(path, entity="contacts", mode="partial")
    ana = crm.contacts.find()[0]

    assert [(3, "malformed"), (4, "malformed"), (5, "boolean")] == [
        (e.line, e.code) for e in report.errors
    ]
    assert (True, ("madrid", "vip")) == (ana.do_not_contact, tuple(sorted(ana.tags)))


def test_line_numbers_count_the_lines_of_quoted_cells(crm: crmkit.CRM, tmp_path: Path) -> None:
    """A cell spanning lines moves the next rows' line numbers down, as an editor shows them."""
    path = write(
        tmp_path / "o.csv",
        'name,notes\nAcme,"line one\nline two"\n,missing name\nBeta,""\n',
    )

    report = crm.imports.csv(path, entity="organizations", mode="partial")

    assert [(4, "name", "required")] == [(e.line, e.column, e.code) for e in report.errors]


def test_a_progress_callback_hears_the_rows_read(crm: crmkit.CRM, tmp_path: Path) -> None:
    """progress= is called after each batch, ending with the number of rows."""
    path = write(tmp_path / "o.csv", "name\n" + "".join(f"Org {i}\n" for i in range(7)))
    seen: list[int] = []

    crm.imports.csv(path, entity="organizations", batch_size=3, progress=seen.append)

    assert [3, 6, 7] == seen


# ================================================================== report


def test_the_report_writes_csv_and_a_rich_table(
    book: crmkit.CRM, mixed: Path, tmp_path: Path
) -> None:
    """The errors as CSV (formula-safe) and as a table a console prints."""
    report = book.imports.csv(mixed, entity="organizations")
    out = tmp_path / "errors.csv"
    report.to_csv(out)
    console = Console(width=200, record=True)
    console.print(report.table())

    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert ["line", "column", "code", "message"] == rows[0]
    assert [["3", "emails", "invalid_email"], ["5", "custom.score", "out_of_range"]] == [
        r[:3] for r in rows[1:]
    ]
    assert "2 errors in 2 rows" in console.export_text()
    assert "5 rows: nothing written (atomic import with errors); 2 rows refused" == (
        report.summary()
    )


def test_report_summary_states_what_was_written() -> None:
    """summary() reads the counts in one line for a dry run and a written import."""
    written = ImportReport(
        entity="contacts",
        mode="partial",
        dry_run=False,
        rows=3,
        created=1,
        updated=1,
        unchanged=0,
        errors=(RowError(2, "email", "email", "is not an e-mail address"),),
        written=True,
    )
    dry = attrs.evolve(
        written, mode="atomic", dry_run=True, rows=2, created=2, updated=0, errors=(), written=False
    )

    assert "3 rows: 1 created, 1 updated, 0 unchanged; 1 rows refused" == written.summary()
    assert (
        "2 rows (dry run, nothing written): 2 created, 0 updated, 0 unchanged; 0 rows refused"
        == dry.summary()
    )
    assert (False, True) == (written.ok, dry.ok)


# ================================================================ arguments


@pytest.mark.parametrize(
    ("options", "field", "code"),
    [
        ({"entity": "cases"}, "entity", "choice"),
        ({"mode": "best-effort"}, "mode", "choice"),
        ({"batch_size": 0}, "batch_size", "invalid"),
        ({"delimiter": ";;"}, "delimiter", "delimiter"),
        ({"dry_run": "yes"}, "dry_run", "type"),
        ({"format": "docx"}, "format", "reference"),
        ({"mapping": {"name": "shoe_size"}}, "mapping.name", "unknown_column"),
        ({"encoding": "klingon"}, "encoding", "encoding"),
    ],
)
def test_bad_arguments_are_validation_errors(
    crm: crmkit.CRM, tmp_path: Path, options: dict[str, Any], field: str, code: str
) -> None:
    """Every argument is checked before anything is read or written."""
    path = write(tmp_path / "o.csv", "name\nAcme\n")
    arguments: dict[str, Any] = {"entity": "organizations", **options}

    with pytest.raises(ValidationError) as caught:
        crm.imports.file(path, **arguments)

    assert (field, code) == (caught.value.field, caught.value.code)
    assert 0 == crm.organizations.count()


def test_an_unreadable_file_is_a_validation_error(crm: crmkit.CRM, tmp_path: Path) -> None:
    """A missing file, a file of unknown extension or bytes of another encoding."""
    latin = write(tmp_path / "o.csv", "name\n" + "Año\n" * 10, encoding="latin-1")

    with pytest.raises(ValidationError) as missing:
        crm.imports.csv(tmp_path / "nope.csv", entity="organizations")
    with pytest.raises(ValidationError) as unknown:
        crm.imports.file(tmp_path / "o.docx", entity="organizations")
    with pytest.raises(ValidationError) as wrong:
        crm.imports.csv(latin, entity="organizations", encoding="utf-8")

    assert [("path", "file"), ("format", "format"), ("encoding", "encoding")] == [
        (e.value.field, e.value.code) for e in (missing, unknown, wrong)
    ]
    assert 0 == crm.organizations.count()


def test_decimal_custom_fields_read_decimal_commas(crm: crmkit.CRM, tmp_path: Path) -> None:
    """A decimal custom field reads ``1.234,5`` with decimal_comma, ``1234.5`` without."""
    crm.custom_fields.register(
        CustomField(entity="contact", key="discount", label="Discount", type="decimal")
    )
    comma = write(tmp_path / "a.csv", "first_name;custom.discount\nAna;1.234,5\n")
    point = write(tmp_path / "b.csv", "first_name,custom.discount\nLuis,1234.5\n")

    crm.imports.csv(comma, entity="contacts", decimal_comma=True)
    crm.imports.csv(point, entity="contacts")

    assert [Decimal("1234.5"), Decimal("1234.5")] == [
        c.custom["discount"] for c in crm.contacts.find(order_by="first_name")
    ]
