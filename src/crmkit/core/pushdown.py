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

Teams are never grouped by the store: a query by team asks the store for the
owner instead (``dimensions`` holds :attr:`Dimension.OWNER` where the
report's ``by`` holds :attr:`Dimension.TEAM`), and the report folds each
owner's group into the group of every team the owner is a member of (the
``teams`` given, as :class:`~crmkit.core.analytics.Book` takes them), or
into ``None`` when the owner is in none.  Sums being additive, a team's
figures are then exactly the sum of its members' deals, each deal counting
under every team of its owner; the total adds the owners' groups, each deal
once.  The store reads no team and joins nothing.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from itertools import product
from typing import Final

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
    _teams_by_user,
    _Valuer,
    _WinTally,
)
from crmkit.core.errors import ValidationError
from crmkit.core.ids import LossReasonId, TeamId, UserId
from crmkit.core.money import Money, currency_exponent
from crmkit.core.pipelines import Pipeline, StageKind
from crmkit.core.query import Restriction

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
    "win_rate_reports",
]

#: Probabilities with more decimals than this are itemized, never summed by
#: the store: ``|amount| x numerator`` must fit a signed 64-bit integer
#: (amounts are at most 10^15 minor units).
MAX_SUMMED_DECIMALS: Final = 3


# ==================================================================== queries


