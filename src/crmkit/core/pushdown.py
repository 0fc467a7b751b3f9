"""Grouped figures a store computes itself (pushdown), and the reports built from them.

A store that can aggregate (``SqlStore``, with ``GROUP BY``) answers an
:class:`OpenDealsQuery` or a :class:`ClosedDealsQuery` with partial sums per
group; :func:`pipeline_report` and :func:`win_rate_reports` turn them into
exactly the :class:`~crmkit.core.analytics.PipelineReport` and
:class:`~crmkit.core.analytics.WinRate` objects that
:func:`crmkit.core.analytics.pipeline` and :func:`~crmkit.core.analytics.win_rates`
return on the same book, for an ``as_of`` at or after the book's last change.

Exactness is kept by splitting the deals in two:

* **summed**: deals in the report's currency (or without an amount) whose
  probability is one of the query's ``probabilities`` (the stages' defaults,
  a few decimals each).  The store sums their minor units, and rounds each
  weighted amount (``amount x numerator / scale``) to minor units, half to
  even, in integer arithmetic, as the pure code does with ``Decimal``.
* **itemized**: every other deal (another currency, an unusual probability).
  The store groups them by group key, currency, amount, probability (and close
  day): all the deals of such a group are worth the same, so one conversion
  (at the same day's rate, with the same rounding) times the count is exact.
  A missing rate fails as in the pure code.

Group keys come back raw: stage and pipeline keys, ids as text, and
``"YYYY-MM"`` months for the period dimensions (made into fiscal quarters and
years here).

Grouped by team, a deal falls in one group per team of its owner (the store
joins each deal to the memberships of the teams not archived; a deal whose
owner is in none, or without owner, gets the key ``None``).  The groups then
count a deal several times, so the pipeline's total comes from a second
answer, to the same query without dimensions (:func:`total_query`).

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Final

import attrs
from attrs import frozen

from crmkit.core.analytics import (
    _EXACT,
    _PERIOD_OF,
    Dimension,
    GroupKey,
    PipelineReport,
    PipelineRow,
    RateFunction,
    WinRate,
    _check_aware,
    _check_dimensions,
    _currency,
    _fiscal_start,
    _group_order,
    _period,
    _report_by,
    _row_keys,
    _Valuer,
    _WinTally,
)
from crmkit.core.errors import ValidationError
from crmkit.core.ids import LossReasonId
from crmkit.core.money import Money, currency_exponent
from crmkit.core.pipelines import Pipeline, StageKind

__all__ = [
    "ClosedDealsQuery",
    "ClosedGroups",
    "ClosedItems",
    "ClosedSum",
    "OpenDealsQuery",
    "OpenGroups",
    "OpenItems",
    "OpenSum",
    "closed_deals_query",
    "open_deals_query",
    "pipeline_report",
    "total_query",
    "win_rate_reports",
]

#: Probabilities with more decimals than this are itemized, never summed by
#: the store: ``|amount| x numerator`` must fit a signed 64-bit integer
#: (amounts are at most 10^15 minor units).
MAX_SUMMED_DECIMALS: Final = 3


# ==================================================================== queries


@frozen(kw_only=True)
class OpenDealsQuery:
    """The deals still in the pipeline (not archived), grouped ``by`` one dimension.

    Attributes:
        statuses: the stage kinds that count (open, and on hold unless left out).
        dimensions: the dimensions to group by, in order (none: one group).
        pipeline: only this pipeline's deals.
        currency: the report's currency.
        probabilities: the probability texts (as stored) the store sums, each
            with its numerator over ``scale``.
        scale: a power of ten, at most ``10 ** MAX_SUMMED_DECIMALS``.
    """

    statuses: tuple[StageKind, ...]
    dimensions: tuple[Dimension, ...]
    pipeline: str | None
    currency: str
    probabilities: Mapping[str, int]
    scale: int


@frozen(kw_only=True)
class OpenSum:
    """Summed deals of one group: counts, and sums in the report's minor units.

    ``keys`` holds the raw key of each of the query's dimensions.
    """

    keys: tuple[str | None, ...]
    count: int
    unvalued: int
    value_minor: int
    weighted_minor: int


@frozen(kw_only=True)
class OpenItems:
    """``count`` deals of one group with the same amount and probability."""

    keys: tuple[str | None, ...]
    currency: str | None
    amount_minor: int | None
    probability: Decimal
    count: int


@frozen(kw_only=True)
class OpenGroups:
    """A store's answer to an :class:`OpenDealsQuery`."""

    sums: tuple[OpenSum, ...]
    items: tuple[OpenItems, ...]


