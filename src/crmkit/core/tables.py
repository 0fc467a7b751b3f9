"""Results that are tables: plain columns and rows, an HTML table for Jupyter, a DataFrame.

Every analytics result (a pipeline report, a funnel, a win rate...) inherits
:class:`Tabular` and says, in one method, which table it is
(:meth:`Tabular.table`): a title, a few summary figures, column names and rows
of plain values.  From that one table it gets

- ``_repr_html_()``: an escaped HTML table, which Jupyter shows in place of
  the repr (built with the standard library only);
- ``to_pandas()``: the rows as a :class:`pandas.DataFrame` (pandas is an
  optional extra, imported only when called; without it the call raises
  :class:`ImportError` naming the extra).

The cells follow the conventions of :mod:`crmkit.frames`: money is an exact
:class:`~decimal.Decimal` plus a currency column (a report is in one currency,
so it has a single ``currency`` column), ids are strings, enums their values,
datetimes timezone-aware (UTC in the DataFrame), durations
:class:`~datetime.timedelta`.

To make a new result tabular, inherit :class:`Tabular` (before ``attrs``
decorates the class) and write ``table()``::

    @frozen(kw_only=True)
    class Attainment(Tabular):
        rows: tuple[AttainmentRow, ...]

        def table(self) -> Table:
            return Table.of(
                "Target attainment",
                ("owner", "won", "target", "currency"),
                ((r.owner, r.won, r.target, r.currency) for r in self.rows),
            )

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
import html
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TypeAlias
from uuid import UUID

from attrs import frozen

from crmkit.core.money import Money

if TYPE_CHECKING:
    import pandas

__all__ = ["Cell", "Table", "Tabular", "cell"]

#: A plain value of a table: what pandas, CSV, JSON and HTML can all show.
Cell: TypeAlias = str | int | bool | Decimal | date | datetime | timedelta | None


def cell(value: object) -> Cell:
    """``value`` as a plain cell: ids as text, enums by value, money as its exact amount.

    Raises:
        TypeError: a value a table cannot hold (a bug in a ``table()``).
    """
    if value is None or isinstance(value, str | int | bool | Decimal | date | datetime | timedelta):
        return value
    if isinstance(value, Money):
        return value.amount
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return cell(value.value)
    raise TypeError(f"a table cell cannot hold {type(value).__name__}")


@frozen(kw_only=True)
class Table:
    """A result as a table of plain values.

    Attributes:
        title: what the table shows.
        columns: the column names.
        rows: one tuple of cells per row, in column order.
        notes: summary figures shown above the table (``(label, value)``).
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[tuple[str, Cell], ...] = ()

    @classmethod
    def of(
        cls,
        title: str,
        columns: Iterable[str],
        rows: Iterable[Iterable[object]],
        notes: Iterable[tuple[str, object]] = (),
    ) -> Table:
        """A table whose cells are made plain with :func:`cell`.

        Raises:
            ValueError: a row with another number of cells than columns.
        """
        names = tuple(columns)
        plain = tuple(tuple(cell(value) for value in row) for row in rows)
        for row in plain:
            if len(row) != len(names):
                raise ValueError(f"a row of {len(row)} cells in a table of {len(names)} columns")
        return cls(
            title=title,
            columns=names,
            rows=plain,
            notes=tuple((label, cell(value)) for label, value in notes),
        )

    def records(self) -> list[dict[str, Cell]]:
        """The rows as dictionaries by column name (for JSON)."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def text(value: Cell) -> str:
    """How a cell reads in HTML, CSV and the terminal: empty for ``None``, ISO 8601 dates."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class Tabular:
    """A mixin for results that are tables: ``_repr_html_()`` and ``to_pandas()``.

    Subclasses write :meth:`table`; nothing else.
    """

    __slots__ = ()

    def table(self) -> Table:
        """This result as a :class:`Table` of plain values."""
        raise NotImplementedError

    def _repr_html_(self) -> str:
        """An HTML table (Jupyter shows it); every value is escaped."""
        table = self.table()
        parts = [f'<div class="crmkit-table"><strong>{html.escape(table.title)}</strong>']
        if table.notes:
            items = "".join(
                f"<li>{html.escape(label)}: {html.escape(text(value))}</li>"
                for label, value in table.notes
            )
            parts.append(f"<ul>{items}</ul>")
        head = "".join(f"<th>{html.escape(name)}</th>" for name in table.columns)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>")
        for row in table.rows:
            cells = "".join(
                f'<td style="text-align: right">{html.escape(text(value))}</td>'
                if isinstance(value, int | Decimal | timedelta) and not isinstance(value, bool)
                else f"<td>{html.escape(text(value))}</td>"
                for value in row
            )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</tbody></table></div>")
        return "".join(parts)

    def to_pandas(self) -> pandas.DataFrame:
        """The table's rows as a :class:`pandas.DataFrame`, one column per table column.

        Money columns hold exact ``Decimal`` amounts (the currency is in the
        ``currency`` column); datetimes are in UTC; durations are
        ``timedelta64``.

        Raises:
            ImportError: pandas is not installed (``pip install "crmkit[pandas]"``).
        """
        return frame(self.table())


def frame(table: Table) -> pandas.DataFrame:
    """``table`` as a DataFrame (see :meth:`Tabular.to_pandas`).

    Raises:
        ImportError: pandas is not installed.
    """
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - the dev install has pandas
        raise ImportError(
            'to_pandas() needs pandas: pip install "crmkit[pandas]"', name="pandas"
        ) from error
    columns: dict[str, list[Cell]] = {
        name: [row[i] for row in table.rows] for i, name in enumerate(table.columns)
    }
    result = pd.DataFrame(columns, columns=list(table.columns))
    for name, values in columns.items():
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, datetime) for v in present):
            result[name] = pd.to_datetime(result[name], utc=True)
        elif present and all(isinstance(v, timedelta) for v in present):
            result[name] = pd.to_timedelta(result[name])
    return result
