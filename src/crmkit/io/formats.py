"""crmkit's built-in file formats (CSV, JSON Lines, XLSX), registered as a plugin.

The plugin implements ``crmkit_register_formats`` like any third-party one;
the host registers this module with the other built-in plugins.  Readers
stream: they hold one record at a time, never the whole file.

.. versionadded:: 0.1
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from crmkit.core.errors import ValidationError
from crmkit.core.formats import FileFormat, MalformedRow, ReadOptions, SourceRow, WriteOptions
from crmkit.plugins import hookimpl

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["CSV", "JSONL", "XLSX", "crmkit_register_formats"]

#: How much of a file the encoding is sniffed from.
_SNIFF_BYTES: Final = 1 << 16
_DELIMITERS: Final = (",", ";", "\t", "|")


def sniff_encoding(head: bytes) -> str:
    """UTF-8 with a byte-order mark, UTF-8, or Latin-1, from a file's first bytes."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def sniff_delimiter(header: str) -> str:
    """The separator of a CSV header line: the most frequent of ``, ; tab |``."""
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _open_text(path: Path, options: ReadOptions) -> io.TextIOWrapper:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise ValidationError(
            "path", f"cannot be read: {exc.strerror}", code="file", value=str(path)
        ) from None
    encoding = options.encoding or sniff_encoding(raw.read(_SNIFF_BYTES))
    raw.seek(0)
    try:
        return io.TextIOWrapper(raw, encoding=encoding, newline="")
    except LookupError:
        raw.close()
        raise ValidationError(
            "encoding", "is not a known text encoding", code="encoding", value=encoding
        ) from None


def _decoding(error: UnicodeDecodeError, line: int) -> ValidationError:
    return ValidationError(
        "encoding",
        f"the file is not {error.encoding} text (line {line}); pass the right encoding",
        code="encoding",
        value=error.encoding,
    )


def read_csv(path: Path, options: ReadOptions) -> Iterator[SourceRow | MalformedRow]:
    """The records of a CSV file, by header; short lines are padded with empty cells."""
    with _open_text(path, options) as text:
        line = 1
        try:
            first = text.readline()
            delimiter = options.delimiter or sniff_delimiter(first)
            reader = csv.reader(itertools.chain([first], text), delimiter=delimiter, strict=True)
            try:
                header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
            except csv.Error as exc:
                raise ValidationError(
                    "header", f"the header line is not valid CSV: {exc}", code="header"
                ) from None
            if not any(header):
                raise ValidationError("header", "the file has no header line", code="header")
            width = len(header)
            line = reader.line_num + 1
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield MalformedRow(line, f"is not valid CSV: {exc}")
                    line = reader.line_num + 1
                    continue
                start, line = line, reader.line_num + 1
                if not any(c.strip() for c in cells):
                    continue  # a blank line, or a row of empty cells (";;;")
                if len(cells) > width and any(c.strip() for c in cells[width:]):
                    yield MalformedRow(start, f"has {len(cells)} cells; the header has {width}")
                    continue
                if len(cells) < width:
                    cells += [""] * (width - len(cells))
                yield start, dict(zip(header, cells, strict=False))
        except UnicodeDecodeError as exc:
            raise _decoding(exc, line) from None


def write_csv(
    path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]], options: WriteOptions
) -> int:
    """Write a CSV file (every cell text, quoted when needed)."""
    count = 0
    with path.open("w", encoding=options.encoding, newline="") as out:
        writer = csv.writer(out, delimiter=options.delimiter)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def read_jsonl(path: Path, options: ReadOptions) -> Iterator[SourceRow | MalformedRow]:
    """The records of a JSON Lines file: one JSON object per line."""
    encoding = options.encoding or "utf-8-sig"
    with _open_text(path, ReadOptions(encoding=encoding)) as text:
        number = 0
        try:
            for number, content in enumerate(text, start=1):
                if not content.strip():
                    continue
                try:
                    record = json.loads(content)
                except ValueError as exc:
                    yield MalformedRow(number, f"is not valid JSON: {exc.args[0]}")
                    continue
                if not isinstance(record, dict):
                    yield MalformedRow(number, "is not a JSON object")
                    continue
                yield number, record
        except UnicodeDecodeError as exc:
            raise _decoding(exc, number + 1) from None