@frozen(kw_only=True)
class ClosedDealsQuery:
    """The deals won or lost (not archived) closed at or after ``since``.

    Attributes:
        dimensions: the dimensions to group by (periods: of the close time's
            UTC day); none for one group.
        pipeline: only this pipeline's deals.
        currency: the report's currency: the store sums these amounts.
        since: the earliest close time, or ``None``.
    """

    dimensions: tuple[Dimension, ...]
    pipeline: str | None
    currency: str
    since: datetime | None


@frozen(kw_only=True)
class ClosedSum:
    """Won (or lost, with one reason) deals of one group in the report's currency."""

    keys: tuple[str | None, ...]
    won: bool
    reason_id: LossReasonId | None
    count: int
    value_minor: int


@frozen(kw_only=True)
class ClosedItems:
    """``count`` deals of one group, outcome and reason, same amount and close day."""

    keys: tuple[str | None, ...]
    won: bool
    reason_id: LossReasonId | None
    currency: str
    amount_minor: int
    day: date
    count: int


@frozen(kw_only=True)
class ClosedGroups:
    """A store's answer to a :class:`ClosedDealsQuery`."""

    sums: tuple[ClosedSum, ...]
    items: tuple[ClosedItems, ...]


# ============================================================ building them


def _check_pipeline(pipelines: Mapping[str, Pipeline], pipeline: str | None) -> None:
    if pipeline is not None and pipeline not in pipelines:
        raise ValidationError(
            "pipeline", "the book has no such pipeline", code="pipeline", value=pipeline
        )


def _summable(pipelines: Mapping[str, Pipeline]) -> tuple[dict[str, int], int]:
    """The stage default probabilities a store can weigh exactly, and their common scale."""
    values: dict[str, Decimal] = {}
    for pipeline_ in pipelines.values():
        for stage in pipeline_.stages:
            exponent = stage.probability.as_tuple().exponent
            assert isinstance(exponent, int)
            if -exponent <= MAX_SUMMED_DECIMALS:
                values[str(stage.probability)] = stage.probability
    decimals = max((max(0, -int(v.as_tuple().exponent)) for v in values.values()), default=0)
    scale = 10**decimals
    return {text: int(value.scaleb(decimals)) for text, value in values.items()}, scale


def open_deals_query(
    pipelines: Mapping[str, Pipeline],
    *,
    currency: str,
    by: Dimension | str | Sequence[Dimension | str] | None = None,
    pipeline: str | None = None,
    include_on_hold: bool = True,
    fiscal_start: int = 1,
) -> OpenDealsQuery:
    """The query for :func:`crmkit.core.analytics.pipeline`'s arguments, checked as it checks them.

    Raises:
        ValidationError: unknown currency, dimension or pipeline; a bad ``fiscal_start``.
    """
    code = _currency(currency)
    dimensions = _check_dimensions(by)
    _fiscal_start(fiscal_start)
    _check_pipeline(pipelines, pipeline)
    probabilities, scale = _summable(pipelines)
    statuses = (StageKind.OPEN, StageKind.ON_HOLD) if include_on_hold else (StageKind.OPEN,)
    return OpenDealsQuery(
        statuses=statuses,
        dimensions=dimensions,
        pipeline=pipeline,
        currency=code,
        probabilities=probabilities,
        scale=scale,
    )


