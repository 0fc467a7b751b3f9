"""Money and datetimes round-trip exactly through SQLite and PostgreSQL.

Money is stored as integer minor units + currency; datetimes as UTC.  The
columns and codecs are the ones the entity tables use.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit import Money
from crmkit.app import database_url
from crmkit.stores.schema import UtcDateTime, decode_money, encode_money, money_columns

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
CURRENCIES = ["JPY", "CLP", "EUR", "USD", "GBP", "BHD", "KWD", "JOD"]  # 0, 2 and 3 digits


@st.composite
def money(draw: st.DrawFn) -> Money:
    currency = draw(st.sampled_from(CURRENCIES))
    exponent = Money.zero(currency).exponent
    units = draw(st.integers(min_value=-(10**15), max_value=10**15))
    return Money(Decimal(units).scaleb(-exponent), currency)


aware_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    ),
)


@pytest.fixture(params=SQL_BACKENDS)
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[sa.Engine, sa.Table]]:
    """A scratch table with crmkit's money and datetime columns on each SQL backend."""
    if request.param == "sqlite":
        url = database_url(tmp_path / "rt.db")
    else:
        url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    md = sa.MetaData()
    table = sa.Table(
        "roundtrip",
        md,
        sa.Column("id", sa.Integer(), primary_key=True),
        *money_columns("amount"),
        sa.Column("at", UtcDateTime()),
    )
    md.create_all(engine)
    yield engine, table
    engine.dispose()


def test_money_and_datetimes_round_trip_exactly(table: tuple[sa.Engine, sa.Table]) -> None:
    """10,000 random amounts (0, 2, 3 decimals) and aware datetimes come back equal."""
    engine, tbl = table
    rows: list[tuple[Money, datetime]] = []

    # 100 examples of 100 pairs: 10,000 random values without paying
    # Hypothesis's per-example overhead 10,000 times
    @settings(
        max_examples=100,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.large_base_example, HealthCheck.too_slow],
    )
    @given(pairs=st.lists(st.tuples(money(), aware_datetimes), min_size=100, max_size=100))
    def collect(pairs: list[tuple[Money, datetime]]) -> None:
        rows.extend(pairs)

    collect()
    assert 10_000 == len(rows)
    params: list[dict[str, Any]] = []
    for i, (value, at) in enumerate(rows):
        minor, currency = encode_money(value)
        params.append({"id": i, "amount_minor": minor, "amount_currency": currency, "at": at})
    with engine.begin() as conn:
        conn.execute(tbl.insert(), params)
        back = conn.execute(sa.select(tbl).order_by(tbl.c.id)).all()
    assert len(rows) == len(back)
    for (value, at), row in zip(rows, back, strict=True):
        restored = decode_money(row.amount_minor, row.amount_currency)
        assert value == restored
        assert restored is not None
        assert value.amount.as_tuple() == restored.amount.as_tuple()
        assert at == row.at  # the same instant
        assert UTC == row.at.tzinfo  # read back in UTC
        assert at.astimezone(UTC).replace(tzinfo=None) == row.at.replace(tzinfo=None)