def write_jsonl(
    path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]], options: WriteOptions
) -> int:
    """Write a JSON Lines file: one object per row, keys in column order."""
    count = 0
    with path.open("w", encoding=options.encoding, newline="\n") as out:
        for row in rows:
            record = dict(zip(columns, row, strict=True))
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            out.write("\n")
            count += 1
    return count


def _openpyxl() -> Any:
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ValidationError(
            "format",
            "XLSX needs openpyxl: pip install 'crmkit[xlsx]'",
            code="missing_extra",
            value="xlsx",
        ) from None
    return openpyxl


def write_xlsx(
    path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]], options: WriteOptions
) -> int:
    """Write an XLSX workbook of one sheet; every cell is stored as text, never a formula.

    XML cannot hold most control characters: they are dropped.
    """
    openpyxl = _openpyxl()
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("crmkit")

    def cell(value: object) -> Any:
        text = ILLEGAL_CHARACTERS_RE.sub("", str(value))
        made = WriteOnlyCell(sheet, value=text)
        made.data_type = "s"  # "=1+1" stays text: openpyxl would store a formula
        return made

    sheet.append([cell(c) for c in columns])
    count = 0
    for row in rows:
        sheet.append([cell(c) for c in row])
        count += 1
    book.save(path)
    return count


def _xlsx_text(value: object) -> str:
    """A spreadsheet cell's value as the text a CSV file would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(Decimal(repr(value)).normalize()) if math.isfinite(value) else ""
    return str(value)


def read_xlsx(path: Path, options: ReadOptions) -> Iterator[SourceRow | MalformedRow]:
    """The records of the first sheet of an XLSX workbook (streamed, read-only)."""
    openpyxl = _openpyxl()
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl errors alike
        raise ValidationError(
            "path", f"is not an XLSX workbook: {exc}", code="file", value=str(path)
        ) from None
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = [_xlsx_text(h).strip() for h in next(rows, ())]
        if not any(header):
            raise ValidationError("header", "the sheet has no header row", code="header")
        for number, values in enumerate(rows, start=2):
            cells = [_xlsx_text(v) for v in values]
            if not any(c.strip() for c in cells):
                continue
            cells += [""] * (len(header) - len(cells))
            yield number, dict(zip(header, cells, strict=False))
    except (ValidationError, GeneratorExit):
        raise
    except Exception as exc:  # a damaged workbook: zipfile, XML and openpyxl errors alike
        raise ValidationError(
            "path", f"is not a readable XLSX workbook: {exc}", code="file", value=str(path)
        ) from None
    finally:
        book.close()


#: Comma- (or semicolon-) separated values, text cells.
CSV: Final = FileFormat(
    key="csv", label="CSV", extensions=(".csv", ".txt"), read=read_csv, write=write_csv
)
#: JSON Lines: one JSON object per line, JSON-typed cells.
JSONL: Final = FileFormat(
    key="jsonl",
    label="JSON Lines",
    extensions=(".jsonl", ".ndjson"),
    read=read_jsonl,
    write=write_jsonl,
    text_cells=False,
    spreadsheet=False,
)
#: Excel workbooks (needs the ``xlsx`` extra: openpyxl).
XLSX: Final = FileFormat(
    key="xlsx", label="Excel (XLSX)", extensions=(".xlsx",), read=read_xlsx, write=write_xlsx
)


@hookimpl
def crmkit_register_formats(crm: CRM) -> list[FileFormat]:
    """CSV, JSON Lines and XLSX."""
    return [CSV, JSONL, XLSX]
