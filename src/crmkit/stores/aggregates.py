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


def _numerator(query: OpenDealsQuery) -> Any:
    """A summed deal's probability numerator over ``query.scale``; NULL for an itemized deal."""
    ours = sa.or_(_OPP.c.amount_currency == query.currency, _OPP.c.amount_currency.is_(None))
    return sa.case(
        (
            ours,
            sa.case(
                *(
                    (_OPP.c.probability == text, _literal(n))
                    for text, n in query.probabilities.items()
                ),
                else_=sa.null(),
            ),
        ),
        else_=sa.null(),
    )


def _weighted(numerator: Any, scale: int) -> Any:
    """``amount x numerator / scale`` in minor units, rounded half to even, in integers."""
    amount = _OPP.c.amount_minor
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


def _rows(conn: Connection, stmt: Any) -> Sequence[Any] | None:
    """The rows of ``stmt``; ``None`` when SQLite's integer sums overflow."""
    try:
        rows: Sequence[Any] = conn.execute(stmt).all()
    except sa.exc.OperationalError as error:
        if "overflow" in str(error.orig):
            return None
        raise
    return rows


def _int(value: object) -> int:
    return 0 if value is None else int(value)  # type: ignore[call-overload]


def open_deal_groups(conn: Connection, query: OpenDealsQuery) -> OpenGroups | None:
    """The summed and itemized groups of the open deals (``None``: the sums overflow).

    One scan sums the summed deals per group and counts the others; only when
    there are others does a second query itemize them.
    """
    keys = _keys(conn, query.dimensions, _OPP.c.expected_close)
    n = len(keys)
    where: list[Any] = [
        _OPP.c.archived.is_(False),
        _OPP.c.status.in_([s.value for s in query.statuses]),
    ]
    if query.pipeline is not None:
        where.append(_OPP.c.pipeline == query.pipeline)
    numerator = _numerator(query) if query.probabilities else sa.null()
    summed_amount = sa.case((numerator.is_not(None), _OPP.c.amount_minor), else_=sa.null())
    stmt = (
        sa.select(
            *keys,
            sa.func.count(numerator),
            sa.func.count(summed_amount),
            sa.func.sum(summed_amount),
            sa.func.sum(_weighted(numerator, query.scale)),
            sa.func.count() - sa.func.count(numerator),
        )
        .select_from(_source(query.dimensions))
        .where(*where)
        .group_by(*keys)
    )
    rows = _rows(conn, stmt)
    if rows is None:
        return None
    sums = tuple(
        OpenSum(
            keys=_raw_keys(row[:n]),
            count=row[n],
            unvalued=row[n] - row[n + 1],
            value_minor=_int(row[n + 2]),
            weighted_minor=_int(row[n + 3]),
        )
        for row in rows
        if row[n]
    )
    if not any(row[n + 4] for row in rows):
        return OpenGroups(sums=sums, items=())
    itemized = (_OPP.c.amount_currency, _OPP.c.amount_minor, _OPP.c.probability)
    stmt = (
        sa.select(*keys, *itemized, sa.func.count())
        .select_from(_source(query.dimensions))
        .where(*where, numerator.is_(None))
        .group_by(*keys, *itemized)
    )
    items = tuple(
        OpenItems(
            keys=_raw_keys(row[:n]),
            currency=row[n],
            amount_minor=row[n + 1],
            probability=row[n + 2],
            count=row[n + 3],
        )
        for row in conn.execute(stmt)
    )
    return OpenGroups(sums=sums, items=items)


def closed_deal_groups(conn: Connection, query: ClosedDealsQuery) -> ClosedGroups | None:
    """The summed and itemized groups of the won and lost deals (``None``: the sums overflow).

    As :func:`open_deal_groups`: deals in other currencies are itemized by a
    second query only when the first one counted some.
    """
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
    summed = sa.case((ours, _literal(1)), else_=sa.null())
    summed_amount = sa.case((ours, _OPP.c.amount_minor), else_=sa.null())
    outcome = (_OPP.c.status, _OPP.c.close_reason_id)
    stmt = (
        sa.select(
            *keys,
            *outcome,
            sa.func.count(summed),
            sa.func.sum(summed_amount),
            sa.func.count() - sa.func.count(summed),
        )
        .select_from(_source(query.dimensions))
        .where(*where)
        .group_by(*keys, *outcome)
    )
    rows = _rows(conn, stmt)
    if rows is None:
        return None
    won = StageKind.WON.value
    sums = tuple(
        ClosedSum(
            keys=_raw_keys(row[:n]),
            won=row[n] == won,
            reason_id=None if row[n + 1] is None else LossReasonId(row[n + 1]),
            count=row[n + 2],
            value_minor=_int(row[n + 3]),
        )
        for row in rows
        if row[n + 2]
    )
    if not any(row[n + 4] for row in rows):
        return ClosedGroups(sums=sums, items=())
    day = _text(conn, _OPP.c.closed_at, 10).label("day")
    itemized = (*outcome, _OPP.c.amount_currency, _OPP.c.amount_minor, day)
    stmt = (
        sa.select(*keys, *itemized, sa.func.count())
        .select_from(_source(query.dimensions))
        .where(*where, sa.not_(ours))
        .group_by(*keys, *itemized)
    )
    items = tuple(
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
    )
    return ClosedGroups(sums=sums, items=items)
