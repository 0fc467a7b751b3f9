"""Tabular results: plain cells, escaped HTML and DataFrames with exact money."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from attrs import frozen

from crmkit.core.analytics import WaterfallStep
from crmkit.core.money import Money
from crmkit.core.tables import Table, Tabular, cell


@frozen
class Report(Tabular):
    """A tabular result with one row per (name, amount)."""

    items: tuple[tuple[str, Money | None], ...]

    def table(self) -> Table:
        return Table.of(
            "Amounts <by name>",
            ("name", "amount", "currency"),
            ((name, amount, "EUR") for name, amount in self.items),
            (("total", sum((a for _, a in self.items if a), Money.zero("EUR"))),),
        )


def test_cells_are_plain_values() -> None:
    """Money becomes its exact amount, ids text, enums their value; other objects are refused."""
    uid = UUID(int=7)
    assert [Decimal("1.10"), str(uid), "won", None, 3] == [
        cell(Money("1.10", "EUR")),
        cell(uid),
        cell(WaterfallStep.WON),
        cell(None),
        cell(3),
    ]
    with pytest.raises(TypeError):
        cell(object())


def test_a_row_of_the_wrong_length_is_refused() -> None:
    """Table.of checks every row against the columns."""
    with pytest.raises(ValueError, match="2 cells"):
        Table.of("t", ("a",), ((1, 2),))


def test_html_escapes_every_value() -> None:
    """Titles, notes and cells are escaped: user data never becomes markup."""
    report = Report(items=(("<script>alert(1)</script>", Money("5", "EUR")), ("b", None)))

    markup = report._repr_html_()

    assert "<script>" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "Amounts &lt;by name&gt;" in markup
    assert "<li>total: 5.00</li>" in markup
    assert markup.count("<tr>") == 3  # the header and two rows


def test_to_pandas_keeps_money_exact_and_types_times() -> None:
    """Decimal amounts stay Decimal; datetimes are UTC; durations are timedelta64."""

    @frozen
    class Times(Tabular):
        def table(self) -> Table:
            return Table.of(
                "times",
                ("at", "took", "amount"),
                ((datetime(2027, 1, 1, tzinfo=UTC), timedelta(days=2), Money("0.10", "EUR")),),
            )

    frame = Times().to_pandas()

    assert ["at", "took", "amount"] == list(frame.columns)
    assert "UTC" == str(frame["at"].dt.tz)
    assert timedelta(days=2) == frame["took"][0]
    assert str(frame["took"].dtype).startswith("timedelta64")
    assert Decimal("0.10") == frame["amount"][0]


def test_an_empty_result_has_its_columns() -> None:
    """No rows still gives a DataFrame with the table's columns."""
    frame = Report(items=()).to_pandas()
    assert (0, ["name", "amount", "currency"]) == (len(frame), list(frame.columns))


def test_importing_crmkit_loads_neither_pandas_nor_matplotlib() -> None:
    """The optional extras are imported only when a DataFrame or a chart is asked for."""
    code = (
        "import sys, crmkit, crmkit.core.analytics, crmkit.core.tables;"
        "print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "[]" == result.stdout.strip()
