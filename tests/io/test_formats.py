"""The built-in formats: sniffing, streaming readers, malformed lines, writers."""

from __future__ import annotations

import codecs
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crmkit
from crmkit import MalformedRow, ReadOptions, ValidationError, WriteOptions
from crmkit.io.formats import (
    read_csv,
    read_jsonl,
    read_xlsx,
    sniff_delimiter,
    sniff_encoding,
    write_csv,
    write_xlsx,
)


@pytest.mark.parametrize(
    ("head", "encoding"),
    [
        (codecs.BOM_UTF8 + "año".encode(), "utf-8-sig"),
        ("año".encode(), "utf-8"),
        ("año".encode("latin-1"), "latin-1"),
        ("añ".encode()[:-1], "utf-8"),  # a character cut by the end of the sample
        (b"", "utf-8"),
    ],
)
def test_the_encoding_is_sniffed_from_the_first_bytes(head: bytes, encoding: str) -> None:
    """A BOM means UTF-8 with BOM; bytes that are not UTF-8 mean Latin-1."""
    assert encoding == sniff_encoding(head)


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        ("a,b,c", ","),
        ("a;b;c", ";"),
        ("a\tb", "\t"),
        ("nombre;apellidos;empresa, sl", ";"),
        ("a", ","),
    ],
)
def test_the_delimiter_is_the_most_frequent_separator_of_the_header(
    header: str, delimiter: str
) -> None:
    assert delimiter == sniff_delimiter(header)


def test_csv_rows_carry_the_line_they_start_on(tmp_path: Path) -> None:
    """Blank lines are skipped, short rows padded, long ones malformed; quoted newlines count."""
    path = tmp_path / "a.csv"
    path.write_text('a,b\n1,"x\ny"\n\n2\n3,4,5\n6,7,,\n', encoding="utf-8")

    rows = list(read_csv(path, ReadOptions()))

    assert [
        (2, {"a": "1", "b": "x\ny"}),
        (5, {"a": "2", "b": ""}),
        MalformedRow(6, "has 3 cells; the header has 2"),
        (7, {"a": "6", "b": "7"}),
    ] == rows


def test_a_file_without_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("\n", encoding="utf-8")

    with pytest.raises(ValidationError) as caught:
        list(read_csv(path, ReadOptions()))

    assert ("header", "header") == (caught.value.field, caught.value.code)


def test_jsonl_reads_objects_and_reports_the_rest(tmp_path: Path) -> None:
    """A BOM is ignored; lines that are not JSON objects are malformed, with their line."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + b'{"a": 1}\n\n{"a": [true]}\n[1]\n{bad\n')

    rows = list(read_jsonl(path, ReadOptions()))

    assert [(1, {"a": 1}), (3, {"a": [True]})] == rows[:2]
    assert [4, 5] == [r.line for r in rows[2:] if isinstance(r, MalformedRow)]


def test_xlsx_cells_read_back_as_the_text_a_csv_would_hold(tmp_path: Path) -> None:
    """Numbers, dates and booleans a spreadsheet typed become text; blank rows are skipped."""
    import openpyxl

    path = tmp_path / "a.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["name", "amount", "since", "vip", "at"])
    sheet.append(["Acme", 1234.5, datetime(2026, 3, 31), True, datetime(2026, 1, 2, 10, 30)])
    sheet.append([None, None, None, None, None])
    sheet.append(["Beta", 7, None, False])
    book.save(path)

    rows = list(read_xlsx(path, ReadOptions()))

    assert [
        (
            2,
            {
                "name": "Acme",
                "amount": "1234.5",
                "since": "2026-03-31",
                "vip": "true",
                "at": "2026-01-02T10:30:00",
            },
        ),
        (4, {"name": "Beta", "amount": "7", "since": "", "vip": "false", "at": ""}),
    ] == rows


def test_a_damaged_workbook_is_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "a.xlsx"
    path.write_bytes(b"PK not really a zip")

    with pytest.raises(ValidationError) as caught:
        list(read_xlsx(path, ReadOptions()))

    assert ("path", "file") == (caught.value.field, caught.value.code)


@given(
    cells=st.lists(
        st.lists(st.text(st.characters(blacklist_categories=["Cs"])), min_size=2, max_size=2),
        max_size=5,
    )
)
def test_csv_writes_what_it_reads(cells: list[list[str]]) -> None:
    """Any text, quotes and newlines included, reads back as written."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.csv"
        write_csv(path, ["a", "b"], cells, WriteOptions(delimiter=";"))
        rows = list(read_csv(path, ReadOptions()))

    expected = [
        {"a": a, "b": b}
        for a, b in cells
        if a.strip() or b.strip()  # a row of blank cells reads as a blank line
    ]
    assert expected == [r[1] for r in rows if not isinstance(r, MalformedRow)]


def test_xlsx_drops_the_control_characters_xml_cannot_hold(tmp_path: Path) -> None:
    path = tmp_path / "a.xlsx"
    write_xlsx(path, ["a"], [["x\x00y\x07z"]], WriteOptions())

    assert [(2, {"a": "xyz"})] == list(read_xlsx(path, ReadOptions()))


def test_a_failed_export_leaves_no_file(crm: crmkit.CRM, tmp_path: Path) -> None:
    """An encoding that cannot hold a name stops the export and writes nothing."""
    crm.organizations.create(name="Ok")
    crm.organizations.create(name="日本")
    target = tmp_path / "o.csv"

    with pytest.raises(ValidationError):
        crm.exports.csv(target, entity="organizations", encoding="latin-1", order_by="name")

    assert [] == list(tmp_path.iterdir())
