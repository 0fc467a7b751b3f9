"""Analytics pushdown for ``SqlStore``: the grouped figures in one ``GROUP BY`` each.

The queries answer :class:`~crmkit.core.pushdown.OpenDealsQuery` and
:class:`~crmkit.core.pushdown.ClosedDealsQuery` on SQLite and PostgreSQL.
Money stays in integer minor units; each weighted amount is rounded to minor
units half to even in integer arithmetic (``|amount| x numerator`` fits 64
bits: amounts are at most 10^15 minor units and numerators at most 1,000), so
the sums are exact.  See :mod:`crmkit.core.pushdown` for the split between
summed and itemized deals.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crmkit.core.analytics import Dimension
from crmkit.core.entities import Organization
from crmkit.core.ids import LossReasonId
from crmkit.core.opportunities import Opportunity
from crmkit.core.pipelines import StageKind
from crmkit.core.pushdown import (
    ClosedDealsQuery,
    ClosedGroups,
    ClosedItems,
    ClosedSum,
    OpenDealsQuery,
    OpenGroups,
    OpenItems,
    OpenSum,
)
from crmkit.stores.schema import TABLES

__all__ = [
    "closed_deal_groups",
    "last_opportunity_change",
    "open_deal_groups",
    "opportunity_stages",
]

_OPP = TABLES[Opportunity]
_ORG = TABLES[Organization]
_PERIODS = frozenset({Dimension.MONTH, Dimension.QUARTER, Dimension.YEAR})
_COLUMNS = {
    Dimension.STAGE: _OPP.c.stage,
    Dimension.PIPELINE: _OPP.c.pipeline,
    Dimension.OWNER: _OPP.c.owner_id,
    Dimension.SOURCE: _OPP.c.source_id,
    Dimension.CAMPAIGN: _OPP.c.campaign_id,
    Dimension.ZONE: _ORG.c.zone_id,
}


def last_opportunity_change(conn: Connection) -> datetime | None:
    """The latest ``updated_at`` of any opportunity (an indexed ``MAX``)."""
    value: Any = conn.scalar(sa.select(sa.func.max(_OPP.c.updated_at)))
    if isinstance(value, str):  # SQLite gives MAX() of the stored text back untyped
        value = datetime.fromisoformat(value)
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def opportunity_stages(conn: Connection, *, archived: bool | None = None) -> set[tuple[str, str]]:
    """Every distinct (pipeline, stage) of the stored opportunities (``archived`` filters)."""
    stmt = sa.select(_OPP.c.pipeline, _OPP.c.stage).distinct()
    if archived is not None:
        stmt = stmt.where(_OPP.c.archived.is_(archived))
    return {(p, s) for p, s in conn.execute(stmt)}


def _text(conn: Connection, column: Any, length: int) -> Any:
    """The first ``length`` characters of a date or UTC time as ISO text (``YYYY-MM[-DD]``)."""
    if conn.dialect.name == "sqlite":  # stored as ISO text already
        return sa.func.substr(column, 1, length)
    return sa.func.to_char(column, "YYYY-MM-DD"[:length])


def _keys(conn: Connection, dimensions: tuple[Dimension, ...], day: Any) -> list[Any]:
    """One labelled column per dimension (periods: the ``YYYY-MM`` month of ``day``)."""
    return [
        (_text(conn, day, 7) if by in _PERIODS else _COLUMNS[by]).label(f"k{i}")
        for i, by in enumerate(dimensions)
    ]


def _source(dimensions: tuple[Dimension, ...]) -> Any:
    if Dimension.ZONE in dimensions:
        return _OPP.outerjoin(_ORG, _OPP.c.organization_id == _ORG.c.id)
    return _OPP


def _raw_keys(values: Sequence[object]) -> tuple[str | None, ...]:
    return tuple(None if value is None else str(value) for value in values)


def _literal(number: int) -> Any:
    return sa.literal_column(str(int(number)), sa.BigInteger)


def _weighted(probabilities: dict[str, int], scale: int) -> Any:
    """``amount x probability`` in minor units, rounded half to even, in integers."""
    amount = _OPP.c.amount_minor
    numerator = sa.case(
        *((_OPP.c.probability == text, _literal(n)) for text, n in probabilities.items()),
        else_=sa.null(),
    )
    product = sa.func.abs(amount) * numerator
    d = _literal(scale)
    quotient = product.op("/")(d)
    twice = (product - quotient * d) * _literal(2)
    odd = quotient - (quotient.op("/")(_literal(2))) * _literal(2)
    rounded = quotient + sa.case(
        (twice > d, _literal(1)),
        (sa.and_(twice == d, odd == _literal(1)), _literal(1)),
        else_=_literal(0),
    )
    return sa.case((amount < _literal(0), -rounded), else_=rounded)


def _int(value: object) -> int:
    return 0 if value is None else int(value)  # type: ignore[call-overload]


def open_deal_groups(conn: Connection, query: OpenDealsQuery) -> OpenGroups | None:
    """The summed and itemized groups of the open deals (``None``: the sums overflow)."""
    keys = _keys(conn, query.dimensions, _OPP.c.expected_close)
    n = len(keys)
    where: list[Any] = [
        _OPP.c.archived.is_(False),
        _OPP.c.status.in_([s.value for s in query.statuses]),
    ]
    if query.pipeline is not None:
        where.append(_OPP.c.pipeline == query.pipeline)
    texts = sorted(query.probabilities)
    ours = sa.or_(_OPP.c.amount_currency == query.currency, _OPP.c.amount_currency.is_(None))
    summable = sa.and_(ours, _OPP.c.probability.in_(texts)) if texts else sa.false()
    sums: list[OpenSum] = []
    if texts:
        stmt = (
            sa.select(
                *keys,
                sa.func.count(),
                sa.func.count(_OPP.c.amount_minor),
                sa.func.sum(_OPP.c.amount_minor),
                sa.func.sum(_weighted(dict(query.probabilities), query.scale)),
            )
            .select_from(_source(query.dimensions))
            .where(*where, summable)
            .group_by(*keys)
        )
        try:
            rows: Sequence[Any] = conn.execute(stmt).all()
        except sa.exc.OperationalError as error:
            if "overflow" in str(error.orig):
                return None
            raise
        sums = [
            OpenSum(
                keys=_raw_keys(row[:n]),
                count=row[n],
                unvalued=row[n] - row[n + 1],
                value_minor=_int(row[n + 2]),
                weighted_minor=_int(row[n + 3]),
            )
            for row in rows
        ]
    stmt = (
        sa.select(
            *keys,
            _OPP.c.amount_currency,
            _OPP.c.amount_minor,
            _OPP.c.probability,
            sa.func.count(),
        )
        .select_from(_source(query.dimensions))
        .where(*where, sa.not_(summable))
        .group_by(
            *keys,
            _OPP.c.amount_currency,
            _OPP.c.amount_minor,
            _OPP.c.probability,
        )
    )
    items = [
        OpenItems(
            keys=_raw_keys(row[:n]),
            currency=row[n],
            amount_minor=row[n + 1],
            probability=row[n + 2],
            count=row[n + 3],
        )
        for row in conn.execute(stmt)
    ]
    return OpenGroups(sums=tuple(sums), items=tuple(items))


def closed_deal_groups(conn: Connection, query: ClosedDealsQuery) -> ClosedGroups | None:
    """The summed and itemized groups of the won and lost deals (``None``: the sums overflow)."""
    keys = _keys(conn, query.dimensions, _OPP.c.closed_at)
    n = len(keys)
    where: list[Any] = [
        _OPP.c.archived.is_(False),
        _OPP.c.status.in_([StageKind.WON.value, StageKind.LOST.value]),
    ]
    if query.pipeline is not None:
        where.append(_OPP.c.pipeline == query.pipeline)
    if query.since is not None:
        where.append(_OPP.c.closed_at >= query.since)
    ours = sa.or_(_OPP.c.amount_currency == query.currency, _OPP.c.amount_currency.is_(None))
    won = StageKind.WON.value
    stmt = (
        sa.select(
            *keys,
            _OPP.c.status,
            _OPP.c.close_reason_id,
            sa.func.count(),
            sa.func.sum(_OPP.c.amount_minor),
        )
        .select_from(_source(query.dimensions))
        .where(*where, ours)
        .group_by(*keys, _OPP.c.status, _OPP.c.close_reason_id)
    )
    try:
        rows: Sequence[Any] = conn.execute(stmt).all()
    except sa.exc.OperationalError as error:
        if "overflow" in str(error.orig):
            return None
        raise
    sums = [
        ClosedSum(
            keys=_raw_keys(row[:n]),
            won=row[n] == won,
            reason_id=None if row[n + 1] is None else LossReasonId(row[n + 1]),
            count=row[n + 2],
            value_minor=_int(row[n + 3]),
        )
        for row in rows
    ]
    day = _text(conn, _OPP.c.closed_at, 10).label("day")
    stmt = (
        sa.select(
            *keys,
            _OPP.c.status,
            _OPP.c.close_reason_id,
            _OPP.c.amount_currency,
            _OPP.c.amount_minor,
            day,
            sa.func.count(),
        )
        .select_from(_source(query.dimensions))
        .where(*where, sa.not_(ours))
        .group_by(
            *keys,
            _OPP.c.status,
            _OPP.c.close_reason_id,
            _OPP.c.amount_currency,
            _OPP.c.amount_minor,
            day,
        )
    )
    items = [
        ClosedItems(
            keys=_raw_keys(row[:n]),
            won=row[n] == won,
            reason_id=None if row[n + 1] is None else LossReasonId(row[n + 1]),
            currency=row[n + 2],
            amount_minor=row[n + 3],
            day=date.fromisoformat(row[n + 4]),
            count=row[n + 5],
        )
        for row in conn.execute(stmt)
    ]
    return ClosedGroups(sums=tuple(sums), items=tuple(items))