def total_query(query: OpenDealsQuery) -> OpenDealsQuery | None:
    """The query whose answer gives the total when the groups may count a deal twice.

    Grouped by team, a deal counts under each team of its owner, so the
    groups do not add up to the total: :func:`pipeline_report` takes the
    answer to this query (the same deals, no dimensions) as its ``totals``.
    ``None`` when the groups add up to the total.
    """
    if Dimension.TEAM not in query.dimensions:
        return None
    return attrs.evolve(query, dimensions=())


def closed_deals_query(
    pipelines: Mapping[str, Pipeline],
    *,
    currency: str,
    by: Dimension | str | Sequence[Dimension | str] | None = None,
    since: datetime | None = None,
    pipeline: str | None = None,
    fiscal_start: int = 1,
) -> ClosedDealsQuery:
    """The query for :func:`crmkit.core.analytics.win_rates`' arguments, checked as it checks them.

    Raises:
        ValidationError: unknown currency, dimension or pipeline; a naive ``since``.
    """
    code = _currency(currency)
    dimensions = _check_dimensions(by)
    _fiscal_start(fiscal_start)
    _check_pipeline(pipelines, pipeline)
    if since is not None:
        _check_aware(since, "since")
    return ClosedDealsQuery(dimensions=dimensions, pipeline=pipeline, currency=code, since=since)


def _label(key: str | None, by: Dimension, fiscal_start: int) -> str | None:
    """The report's key of a raw group key (months become fiscal quarters and years)."""
    if key is None or by not in _PERIOD_OF:
        return key
    year, month = key.split("-")
    return _period(int(year), int(month), _PERIOD_OF[by], fiscal_start).label


def _group(
    keys: tuple[str | None, ...], dimensions: tuple[Dimension, ...], fiscal_start: int
) -> GroupKey:
    """The report's key of a group's raw keys (one per dimension)."""
    labels = tuple(_label(k, d, fiscal_start) for k, d in zip(keys, dimensions, strict=True))
    return None if not labels else labels[0] if len(labels) == 1 else labels


def pipeline_report(
    query: OpenDealsQuery,
    groups: OpenGroups,
    *,
    pipelines: Mapping[str, Pipeline],
    as_of: datetime,
    rate: RateFunction | None = None,
    fiscal_start: int = 1,
    totals: OpenGroups | None = None,
) -> PipelineReport:
    """The :class:`PipelineReport` of a store's groups, as the pure function gives it.

    Args:
        query: the query the store answered.
        groups: its answer.
        pipelines: the pipelines, by key (for the order of stages).
        as_of: the report's moment (the day of its exchange rates).
        rate: exchange rates for amounts in other currencies.
        fiscal_start: the month the fiscal year starts (quarters and years).
        totals: the answer to :func:`total_query` when it is not ``None``
            (grouped by team); otherwise the total is the sum of the groups.

    Raises:
        ValidationError: a missing rate (code ``no_rate``).
    """
    valuer = _Valuer(query.currency, rate)
    sums = _open_sums(query, groups, valuer, as_of.date(), fiscal_start)

    def row(key: GroupKey, entry: Iterable[Decimal], dimensions: int) -> PipelineRow:
        count, unvalued, value, weighted = entry
        label, keys = _row_keys(key, dimensions)
        return PipelineRow(
            key=label,
            keys=keys,
            count=int(count),
            unvalued=int(unvalued),
            value=Money(value, query.currency),
            weighted=Money(weighted, query.currency),
        )

    rows: tuple[PipelineRow, ...] = ()
    if query.dimensions:
        order = _group_order(pipelines, query.dimensions)
        rows = tuple(row(k, sums[k], len(query.dimensions)) for k in sorted(sums, key=order))
    if totals is not None:
        whole = attrs.evolve(query, dimensions=())
        sums = _open_sums(whole, totals, valuer, as_of.date(), fiscal_start)
    everything = [_ZERO] * 4
    for entry in sums.values():
        everything = [_EXACT.add(a, b) for a, b in zip(everything, entry, strict=True)]
    return PipelineReport(
        as_of=as_of,
        by=_report_by(query.dimensions),
        currency=query.currency,
        rows=rows,
        total=row(None, everything, 0),
    )