@frozen(kw_only=True)
class OpenDealsQuery:
    """The deals still in the pipeline (not archived), grouped by some dimensions.

    Attributes:
        statuses: the stage kinds that count (open, and on hold unless left out).
        dimensions: the dimensions the store groups by, in order (none: one
            group); never :attr:`Dimension.TEAM` (see ``by``).
        by: the report's dimensions: ``dimensions`` with the team where the
            store groups by owner (the report folds owners into teams).
        pipeline: only this pipeline's deals.
        currency: the report's currency.
        probabilities: the probability texts (as stored) the store sums, each
            with its numerator over ``scale``.
        scale: a power of ten, at most ``10 ** MAX_SUMMED_DECIMALS``.
        restrict: only the opportunities an access restriction lets through
            (a scoped CRM's visible ones); ``None``: every one.
    """

    statuses: tuple[StageKind, ...]
    dimensions: tuple[Dimension, ...]
    by: tuple[Dimension, ...]
    pipeline: str | None
    currency: str
    probabilities: Mapping[str, int]
    scale: int
    restrict: Restriction | None = None


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
        dimensions: the dimensions the store groups by (periods: of the close
            time's UTC day); none for one group; never :attr:`Dimension.TEAM`.
        by: the report's dimensions, as in :class:`OpenDealsQuery`.
        pipeline: only this pipeline's deals.
        currency: the report's currency: the store sums these amounts.
        since: the earliest close time, or ``None``.
        restrict: only the opportunities an access restriction lets through
            (a scoped CRM's visible ones); ``None``: every one.
    """

    dimensions: tuple[Dimension, ...]
    by: tuple[Dimension, ...]
    pipeline: str | None
    currency: str
    since: datetime | None
    restrict: Restriction | None = None


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
        dimensions=_store_dimensions(dimensions),
        by=dimensions,
        pipeline=pipeline,
        currency=code,
        probabilities=probabilities,
        scale=scale,
    )


def _store_dimensions(dimensions: tuple[Dimension, ...]) -> tuple[Dimension, ...]:
    """What the store groups by: the owner in place of the team, each dimension once."""
    found: list[Dimension] = []
    for by in dimensions:
        grouped = Dimension.OWNER if by is Dimension.TEAM else by
        if grouped not in found:
            found.append(grouped)
    return tuple(found)


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
    return ClosedDealsQuery(
        dimensions=_store_dimensions(dimensions),
        by=dimensions,
        pipeline=pipeline,
        currency=code,
        since=since,
    )


def _label(key: str | None, by: Dimension, fiscal_start: int) -> str | None:
    """The report's key of a raw group key (months become fiscal quarters and years)."""
    if key is None or by not in _PERIOD_OF:
        return key
    year, month = key.split("-")
    return _period(int(year), int(month), _PERIOD_OF[by], fiscal_start).label


class _Groups:
    """The report's groups of a store group's raw keys: one, or one per team of its owner."""

    def __init__(
        self,
        dimensions: tuple[Dimension, ...],
        by: tuple[Dimension, ...],
        teams: Mapping[TeamId, Collection[UserId]] | None,
        fiscal_start: int,
    ):
        self.by = by
        self.fiscal_start = fiscal_start
        self.index = [dimensions.index(Dimension.OWNER if d is Dimension.TEAM else d) for d in by]
        self.teams: dict[str | None, tuple[str | None, ...]] = {
            str(user): tuple(str(t) for t in ids)
            for user, ids in _teams_by_user(teams or {}).items()
        }

    def of(self, keys: tuple[str | None, ...]) -> list[GroupKey]:
        parts = [
            self.teams.get(keys[i], (None,))
            if by is Dimension.TEAM
            else (_label(keys[i], by, self.fiscal_start),)
            for by, i in zip(self.by, self.index, strict=True)
        ]
        if not parts:
            return [None]
        if len(parts) == 1:
            return list(parts[0])
        return list(product(*parts))


def pipeline_report(
    query: OpenDealsQuery,
    groups: OpenGroups,
    *,
    pipelines: Mapping[str, Pipeline],
    as_of: datetime,
    rate: RateFunction | None = None,
    fiscal_start: int = 1,
    teams: Mapping[TeamId, Collection[UserId]] | None = None,
) -> PipelineReport:
    """The :class:`PipelineReport` of a store's groups, as the pure function gives it.

    Args:
        query: the query the store answered.
        groups: its answer.
        pipelines: the pipelines, by key (for the order of stages).
        as_of: the report's moment (the day of its exchange rates).
        rate: exchange rates for amounts in other currencies.
        fiscal_start: the month the fiscal year starts (quarters and years).
        teams: the members of each team, as the book has them, for a report
            by team (owners fold into their teams).

    Raises:
        ValidationError: a missing rate (code ``no_rate``).
    """
    valuer = _Valuer(query.currency, rate)
    sums = _open_sums(query, groups, valuer, as_of.date())
    fold = _Groups(query.dimensions, query.by, teams, fiscal_start)
    totals: dict[GroupKey, list[Decimal]] = {}
    everything = [_ZERO] * 4
    for raw, entry in sums.items():
        everything = [_EXACT.add(a, b) for a, b in zip(everything, entry, strict=True)]
        for group in fold.of(raw):
            found = totals.get(group)
            totals[group] = (
                entry
                if found is None
                else [_EXACT.add(a, b) for a, b in zip(found, entry, strict=True)]
            )

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
    if query.by:
        order = _group_order(pipelines, query.by)
        rows = tuple(row(k, totals[k], len(query.by)) for k in sorted(totals, key=order))
    return PipelineReport(
        as_of=as_of,
        by=_report_by(query.by),
        currency=query.currency,
        rows=rows,
        total=row(None, everything, 0),
    )


def _open_sums(
    query: OpenDealsQuery, groups: OpenGroups, valuer: _Valuer, day: date
) -> dict[tuple[str | None, ...], list[Decimal]]:
    """Per store group (raw keys): ``[count, unvalued, value, weighted]`` (exact decimals)."""
    exponent = currency_exponent(query.currency)
    totals: dict[tuple[str | None, ...], list[Decimal]] = {}

    def add(
        keys: tuple[str | None, ...], count: int, unvalued: int, value: Decimal, weighted: Decimal
    ) -> None:
        entry = totals.setdefault(keys, [_ZERO] * 4)
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
    teams: Mapping[TeamId, Collection[UserId]] | None = None,
) -> tuple[WinRate, ...]:
    """The :class:`WinRate` of each group of a store's answer, as the pure function gives them.

    Without dimensions, one :class:`WinRate` (key ``None``) whether or
    not anything closed, as :func:`crmkit.core.analytics.win_rate` returns.
    ``teams`` is as in :func:`pipeline_report`.

    Raises:
        ValidationError: a missing rate (code ``no_rate``).
    """
    valuer = _Valuer(query.currency, rate)
    exponent = currency_exponent(query.currency)
    tallies: dict[GroupKey, _WinTally] = {}
    if not query.by:
        tallies[None] = _WinTally(valuer.zero())
    fold = _Groups(query.dimensions, query.by, teams, fiscal_start)

    def tally(keys: tuple[str | None, ...]) -> list[_WinTally]:
        found = []
        for group in fold.of(keys):
            if group not in tallies:
                tallies[group] = _WinTally(valuer.zero())
            found.append(tallies[group])
        return found

    for s in groups.sums:
        value = Money(Decimal(s.value_minor).scaleb(-exponent), query.currency)
        for each_tally in tally(s.keys):
            each_tally.add(s.won, None if s.won else s.reason_id, s.count, value)
    for item in groups.items:
        money = Money.from_minor_units(item.amount_minor, item.currency)
        each = valuer.amount_of(money, item.day)
        value = Money(_EXACT.multiply(each, Decimal(item.count)), query.currency)
        for each_tally in tally(item.keys):
            each_tally.add(item.won, None if item.won else item.reason_id, item.count, value)
    ordered = list(tallies)
    if query.by:
        ordered.sort(key=_group_order(pipelines, query.by))
    results = []
    for group in ordered:
        label, keys = _row_keys(group, len(query.by))
        results.append(tallies[group].result(as_of=as_of, since=query.since, key=label, keys=keys))
    return tuple(results)


_ZERO: Final = Decimal(0)
