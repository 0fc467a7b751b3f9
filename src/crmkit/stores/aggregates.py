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


def _key(conn: Connection, by: Dimension | None, day: Any) -> Any:
    if by is None:
        return sa.null()
    if by in _PERIODS:
        return _text(conn, day, 7)
    return _COLUMNS[by]


def _grouped(by: Dimension | None, key: Any) -> list[Any]:
    return [] if by is None else [key]


def _source(by: Dimension | None) -> Any:
    if by is Dimension.ZONE:
        return _OPP.outerjoin(_ORG, _OPP.c.organization_id == _ORG.c.id)
    return _OPP


def _raw_key(value: object) -> str | None:
    return None if value is None else str(value)


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
    key = _key(conn, query.by, _OPP.c.expected_close).label("k")
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
                key,
                sa.func.count(),
                sa.func.count(_OPP.c.amount_minor),
                sa.func.sum(_OPP.c.amount_minor),
                sa.func.sum(_weighted(dict(query.probabilities), query.scale)),
            )
            .select_from(_source(query.by))
            .where(*where, summable)
            .group_by(*_grouped(query.by, key))
        )
        try:
            rows: Sequence[Any] = conn.execute(stmt).all()
        except sa.exc.OperationalError as error:
            if "overflow" in str(error.orig):
                return None
            raise
        sums = [
            OpenSum(
                key=_raw_key(k),
                count=count,
                unvalued=count - valued,
                value_minor=_int(value),
                weighted_minor=_int(weighted),
            )
            for k, count, valued, value, weighted in rows
        ]
    stmt = (
        sa.select(
            key,
            _OPP.c.amount_currency,
            _OPP.c.amount_minor,
            _OPP.c.probability,
            sa.func.count(),
        )
        .select_from(_source(query.by))
        .where(*where, sa.not_(summable))
        .group_by(
            *_grouped(query.by, key),
            _OPP.c.amount_currency,
            _OPP.c.amount_minor,
            _OPP.c.probability,
        )
    )
    items = [
        OpenItems(
            key=_raw_key(k), currency=currency, amount_minor=minor, probability=p, count=count
        )
        for k, currency, minor, p, count in conn.execute(stmt)
    ]
    return OpenGroups(sums=tuple(sums), items=tuple(items))


def closed_deal_groups(conn: Connection, query: ClosedDealsQuery) -> ClosedGroups | None:
    """The summed and itemized groups of the won and lost deals (``None``: the sums overflow)."""
    key = _key(conn, query.by, _OPP.c.closed_at).label("k")
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
            key,
            _OPP.c.status,
            _OPP.c.close_reason_id,
            sa.func.count(),
            sa.func.sum(_OPP.c.amount_minor),
        )
        .select_from(_source(query.by))
        .where(*where, ours)
        .group_by(*_grouped(query.by, key), _OPP.c.status, _OPP.c.close_reason_id)
    )
    try:
        rows: Sequence[Any] = conn.execute(stmt).all()
    except sa.exc.OperationalError as error:
        if "overflow" in str(error.orig):
            return None
        raise
    sums = [
        ClosedSum(
            key=_raw_key(k),
            won=status == won,
            reason_id=None if reason is None else LossReasonId(reason),
            count=count,
            value_minor=_int(value),
        )
        for k, status, reason, count, value in rows
    ]
    day = _text(conn, _OPP.c.closed_at, 10).label("day")
    stmt = (
        sa.select(
            key,
            _OPP.c.status,
            _OPP.c.close_reason_id,
            _OPP.c.amount_currency,
            _OPP.c.amount_minor,
            day,
            sa.func.count(),
        )
        .select_from(_source(query.by))
        .where(*where, sa.not_(ours))
        .group_by(
            *_grouped(query.by, key),
            _OPP.c.status,
            _OPP.c.close_reason_id,
            _OPP.c.amount_currency,
            _OPP.c.amount_minor,
            day,
        )
    )
    items = [
        ClosedItems(
            key=_raw_key(k),
            won=status == won,
            reason_id=None if reason is None else LossReasonId(reason),
            currency=currency,
            amount_minor=minor,
            day=date.fromisoformat(text),
            count=count,
        )
        for k, status, reason, currency, minor, text, count in conn.execute(stmt)
    ]
    return ClosedGroups(sums=tuple(sums), items=tuple(items))