def _open_sums(
    query: OpenDealsQuery, groups: OpenGroups, valuer: _Valuer, day: date, fiscal_start: int
) -> dict[GroupKey, list[Decimal]]:
    """Per report key: ``[count, unvalued, value, weighted]`` (exact decimals)."""
    exponent = currency_exponent(query.currency)
    totals: dict[GroupKey, list[Decimal]] = {}

    def add(
        keys: tuple[str | None, ...], count: int, unvalued: int, value: Decimal, weighted: Decimal
    ) -> None:
        entry = totals.setdefault(_group(keys, query.dimensions, fiscal_start), [_ZERO] * 4)
        entry[0] += count
        entry[1] += unvalued
        entry[2] = _EXACT.add(entry[2], value)
        entry[3] = _EXACT.add(entry[3], weighted)

    for s in groups.sums:
        value = Decimal(s.value_minor).scaleb(-exponent)
        add(s.keys, s.count, s.unvalued, value, Decimal(s.weighted_minor).scaleb(-exponent))
    for item in groups.items:
        money = (
            None
            if item.amount_minor is None or item.currency is None
            else Money.from_minor_units(item.amount_minor, item.currency)
        )
        amount = valuer.amount_of(money, day)
        weighted = valuer.weigh(amount, item.probability)
        n = Decimal(item.count)
        add(
            item.keys,
            item.count,
            item.count if money is None else 0,
            _EXACT.multiply(amount, n),
            _EXACT.multiply(weighted, n),
        )
    return totals


def win_rate_reports(
    query: ClosedDealsQuery,
    groups: ClosedGroups,
    *,
    pipelines: Mapping[str, Pipeline],
    as_of: datetime,
    rate: RateFunction | None = None,
    fiscal_start: int = 1,
) -> tuple[WinRate, ...]:
    """The :class:`WinRate` of each group of a store's answer, as the pure function gives them.

    Without dimensions, one :class:`WinRate` (key ``None``) whether or
    not anything closed, as :func:`crmkit.core.analytics.win_rate` returns.

    Raises:
        ValidationError: a missing rate (code ``no_rate``).
    """
    valuer = _Valuer(query.currency, rate)
    exponent = currency_exponent(query.currency)
    tallies: dict[GroupKey, _WinTally] = {}
    if not query.dimensions:
        tallies[None] = _WinTally(valuer.zero())

    def tally(keys: tuple[str | None, ...]) -> _WinTally:
        group = _group(keys, query.dimensions, fiscal_start)
        found = tallies.get(group)
        if found is None:
            found = tallies[group] = _WinTally(valuer.zero())
        return found

    for s in groups.sums:
        value = Money(Decimal(s.value_minor).scaleb(-exponent), query.currency)
        tally(s.keys).add(s.won, None if s.won else s.reason_id, s.count, value)
    for item in groups.items:
        money = Money.from_minor_units(item.amount_minor, item.currency)
        each = valuer.amount_of(money, item.day)
        value = Money(_EXACT.multiply(each, Decimal(item.count)), query.currency)
        tally(item.keys).add(item.won, None if item.won else item.reason_id, item.count, value)
    ordered = list(tallies)
    if query.dimensions:
        ordered.sort(key=_group_order(pipelines, query.dimensions))
    results = []
    for group in ordered:
        label, keys = _row_keys(group, len(query.dimensions))
        results.append(tallies[group].result(as_of=as_of, since=query.since, key=label, keys=keys))
    return tuple(results)


_ZERO: Final = Decimal(0)
