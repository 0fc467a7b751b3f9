"""File formats for import and export: what a plugin registers to add one.

A :class:`FileFormat` names a format (``"csv"``), the file extensions it
claims, and up to two functions: ``read`` streams the rows of a file, and
``write`` writes rows to one.  crmkit's CSV, JSON Lines and XLSX formats are
registered through ``crmkit_register_formats`` like any plugin's.

A reader yields one :data:`SourceRow` per record: the 1-based line of the file
where the record starts and its cells by column name.  Text formats (CSV)
give ``str`` cells; structured ones (JSON Lines) may give any JSON value.  A
row the reader cannot parse is a :class:`MalformedRow` instead, so the import
reports it and goes on with the next one.

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final, Protocol

from attrs import field, frozen

from crmkit.core.errors import ValidationError

__all__ = [
    "FileFormat",
    "MalformedRow",
    "ReadOptions",
    "Reader",
    "SourceRow",
    "WriteOptions",
    "Writer",
]

#: What a format's key looks like (``"csv"``, ``"jsonl"``).
FORMAT_KEY_RE: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@frozen(kw_only=True)
class ReadOptions:
    """How to read a file.

    Attributes:
        encoding: the text encoding; ``None`` sniffs it: UTF-8 (with or
            without a byte-order mark), else Latin-1.
        delimiter: the CSV cell separator; ``None`` sniffs ``,``, ``;`` or a
            tab from the header line.
    """

    encoding: str | None = None
    delimiter: str | None = None


@frozen(kw_only=True)
class WriteOptions:
    """How to write a file.

    Attributes:
        encoding: the text encoding (``"utf-8"``; ``"utf-8-sig"`` adds the
            byte-order mark spreadsheets look for).
        delimiter: the CSV cell separator.
    """

    encoding: str = "utf-8"
    delimiter: str = ","


@frozen
class MalformedRow:
    """A record a reader could not parse (bad JSON, a ragged CSV line).

    Attributes:
        line: the 1-based line where it starts.
        reason: what is wrong, as a sentence.
    """

    line: int
    reason: str


#: One record of a file: its 1-based line and its cells by column name.
SourceRow = tuple[int, Mapping[str, object]]


class Reader(Protocol):
    """Streams the rows of a file; never loads the whole file."""

    def __call__(self, path: Path, options: ReadOptions) -> Iterator[SourceRow | MalformedRow]:
        """Yield every record of ``path`` in order.

        Raises:
            ValidationError: the file as a whole cannot be read (encoding,
                no header).
        """
        ...  # pragma: no cover


class Writer(Protocol):
    """Writes rows to a file."""

    def __call__(
        self,
        path: Path,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        options: WriteOptions,
    ) -> int:
        """Write a header of ``columns`` then every row (one cell per column).

        Returns:
            How many rows were written.
        """
        ...  # pragma: no cover


def _format_key(value: object) -> str:
    if not isinstance(value, str) or not FORMAT_KEY_RE.match(value):
        raise ValidationError(
            "key", "must be a lowercase format name such as 'csv'", code="key", value=value
        )
    return value


def _extensions(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError("extensions", "must be a list of extensions", code="type")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not re.fullmatch(r"\.[a-z0-9]{1,10}", item):
            raise ValidationError(
                "extensions", "each must look like '.csv'", code="invalid", value=item
            )
    return items


@frozen(kw_only=True)
class FileFormat:
    """A file format crmkit can import from or export to.

    Attributes:
        key: its name in the API and the command (``"csv"``).
        label: a human name (``"CSV"``).
        extensions: the file extensions it claims (``(".csv",)``), used to
            pick a format from a file name.
        read: streams a file's rows (``None``: export only).
        write: writes rows to a file (``None``: import only).
        text_cells: cells are text (CSV, XLSX): values are written as text
            (lists joined by ``|``, money as ``"12.50 EUR"``) and read back
            from it; ``False`` for JSON formats, whose cells keep JSON types.
        spreadsheet: spreadsheets open these files, so exports escape cells
            that would run as formulas unless asked for a lossless file.

    .. versionadded:: 0.1
    """

    key: str = field(converter=_format_key)
    label: str
    extensions: tuple[str, ...] = field(converter=_extensions)
    read: Reader | None = None
    write: Writer | None = None
    text_cells: bool = True
    spreadsheet: bool = True

    def __attrs_post_init__(self) -> None:
        if self.read is None and self.write is None:
            raise ValidationError(
                "read", "a format needs a reader, a writer or both", code="required"
            )
        for name in ("read", "write"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ValidationError(name, "must be callable", code="type", value=value)
