"""What an import reports: counts and one :class:`RowError` per refused cell or row.

.. versionadded:: 0.1
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import attrs

from crmkit.io.columns import escape_formula

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["ImportMode", "ImportReport", "RowError"]

#: ``"atomic"``: any error and nothing is written; ``"partial"``: valid rows are.
ImportMode = Literal["atomic", "partial"]


@attrs.frozen
class RowError:
    """Why one row (or one of its cells) was refused.

    Attributes:
        line: the 1-based line of the file where the row starts.
        column: the file's column at fault (its header), or ``""`` for the
            row as a whole.
        code: a stable code: a :class:`~crmkit.ValidationError` code
            (``required``, ``email``, ``reference``...), ``malformed`` (the
            line could not be parsed), ``duplicate`` or ``conflict``.
        message: a sentence saying what is wrong.

    .. versionadded:: 0.1
    """

    line: int
    column: str
    code: str
    message: str


@attrs.frozen(kw_only=True)
class ImportReport:
    """The outcome of an import.

    Attributes:
        entity: what was imported (``"organizations"``).
        mode: ``"atomic"`` or ``"partial"``.
        dry_run: nothing was meant to be written.
        rows: how many records the file held (blank lines aside).
        created: records created (or that would be, in a dry run).
        updated: existing records changed (matched by ``external_ref`` or ``id``).
        unchanged: existing records the file left as they were.
        errors: every refused row or cell, in file order.
        written: whether the changes were committed (``False`` for a dry run
            and for an atomic import with errors).
        warnings: rows imported all the same, in file order: likely
            duplicates found by ``duplicate_check="warn"`` (code
            ``duplicate``).  (Added after 0.1.)

    .. versionadded:: 0.1
    """

    entity: str
    mode: ImportMode
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    errors: tuple[RowError, ...]
    written: bool
    warnings: tuple[RowError, ...] = ()

    @property
    def ok(self) -> bool:
        """No row was refused."""
        return not self.errors

    @property
    def failed_lines(self) -> list[int]:
        """The lines of the refused rows, each once, in order."""
        return sorted({e.line for e in self.errors})

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the errors as CSV (line, column, code, message), formula-safe."""
        with open(path, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "column", "code", "message"])
            for e in self.errors:
                writer.writerow(
                    [e.line, escape_formula(e.column), e.code, escape_formula(e.message)]
                )

    def table(self, *, limit: int | None = 50) -> Table:
        """The errors as a Rich table (the first ``limit`` of them; ``None``: all)."""
        from rich.table import Table
        from rich.text import Text

        shown: Sequence[RowError] = self.errors if limit is None else self.errors[:limit]
        title = f"{len(self.errors)} errors in {len(self.failed_lines)} rows"
        if len(shown) < len(self.errors):
            title += f" (first {len(shown)})"
        table = Table(title=title, title_justify="left")
        table.add_column("line", justify="right", style="bold")
        table.add_column("column")
        table.add_column("code", style="yellow")
        table.add_column("message")
        for e in shown:  # Text, not markup: messages may quote user data such as "[b]"
            table.add_row(str(e.line), Text(e.column), Text(e.code), Text(e.message))
        return table

    def summary(self) -> str:
        """One line: what was (or would be) created, updated, left unchanged, refused."""
        refused = f"{len(self.failed_lines)} rows refused"
        if self.warnings:
            refused += f", {len({w.line for w in self.warnings})} likely duplicates"
        counts = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        if self.dry_run:
            return f"{self.rows} rows (dry run, nothing written): {counts}; {refused}"
        if not self.written:
            return f"{self.rows} rows: nothing written (atomic import with errors); {refused}"
        return f"{self.rows} rows: {counts}; {refused}"
