"""Cells read as their column's type, and lists written so they read back."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit import Money, ValidationError
from crmkit.io.columns import OMIT, Column, Kind, ReadContext, join_list, read_cell, split_list

TEXT = ReadContext()
SPANISH = ReadContext(
    decimal_comma=True,
    date_format="%d/%m/%Y",
    currency="EUR",
    timezone=zoneinfo.ZoneInfo("Europe/Madrid"),
)


def column(kind: Kind, empty: object = None) -> Column:
    return Column("x", kind, "x", empty=empty)


@pytest.mark.parametrize(
    ("kind", "cell", "ctx", "expected"),
    [
        (Kind.TEXT, "  Acme  ", TEXT, "  Acme  "),
        (Kind.INTEGER, " 42 ", TEXT, 42),
        (Kind.INTEGER, 7, TEXT, 7),
        (Kind.BOOLEAN, "Sí", TEXT, True),
        (Kind.BOOLEAN, "NO", TEXT, False),
        (Kind.BOOLEAN, False, TEXT, False),
        (Kind.DECIMAL, "1234.5", TEXT, Decimal("1234.5")),
        (Kind.DECIMAL, "1.234,5", SPANISH, Decimal("1234.5")),
        (Kind.DECIMAL, "-0,25", SPANISH, Decimal("-0.25")),
        (Kind.MONEY, "12000.50 EUR", TEXT, Money("12000.50", "EUR")),
        (Kind.MONEY, "usd 3", TEXT, Money("3", "USD")),
        (Kind.MONEY, "12.000,50 €", SPANISH, Money("12000.50", "EUR")),
        (Kind.MONEY, "99,90", SPANISH, Money("99.90", "EUR")),
        (Kind.MONEY, {"amount": "1.5", "currency": "EUR"}, TEXT, Money("1.5", "EUR")),
        (Kind.DATE, "2026-03-31", SPANISH, date(2026, 3, 31)),
        (Kind.DATE, "31/03/2026", SPANISH, date(2026, 3, 31)),
        (Kind.DATETIME, "2026-01-02T10:00:00+01:00", TEXT, datetime(2026, 1, 2, 9, tzinfo=UTC)),
        (Kind.DATETIME, "2026-07-01 10:00", SPANISH, datetime(2026, 7, 1, 8, tzinfo=UTC)),
        (Kind.LIST, "a|b\\|c| |d", TEXT, ("a", "b|c", "d")),
        (Kind.LIST, ["a", "b"], TEXT, ("a", "b")),
        (Kind.JSON, '[{"city": "Madrid"}]', TEXT, [{"city": "Madrid"}]),
        (
            Kind.UUID,
            "01a20b04-ab54-71ca-9433-32a30c836975",
            TEXT,
            UUID(int=0x01A20B04AB5471CA943332A30C836975),
        ),
        (Kind.RECORD, "A-1", TEXT, "A-1"),
        (Kind.MASTER, "retail", TEXT, "retail"),
    ],
)
def test_a_cell_reads_as_its_columns_type(
    kind: Kind, cell: object, ctx: ReadContext, expected: object
) -> None:
    assert expected == read_cell(column(kind), cell, ctx)


@pytest.mark.parametrize(
    ("kind", "cell", "ctx", "code"),
    [
        (Kind.TEXT, 12, TEXT, "type"),
        (Kind.INTEGER, "4.5", TEXT, "integer"),
        (Kind.BOOLEAN, "quizás", TEXT, "boolean"),
        (Kind.DECIMAL, "1,5", TEXT, "decimal"),
        (Kind.DECIMAL, "NaN", TEXT, "decimal"),
        (Kind.MONEY, "12", TEXT, "currency"),
        (Kind.MONEY, "doce euros", TEXT, "money"),
        (Kind.MONEY, "12 XXZ", TEXT, "currency"),
        (Kind.MONEY, 12, TEXT, "type"),
        (Kind.DATE, "31/03/2026", TEXT, "date"),
        (Kind.DATE, "31/02/2026", SPANISH, "date"),
        (Kind.DATETIME, "ayer", TEXT, "datetime"),
        (Kind.LIST, 3, TEXT, "type"),
        (Kind.JSON, "{not json", TEXT, "json"),
        (Kind.UUID, "not-a-uuid", TEXT, "uuid"),
        (Kind.RECORD, 3, TEXT, "type"),
    ],
)
def test_a_cell_that_is_not_its_columns_type_is_refused(
    kind: Kind, cell: object, ctx: ReadContext, code: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        read_cell(column(kind), cell, ctx)

    assert code == caught.value.code


def test_an_empty_cell_gives_the_columns_empty_value() -> None:
    """Empty text, blanks and null give None, an empty tuple or OMIT, as the column says."""
    assert [None, (), OMIT] == [
        read_cell(column(Kind.TEXT), "", TEXT),
        read_cell(column(Kind.LIST, ()), "   ", TEXT),
        read_cell(column(Kind.TEXT, OMIT), None, TEXT),
    ]


def test_an_escaped_formula_is_read_back_unless_asked_not_to() -> None:
    raw = ReadContext(unescape_formulas=False)

    assert ("=1+1", "'=1+1", "'plain") == (
        read_cell(column(Kind.TEXT), "'=1+1", TEXT),
        read_cell(column(Kind.TEXT), "'=1+1", raw),
        read_cell(column(Kind.TEXT), "'plain", TEXT),
    )


@given(st.lists(st.text().map(str.strip).filter(bool)))
def test_list_cells_read_back_as_written(items: list[str]) -> None:
    """Any items, "|" and backslashes included, survive join then split."""
    assert items == split_list(join_list(items))
