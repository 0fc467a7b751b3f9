"""The probabilistic forecast, target attainment, the backtest and calibration.

Pure functions over a :class:`~crmkit.core.analytics.Book` with ``as_of``
always passed in, like the rest of :mod:`crmkit.core.analytics`.  Only the
standard library is used: the simulation draws from ``random.Random(seed)``,
so the same inputs and seed give the same output.

The forecast of a period's won revenue has three parts:

* **won**: what was already won in the period by ``as_of`` (certain);
* **pipeline**: each deal still open or on hold at ``as_of`` is won within the
  period with chance ``p x q``: ``p`` its win probability (the source is a
  :class:`ProbabilitySource`), ``q`` the chance that its close falls in the
  rest of the period given that it is still open at its age, from the
  time-to-close distribution learned from history with open deals censored
  (Kaplan-Meier), or from its expected close date (:class:`Timing`);
* **new**: deals not created yet that will be created and won within the
  period: a compound Poisson run-rate learned from the same window of past
  periods of the same kind, by the period's position (month of the quarter,
  quarter of the year).

The spread (P10/P50/P90) comes from simulating the deals' outcomes *and* from
a bootstrap over history (the learned time-to-close curve, run-rate and
empirical probabilities are re-estimated on resampled history for each
replicate).  The method is written out in the "Analytics and forecasting"
guide.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
import heapq
import math
import random
import re
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType
from typing import ClassVar, Final, TypeVar

from attrs import evolve, field, frozen

from crmkit.core.analytics import (
    Book,
    DealState,
    Period,
    PeriodKind,
    RateFunction,
    _check_aware,
    _currency,
    _fiscal_start,
    _select,
    _Valuer,
)
from crmkit.core.errors import ValidationError
from crmkit.core.ids import OpportunityId, UserId, ZoneId
from crmkit.core.money import Money
from crmkit.core.pipelines import StageKind
from crmkit.core.tables import Table, Tabular
from crmkit.core.targets import SalesTarget

__all__ = [
    "Attainment",
    "AttainmentReport",
    "Backtest",
    "BacktestRow",
    "Calibration",
    "CalibrationRow",
    "Forecast",
    "ForecastEstimate",
    "ForecastMethod",
    "ForecastPart",
    "ForecastPartKind",
    "ForecastRequest",
    "ForecastSeries",
    "MethodScore",
    "ProbabilitySource",
    "ReliabilityBin",
    "StageWinRate",
    "Timing",
    "attainment",
    "backtest",
    "calibration",
    "forecast",
    "parse_period",
    "previous_periods",
    "probabilistic_method",
    "stage_win_rates",
    "weighted_method",
]

#: Simulated outcomes per forecast, unless told otherwise.
SIMULATIONS: Final = 2000
#: Bootstrap replicates of the learned rates, unless told otherwise.
BOOTSTRAP: Final = 100
#: The largest deals (by amount squared x chance) simulated one by one; the
#: rest of the pipeline is summed by a normal approximation.
EXACT_DEALS: Final = 200
#: Closed deals needed to learn the time to close; fewer: expected close dates.
MIN_HISTORY: Final = 20
#: Closed deals that visited a stage needed to learn its win rate.
MIN_SAMPLES: Final = 20
#: Past periods looked at for the run-rate, by kind.
LOOKBACK: Final = MappingProxyType(
    {PeriodKind.MONTH: 24, PeriodKind.QUARTER: 8, PeriodKind.YEAR: 3}
)
#: Past windows of the same position needed to use them alone (seasonality).
MIN_SEASON: Final = 2
#: New won deals above which a simulation sums their values by a normal approximation.
_EXACT_NEW: Final = 30
_RATIO: Final = Decimal("0.0001")
_E = TypeVar("_E", bound=enum.Enum)
#: A result as a table: title, column names, rows of values and summary notes
#: (the arguments of ``crmkit.core.tables.Table.of``; money, enums and ids are
#: turned into plain cells there).
_TableArgs = tuple[
    str, tuple[str, ...], tuple[tuple[object, ...], ...], tuple[tuple[str, object], ...]
]
_MONTHS: Final = MappingProxyType({PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.YEAR: 12})


class ProbabilitySource(enum.Enum):
    """Which win probability a deal is given."""

    STAGE = "stage"  #: the default probability of the deal's stage
    MANUAL = "manual"  #: the deal's own: the one a user set, else the stage default
    EMPIRICAL = "empirical"  #: the stage's win rate learned from history (see stage_win_rates)


class Timing(enum.Enum):
    """How the forecast decides when an open deal closes."""

    HISTORY = "history"  #: the time to close learned from history (Kaplan-Meier)
    EXPECTED_CLOSE = "expected_close"  #: the deal closes on its expected close date


class ForecastPartKind(enum.Enum):
    """A part of the forecast revenue."""

    WON = "won"  #: already won in the period at as_of
    PIPELINE = "pipeline"  #: deals open at as_of won within the period
    NEW = "new"  #: deals created after as_of and won within the period (run-rate)


# ==================================================================== periods


_MONTH_LABEL: Final = re.compile(r"(\d{4})-(\d{2})")
_QUARTER_LABEL: Final = re.compile(r"(FY)?(\d{4})-Q([1-4])")
_YEAR_LABEL: Final = re.compile(r"(FY)?(\d{4})")


def parse_period(value: Period | str, *, fiscal_start: int = 1) -> Period:
    """The :class:`~crmkit.core.analytics.Period` a label names.

    Labels are those periods carry: ``"2027-03"`` (a calendar month),
    ``"2027-Q1"`` and ``"2027"`` with a January fiscal start, ``"FY2027-Q3"``
    and ``"FY2027"`` with another (the fiscal year is named after the
    calendar year it ends in).  A ``Period`` is returned as it is.

    Raises:
        ValidationError: not a label of that form, or a label that does not
            match ``fiscal_start`` (field ``period``, code ``period``).
    """
    if isinstance(value, Period):
        return value
    first = _fiscal_start(fiscal_start)
    text = value.strip().upper() if isinstance(value, str) else ""
    found: Period | None = None
    if m := _MONTH_LABEL.fullmatch(text):
        if 1 <= int(m.group(2)) <= 12:
            found = Period.containing(
                date(int(m.group(1)), int(m.group(2)), 1), PeriodKind.MONTH, fiscal_start=first
            )
    elif m := _QUARTER_LABEL.fullmatch(text):
        found = _fiscal_period(int(m.group(2)), first, PeriodKind.QUARTER, int(m.group(3)))
    elif m := _YEAR_LABEL.fullmatch(text):
        found = _fiscal_period(int(m.group(2)), first, PeriodKind.YEAR, 1)
    if found is None or found.label != text:
        raise ValidationError(
            "period",
            'must be a period label such as "2027-03", "2027-Q1" or "2027" '
            '("FY2027-Q1", "FY2027" when the fiscal year does not start in January)',
            code="period",
            value=value,
        )
    return found


def _fiscal_period(year: int, first: int, kind: PeriodKind, quarter: int) -> Period | None:
    if not 2 <= year <= 9998:
        return None
    start = date(year, 1, 1) if first == 1 else date(year - 1, first, 1)
    start = _shift(start, 3 * (quarter - 1))
    return Period.containing(start, kind, fiscal_start=first)


def _shift(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def previous_periods(period: Period, count: int, *, fiscal_start: int = 1) -> tuple[Period, ...]:
    """The ``count`` periods of the same kind before ``period``, most recent first."""
    step = _MONTHS[period.kind]
    return tuple(
        Period.containing(_shift(period.start, -step * k), period.kind, fiscal_start=fiscal_start)
        for k in range(1, count + 1)
    )


def _position(period: Period, fiscal_start: int) -> int:
    """Where the period falls in the larger one: month of the quarter, quarter of the year."""
    offset = (period.start.month - fiscal_start) % 12
    if period.kind is PeriodKind.MONTH:
        return offset % 3
    if period.kind is PeriodKind.QUARTER:
        return offset // 3
    return 0


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


# =========================================================== learned rates


@frozen(kw_only=True)
class StageWinRate:
    """The empirical win probability of one stage.

    Attributes:
        pipeline, stage: the stage.
        closed: deals closed by ``as_of`` whose history entered the stage.
        won: those of them won.
        probability: ``won / closed`` when ``closed >= min_samples``, else
            the stage's default probability.
        learned: whether ``probability`` was learned (``False``: the default).
    """

    pipeline: str
    stage: str
    closed: int
    won: int
    probability: Decimal
    learned: bool


def stage_win_rates(
    book: Book,
    *,
    as_of: datetime,
    min_samples: int = MIN_SAMPLES,
    pipeline: str | None = None,
) -> tuple[StageWinRate, ...]:
    """Each open and on-hold stage's win rate among the deals closed by ``as_of``.

    A deal counts for every stage its history (up to ``as_of``) entered,
    once per stage, when it was won or lost at ``as_of``: the rate is
    P(won | reached the stage).  With fewer than ``min_samples`` such deals
    the stage keeps its default probability (``learned`` false).

    Raises:
        ValidationError: ``min_samples`` below 1; an unknown pipeline.
    """
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise ValidationError(
            "min_samples", "must be a whole number, 1 or more", code="range", value=min_samples
        )
    counts = _stage_counts(book, as_of, pipeline)
    rows = []
    for pipe in book.pipelines.values():
        if pipeline is not None and pipe.key != pipeline:
            continue
        for stage in pipe.stages:
            if stage.is_final:
                continue
            won, lost = counts.get((pipe.key, stage.key), (0, 0))
            learned = won + lost >= min_samples
            rows.append(
                StageWinRate(
                    pipeline=pipe.key,
                    stage=stage.key,
                    closed=won + lost,
                    won=won,
                    probability=Decimal(won) / Decimal(won + lost)
                    if learned
                    else stage.probability,
                    learned=learned,
                )
            )
    return tuple(rows)


def _stage_counts(
    book: Book, as_of: datetime, pipeline: str | None
) -> dict[tuple[str, str], tuple[int, int]]:
    """``(pipeline, stage) -> (won, lost)`` over the deals closed at ``as_of``."""
    status = {d.id: d.status for d in _select(book, as_of, pipeline) if d.closed_at is not None}
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for opp in book.opportunities:
        kind = status.get(opp.id)
        if kind is None:
            continue
        won = kind is StageKind.WON
        for key in {c.target for c in opp.history if c.at <= as_of}:
            w, lost = counts.get((opp.pipeline, key), (0, 0))
            counts[opp.pipeline, key] = (w + won, lost + (not won))
    return counts


def _days(delta: timedelta) -> int:
    """Whole days, rounded down."""
    return delta.days


class _Survival:
    """A Kaplan-Meier curve over whole days, from weighted (day, ended, censored) cells."""

    __slots__ = ("days", "values")

    def __init__(self, cells: Sequence[tuple[int, float, float]]):
        at_risk = sum(e + c for _, e, c in cells)
        survival = 1.0
        days: list[int] = []
        values: list[float] = []
        for day, ended, censored in cells:  # sorted by day
            if ended and at_risk > 0:
                survival *= 1.0 - ended / at_risk
                days.append(day)
                values.append(max(survival, 0.0))
            at_risk -= ended + censored
        self.days = days
        self.values = values

    def __call__(self, t: int) -> float:
        """P(T > t): the share of deals not closed after ``t`` whole days."""
        if t < 0:
            return 1.0
        i = bisect_right(self.days, t)
        return 1.0 if i == 0 else self.values[i - 1]

    def within(self, age: int, start: int, end: int) -> float | None:
        """P(age + start <= T < age + end | T >= age).

        ``None`` when history says nothing about a deal that old: no deal
        closed at ``age`` days or later.
        """
        alive = self(age - 1)
        if alive <= 0.0 or not self.days or self.days[-1] < age:
            return None
        return max(0.0, (self(age + start - 1) - self(age + end - 1)) / alive)


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw: Knuth's product of uniforms below 30, else a rounded normal."""
    if lam <= 0.0:
        return 0
    if lam >= 30.0:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k = 0
    product = rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


# ================================================================ forecast


@frozen(kw_only=True)
class ForecastPart:
    """One part of a forecast: its mean and its P10/P50/P90 on their own.

    The parts' percentiles do not add up to the total's (percentiles never
    do); their means do.
    """

    part: ForecastPartKind
    expected: Money
    p10: Money
    p50: Money
    p90: Money


@frozen(kw_only=True)
class Forecast(Tabular):
    """The won revenue of a period: P10/P50/P90 and the parts they come from.

    Attributes:
        period: the period forecast.
        as_of: the moment the forecast was made at.
        currency: of every amount.
        p10, p50, p90: the 10th, 50th and 90th percentiles of the simulated
            total (won + pipeline + new): 80% of the simulations fall
            between ``p10`` and ``p90``.
        expected: the mean of the simulated totals.
        parts: won, pipeline and new, each with its own mean and percentiles.
        probabilities: the win probabilities used.
        timing: how close times were decided (``expected_close`` when
            ``history`` was asked but too few deals had closed).
        open_deals: deals in the pipeline at ``as_of`` (in scope).
        history: closed deals the time to close was learned from.
        analogs: past windows the run-rate was learned from.
        seed, simulations, bootstrap: the simulation's settings.
    """

    period: Period
    as_of: datetime
    currency: str
    p10: Money
    p50: Money
    p90: Money
    expected: Money
    parts: tuple[ForecastPart, ...]
    probabilities: ProbabilitySource
    timing: Timing
    open_deals: int
    history: int
    analogs: int
    seed: int
    simulations: int
    bootstrap: int

    def part(self, kind: ForecastPartKind | str) -> ForecastPart:
        """The part of ``kind`` (``"won"``, ``"pipeline"`` or ``"new"``)."""
        wanted = ForecastPartKind(kind)
        return next(p for p in self.parts if p.part is wanted)

    def table(self) -> Table:
        """This result as a table (HTML in Jupyter, ``to_pandas()``)."""
        return Table.of(*self._table())

    def _table(self) -> _TableArgs:
        """One row per part, then the total; the settings are the notes."""
        rows = tuple((p.part, p.expected, p.p10, p.p50, p.p90, self.currency) for p in self.parts)
        total = ("total", self.expected, self.p10, self.p50, self.p90, self.currency)
        return (
            f"Forecast {self.period.label} as of {self.as_of.isoformat()}",
            ("part", "expected", "p10", "p50", "p90", "currency"),
            (*rows, total),
            (
                ("open deals", self.open_deals),
                ("probabilities", self.probabilities),
                ("timing", self.timing),
                ("history", self.history),
                ("analogs", self.analogs),
                ("seed", self.seed),
                ("simulations", self.simulations),
                ("bootstrap", self.bootstrap),
            ),
        )


@frozen(kw_only=True)
class _Scope:
    """Whose deals a forecast counts: owners and zones (``None``: anyone's)."""

    owners: frozenset[UserId] | None = None
    zones: frozenset[ZoneId] | None = None
    pipeline: str | None = None

    def __contains__(self, deal: DealState) -> bool:
        return (self.owners is None or deal.owner_id in self.owners) and (
            self.zones is None or deal.zone_id in self.zones
        )


@frozen
class _Cell:
    """Open deals sharing what the bootstrap changes (stage, age), summed."""

    stage: tuple[str, str] | None
    age: int | None
    w1: float  # sum of v * p0
    w2: float  # sum of v^2 * p0
    w3: float  # sum of v^2 * p0^2


@frozen
class _Big:
    """An open deal simulated on its own."""

    value: float
    p0: float
    stage: tuple[str, str] | None
    age: int | None


@frozen(kw_only=True)
class _Run:
    """What a simulation produced, before it is turned into Money."""

    won: Decimal
    certain: Decimal
    pipeline: list[float]
    new: list[float]
    chances: dict[OpportunityId, float]
    timing: Timing
    open_deals: int
    history: int
    analogs: int


def _check_count(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValidationError(
            name, f"must be a whole number, {low} or more", code="range", value=value
        )
    return value


def _check_seed(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("seed", "must be a whole number", code="type", value=value)
    return value


@frozen(kw_only=True)
class _Settings:
    """A forecast's settings, checked."""

    period: Period
    as_of: datetime
    valuer: _Valuer
    seed: int
    simulations: int
    bootstrap: int
    probabilities: ProbabilitySource
    timing: Timing
    scope: _Scope
    new_deals: bool
    fiscal_start: int
    lookback: int | None = None
    min_history: int = MIN_HISTORY
    min_samples: int = MIN_SAMPLES
    keep_chances: bool = False  #: each deal's chance, for the backtest's Brier score


@frozen(kw_only=True)
class _Open:
    """The open pipeline, ready to simulate."""

    certain: Decimal
    summed: list[_Cell]
    exact: list[_Big]
    chances: dict[OpportunityId, float]
    count: int


class _Learned:
    """What the forecast learns from history, and its bootstrap replicates."""

    def __init__(self, book: Book, deals: Sequence[DealState], s: _Settings):
        self.book = book
        self.min_samples = s.min_samples
        cells: dict[int, list[float]] = {}
        closed = 0
        for deal in deals:
            ended = deal.closed_at is not None
            cycle = _days((deal.closed_at or s.as_of) - deal.opened_at)
            cell = cells.setdefault(cycle, [0.0, 0.0])
            cell[0 if ended else 1] += 1.0
            closed += ended
        self.closed = closed
        self.cells = sorted((d, e, c) for d, (e, c) in cells.items())
        self.curve = _Survival(self.cells)
        self.counts = (
            _stage_counts(book, s.as_of, s.scope.pipeline)
            if s.probabilities is ProbabilitySource.EMPIRICAL
            else {}
        )
        self.rates = {key: self.empirical(key, w, lost) for key, (w, lost) in self.counts.items()}

    def default(self, key: tuple[str, str]) -> float:
        return float(self.book.pipelines[key[0]].stage(key[1]).probability)

    def empirical(self, key: tuple[str, str], won: float, lost: float) -> float:
        """The stage's win rate from ``won`` and ``lost`` deals, if it is learned at all."""
        learned = sum(self.counts.get(key, (0, 0))) >= self.min_samples
        return won / (won + lost) if learned and won + lost > 0 else self.default(key)

    def rate(self, key: tuple[str, str]) -> float:
        found = self.rates.get(key)
        return self.default(key) if found is None else found

    def replicate(self, rng: random.Random, keys: Iterable[tuple[str, str]]) -> _Survival:
        """Resample history (Poisson bootstrap): a new curve; new stage rates in ``rates``."""
        curve = _Survival([(d, _poisson(rng, e), _poisson(rng, c)) for d, e, c in self.cells])
        self.rates = {}
        for key in keys:
            won, lost = self.counts.get(key, (0, 0))
            self.rates[key] = self.empirical(key, _poisson(rng, won), _poisson(rng, lost))
        return curve


def _won_so_far(
    deals: Sequence[DealState], s: _Settings, start: datetime, end: datetime
) -> Decimal:
    won = Decimal(0)
    for deal in deals:
        closed = deal.closed_at
        if deal.status is StageKind.WON and closed and start <= closed < end and deal in s.scope:
            won += s.valuer.amount(deal, closed.date())
    return won


def _open_pipeline(  # noqa: PLR0915 - one flat pass over every open deal, for speed
    deals: Sequence[DealState], s: _Settings, learned: _Learned, offsets: tuple[int, int]
) -> _Open:
    """Each open deal's fixed chance factor, its cell, and the deals simulated one by one."""
    day = s.as_of.date()
    code = s.valuer.currency
    certain = Decimal(0)
    grouped: dict[tuple[tuple[str, str] | None, int | None], list[float]] = {}
    bigs: list[_Candidate] = []
    chances: dict[OpportunityId, float] = {}
    count = 0
    timing: dict[int, float | None] = {}
    defaults: dict[tuple[str, str], float] = {}
    everyone = s.scope.owners is None and s.scope.zones is None
    manual = s.probabilities is ProbabilitySource.MANUAL
    empirical = s.probabilities is ProbabilitySource.EMPIRICAL
    history = s.timing is Timing.HISTORY
    within = learned.curve.within
    start, end = s.period.start, s.period.end
    for deal in deals:
        if deal.closed_at is not None or not (everyone or deal in s.scope):
            continue  # closed deals have a close time; open and on-hold ones do not
        count += 1
        money = deal.amount
        if money is None:
            amount = Decimal(0)
        elif money.currency == code:
            amount = money.amount
        else:
            amount = s.valuer.amount(deal, day)
        stage: tuple[str, str] | None = None
        if manual:
            p0 = float(deal.probability)
        else:
            key = (deal.pipeline, deal.stage)
            if empirical:
                p0, stage = 1.0, key
            else:
                p0 = defaults.get(key) or defaults.setdefault(key, learned.default(key))
        age: int | None = None
        q: float | None = None
        if history:
            age = (s.as_of - deal.opened_at).days
            if age in timing:
                q = timing[age]
            else:
                q = timing[age] = within(age, *offsets)
            if q is None:  # it outlived every close seen: its expected date decides
                age = None
        if age is None:
            close = deal.expected_close
            if close is None or not start <= close < end:
                p0 = 0.0
        if s.keep_chances:
            timed = 1.0 if q is None else q
            chances[deal.id] = p0 * (learned.rate(stage) if stage else 1.0) * timed
        if p0 == 0.0 or not amount:
            continue
        if stage is None and age is None and p0 == 1.0:
            certain += amount  # won within the period for sure: kept exact
            continue
        value = float(amount)
        square = value * value * p0
        if len(bigs) < EXACT_DEALS:  # keep only the largest: a min-heap of EXACT_DEALS
            heapq.heappush(bigs, (square, count, value, p0, stage, age))
        elif square > bigs[0][0]:
            heapq.heapreplace(bigs, (square, count, value, p0, stage, age))
        entry = grouped.get((stage, age))
        if entry is None:
            entry = grouped[stage, age] = [0.0, 0.0, 0.0]
        entry[0] += value * p0
        entry[1] += square
        entry[2] += square * p0
    exact, summed = _split(grouped, bigs)
    return _Open(certain=certain, summed=summed, exact=exact, chances=chances, count=count)


#: a deal that may be simulated on its own: (amount² x p, order, amount, p, stage, age)
_Candidate = tuple[float, int, float, float, tuple[str, str] | None, int | None]


def _split(
    grouped: dict[tuple[tuple[str, str] | None, int | None], list[float]],
    bigs: list[_Candidate],
) -> tuple[list[_Big], list[_Cell]]:
    """The largest deals, simulated one by one, and the cells of the rest."""
    largest = sorted(bigs, reverse=True)
    exact = [_Big(value, p0, stage, age) for _, _, value, p0, stage, age in largest]
    for big in exact:  # out of the normal approximation
        entry = grouped[big.stage, big.age]
        entry[0] -= big.value * big.p0
        entry[1] -= big.value * big.value * big.p0
        entry[2] -= big.value * big.value * big.p0 * big.p0
    summed = [_Cell(k[0], k[1], *v) for k, v in grouped.items() if v[1] > 0.0]
    return exact, summed


class _Factor:
    """A replicate's chance factor of a cell: stage rate x timing, memoized by age."""

    def __init__(self, learned: _Learned, curve: _Survival, offsets: tuple[int, int]):
        self.learned = learned
        self.curve = curve
        self.offsets = offsets
        self.timing: dict[int, float] = {}

    def __call__(self, stage: tuple[str, str] | None, age: int | None) -> float:
        m = 1.0 if stage is None else self.learned.rate(stage)
        if age is not None:
            q = self.timing.get(age)
            if q is None:
                q = self.timing[age] = self.curve.within(age, *self.offsets) or 0.0
            m *= q
        return m


def _run(book: Book, s: _Settings) -> _Run:
    rng = random.Random(s.seed)
    deals = _select(book, s.as_of, s.scope.pipeline)
    start, end = _midnight(s.period.start), _midnight(s.period.end)
    window = max(s.as_of, start)
    won = _won_so_far(deals, s, start, end)
    if s.as_of >= end:
        zeros = [0.0] * s.simulations
        return _Run(
            won=won,
            certain=Decimal(0),
            pipeline=zeros,
            new=zeros,
            chances={},
            timing=s.timing,
            open_deals=0,
            history=0,
            analogs=0,
        )
    learned = _Learned(book, deals, s)
    if s.timing is Timing.HISTORY and learned.closed < s.min_history:
        s = evolve(s, timing=Timing.EXPECTED_CLOSE)
    offsets = (_days(window - s.as_of), max(1, math.ceil((end - s.as_of) / timedelta(days=1))))
    pipe = _open_pipeline(deals, s, learned, offsets)
    analogs = _analogs(deals, s, window)
    keys = sorted(
        {c.stage for c in pipe.summed if c.stage} | {b.stage for b in pipe.exact if b.stage}
    )
    replicates = max(1, min(s.bootstrap, s.simulations))  # no replicate without a simulation
    pipeline_totals: list[float] = []
    new_totals: list[float] = []
    for r in range(replicates):
        if s.bootstrap:
            curve = learned.replicate(rng, keys)
            sample = [analogs[rng.randrange(len(analogs))] for _ in analogs]
        else:
            curve, sample = learned.curve, list(analogs)
        factor = _Factor(learned, curve, offsets)
        mean = var = 0.0
        for c in pipe.summed:
            m = factor(c.stage, c.age)
            mean += m * c.w1
            var += m * c.w2 - m * m * c.w3
        sd = math.sqrt(max(var, 0.0))
        bets = [(b.value, b.p0 * factor(b.stage, b.age)) for b in pipe.exact]
        new = _RunRate(sample)
        for _ in range(s.simulations // replicates + (r < s.simulations % replicates)):
            total = max(0.0, rng.gauss(mean, sd)) if sd else mean
            for value, p in bets:
                if rng.random() < p:
                    total += value
            pipeline_totals.append(total)
            new_totals.append(new.draw(rng))
    return _Run(
        won=won,
        certain=pipe.certain,
        pipeline=pipeline_totals,
        new=new_totals,
        chances=pipe.chances,
        timing=s.timing,
        open_deals=pipe.count,
        history=learned.closed,
        analogs=len(analogs),
    )


class _RunRate:
    """New won deals of one replicate: Poisson count, values drawn from the pool."""

    def __init__(self, sample: Sequence[tuple[float, list[float]]]):
        self.rate = sum(n for n, _ in sample) / len(sample) if sample else 0.0
        self.pool = [v for _, values in sample for v in values]
        n = len(self.pool)
        self.mean = sum(self.pool) / n if n else 0.0
        self.sd = math.sqrt(sum((v - self.mean) ** 2 for v in self.pool) / n) if n else 0.0

    def draw(self, rng: random.Random) -> float:
        if not self.pool:
            return 0.0
        n = _poisson(rng, self.rate)
        if n <= _EXACT_NEW:
            return sum(self.pool[rng.randrange(len(self.pool))] for _ in range(n))
        return max(0.0, n * self.mean + rng.gauss(0.0, self.sd * math.sqrt(n)))


def _analogs(
    deals: Sequence[DealState], s: _Settings, window: datetime
) -> list[tuple[float, list[float]]]:
    """The past windows the run-rate learns from: (deals, scaled) and their won values.

    For each past period of the same kind (``lookback`` of them) whose
    window ended by ``as_of``: the window is the same stretch of that period
    as the rest of ``period`` after ``as_of`` (from the same offset to the
    end); the deals created in it and won in it count, scaled by the ratio of
    the window lengths.  Windows of the same position are used alone when
    there are :data:`MIN_SEASON` of them.
    """
    if not s.new_deals:
        return []
    period = s.period
    count = LOOKBACK[period.kind] if s.lookback is None else s.lookback
    offset = window - _midnight(period.start)
    length = _midnight(period.end) - window
    won = [d for d in deals if d.status is StageKind.WON and d.closed_at and d in s.scope]
    position = _position(period, s.fiscal_start)
    everything: list[tuple[int, tuple[float, list[float]]]] = []
    for past in previous_periods(period, count, fiscal_start=s.fiscal_start):
        begin = min(_midnight(past.start) + offset, _midnight(past.end))
        finish = _midnight(past.end)
        if finish > s.as_of or finish <= begin:
            continue
        values = [
            float(s.valuer.amount(d, d.closed_at.date()))
            for d in won
            if d.closed_at and begin <= d.opened_at and d.closed_at < finish
        ]
        scale = length / (finish - begin)
        everything.append((_position(past, s.fiscal_start), (len(values) * scale, values)))
    same = [a for pos, a in everything if pos == position]
    return same if len(same) >= MIN_SEASON else [a for _, a in everything]


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank quantile of sorted values."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _money(value: Decimal | float, valuer: _Valuer) -> Money:
    amount = value if isinstance(value, Decimal) else Decimal(repr(value))
    return Money(amount.quantize(valuer.quantum, rounding=ROUND_HALF_EVEN), valuer.currency)


def _part(
    kind: ForecastPartKind, base: Decimal, sims: Sequence[float], valuer: _Valuer
) -> ForecastPart:
    ordered = sorted(sims)
    mean = sum(ordered) / len(ordered) if ordered else 0.0
    return ForecastPart(
        part=kind,
        expected=_money(base + Decimal(repr(mean)), valuer),
        p10=_money(base + Decimal(repr(_quantile(ordered, 0.1))), valuer),
        p50=_money(base + Decimal(repr(_quantile(ordered, 0.5))), valuer),
        p90=_money(base + Decimal(repr(_quantile(ordered, 0.9))), valuer),
    )


def _scope(
    owners: Collection[UserId] | None, zones: Collection[ZoneId] | None, pipeline: str | None
) -> _Scope:
    return _Scope(
        owners=None if owners is None else frozenset(owners),
        zones=None if zones is None else frozenset(zones),
        pipeline=pipeline,
    )


def forecast(
    book: Book,
    *,
    period: Period | str,
    as_of: datetime,
    currency: str,
    seed: int = 0,
    simulations: int = SIMULATIONS,
    bootstrap: int = BOOTSTRAP,
    probabilities: ProbabilitySource | str = ProbabilitySource.MANUAL,
    timing: Timing | str = Timing.HISTORY,
    new_deals: bool = True,
    rate: RateFunction | None = None,
    pipeline: str | None = None,
    owners: Collection[UserId] | None = None,
    zones: Collection[ZoneId] | None = None,
    fiscal_start: int = 1,
    lookback: int | None = None,
    min_history: int = MIN_HISTORY,
    min_samples: int = MIN_SAMPLES,
) -> Forecast:
    """P10/P50/P90 of the revenue won in ``period``, as seen at ``as_of``.

    See the module docstring and the "Analytics and forecasting" guide for
    the method.  Same inputs and ``seed``: same output.

    Args:
        book: the snapshot.
        period: the period (a ``Period`` or its label, ``"2027-Q1"``).
        as_of: the moment the forecast is made at; nothing after it is used.
        currency: of the result; other amounts go through ``rate``.
        seed: the seed of ``random.Random``.
        simulations: simulated outcomes (at least 1).
        bootstrap: replicates of the learned rates over resampled history
            (0: the rates as learned, no resampling).
        probabilities: the deals' win probabilities (``manual`` by default:
            each deal's own, the stage default unless a user set it).
        timing: ``history`` (learned time to close) or ``expected_close``.
        new_deals: include the run-rate of deals not created yet.
        rate: exchange rates.
        pipeline: only this pipeline's deals (history included).
        owners: only deals owned by these users (the time to close is still
            learned from the whole book).
        zones: only deals of organizations in these zones.
        fiscal_start: the month the fiscal year starts (labels, positions).
        lookback: past periods the run-rate learns from (24 months, 8
            quarters or 3 years by default).
        min_history: closed deals needed to learn the time to close.
        min_samples: closed deals needed to learn a stage's win rate.

    Raises:
        ValidationError: a bad period label, currency, count or enum value; a
            naive ``as_of``; a missing exchange rate (code ``no_rate``).
    """
    first = _fiscal_start(fiscal_start)
    wanted = parse_period(period, fiscal_start=first)
    moment = _check_aware(as_of, "as_of")
    valuer = _Valuer(_currency(currency), rate)
    sims = _check_count(simulations, "simulations", 1)
    replicates = _check_count(bootstrap, "bootstrap", 0)
    source = _enum(ProbabilitySource, probabilities, "probabilities")
    when = _enum(Timing, timing, "timing")
    if pipeline is not None and pipeline not in book.pipelines:
        raise ValidationError(
            "pipeline", "the book has no such pipeline", code="pipeline", value=pipeline
        )
    settings = _Settings(
        period=wanted,
        as_of=moment,
        valuer=valuer,
        seed=_check_seed(seed),
        simulations=sims,
        bootstrap=replicates,
        probabilities=source,
        timing=when,
        scope=_scope(owners, zones, pipeline),
        new_deals=bool(new_deals),
        fiscal_start=first,
        lookback=None if lookback is None else _check_count(lookback, "lookback", 1),
        min_history=_check_count(min_history, "min_history", 1),
        min_samples=_check_count(min_samples, "min_samples", 1),
    )
    run = _run(book, settings)
    return _result(run, wanted, moment, valuer, source, seed, sims, replicates)


def _result(
    run: _Run,
    period: Period,
    as_of: datetime,
    valuer: _Valuer,
    source: ProbabilitySource,
    seed: int,
    simulations: int,
    bootstrap: int,
) -> Forecast:
    totals = sorted(p + n for p, n in zip(run.pipeline, run.new, strict=True))
    base = run.won + run.certain
    whole = _part(ForecastPartKind.WON, base, totals, valuer)  # the total, as a part
    return Forecast(
        period=period,
        as_of=as_of,
        currency=valuer.currency,
        p10=whole.p10,
        p50=whole.p50,
        p90=whole.p90,
        expected=whole.expected,
        parts=(
            _part(ForecastPartKind.WON, run.won, [0.0], valuer),
            _part(ForecastPartKind.PIPELINE, run.certain, run.pipeline, valuer),
            _part(ForecastPartKind.NEW, Decimal(0), run.new, valuer),
        ),
        probabilities=source,
        timing=run.timing,
        open_deals=run.open_deals,
        history=run.history,
        analogs=run.analogs,
        seed=seed,
        simulations=simulations,
        bootstrap=bootstrap,
    )


def _enum(cls: type[_E], value: object, name: str) -> _E:
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        raise ValidationError(
            name, f"must be one of: {', '.join(str(m.value) for m in cls)}", value=value
        ) from None


# =============================================================== attainment


@frozen(kw_only=True)
class ForecastSeries(Tabular):
    """Forecasts of consecutive periods made at one moment (a forecast fan).

    Attributes:
        forecasts: one per period, in order.
    """

    forecasts: tuple[Forecast, ...]

    def fan(self) -> tuple[tuple[str, Money, Money, Money], ...]:
        """``(label, p10, p50, p90)`` per period, as ``crmkit.analysis.forecast_fan`` takes."""
        return tuple((f.period.label, f.p10, f.p50, f.p90) for f in self.forecasts)

    def table(self) -> Table:
        """One row per period: expected, P10, P50, P90 and the currency."""
        first = self.forecasts[0] if self.forecasts else None
        return Table.of(
            "Forecast" + (f" as of {first.as_of.isoformat()}" if first else ""),
            ("period", "expected", "p10", "p50", "p90", "currency"),
            ((f.period.label, f.expected, f.p10, f.p50, f.p90, f.currency) for f in self.forecasts),
            (("probabilities", first.probabilities), ("timing", first.timing)) if first else (),
        )


@frozen(kw_only=True)
class Attainment(Tabular):
    """How far a sales target is reached, and how likely it is to be.

    Attributes:
        target: the target.
        as_of: the moment it is measured at.
        won: the value won in the target's period by ``as_of``, by the
            target's user (deals they own), team (deals its members own) or
            zone (deals of organizations in it), in the target's currency.
        attainment: ``won / target.amount``, to 4 decimal places.
        probability: the share of the forecast's simulations in which the
            period's won value reaches the target (1 or 0 once the period is
            over), to 4 decimal places.
        forecast: the period's forecast for the same scope.
    """

    target: SalesTarget
    as_of: datetime
    won: Money
    attainment: Decimal
    probability: Decimal
    forecast: Forecast

    #: the columns of :meth:`row`
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "scope", "owner", "period", "target", "won", "attainment", "probability",
        "p10", "p50", "p90", "currency",
    )  # fmt: skip

    def row(self) -> tuple[object, ...]:
        """The attainment as one row of :attr:`COLUMNS`."""
        t = self.target
        return (
            t.scope, t.user_id or t.team_id or t.zone_id, t.period.label, t.amount, self.won,
            self.attainment, self.probability, self.forecast.p10, self.forecast.p50,
            self.forecast.p90, t.amount.currency,
        )  # fmt: skip

    def table(self) -> Table:
        """This result as a table (HTML in Jupyter, ``to_pandas()``)."""
        return Table.of(*self._table())

    def _table(self) -> _TableArgs:
        return (
            f"Target attainment as of {self.as_of.isoformat()}",
            self.COLUMNS,
            (self.row(),),
            (),
        )


@frozen(kw_only=True)
class AttainmentReport(Tabular):
    """The attainment of several targets, each with a readable label.

    Attributes:
        period: the targets' period.
        as_of: the moment they are measured at.
        attainments: one per target.
        labels: per target, the name of its user, team or zone.
    """

    period: Period
    as_of: datetime
    attainments: tuple[Attainment, ...]
    labels: tuple[str, ...]

    def bars(self) -> tuple[tuple[str, Money, Money], ...]:
        """``(label, won, target)`` per target, as ``crmkit.analysis.attainment_chart`` takes."""
        return tuple(
            (label, a.won, a.target.amount)
            for label, a in zip(self.labels, self.attainments, strict=True)
        )

    def table(self) -> Table:
        """One row per target: :attr:`Attainment.COLUMNS` after the label."""
        return Table.of(
            f"Target attainment {self.period.label} as of {self.as_of.isoformat()}",
            ("name", *Attainment.COLUMNS),
            ((label, *a.row()) for label, a in zip(self.labels, self.attainments, strict=True)),
        )


def attainment(
    book: Book,
    target: SalesTarget,
    *,
    as_of: datetime,
    members: Collection[UserId] = (),
    seed: int = 0,
    simulations: int = SIMULATIONS,
    bootstrap: int = BOOTSTRAP,
    probabilities: ProbabilitySource | str = ProbabilitySource.MANUAL,
    timing: Timing | str = Timing.HISTORY,
    new_deals: bool = True,
    rate: RateFunction | None = None,
) -> Attainment:
    """Attainment of ``target`` at ``as_of`` and the probability of reaching it.

    Args:
        book: the snapshot.
        target: the sales target.
        as_of: the moment.
        members: for a team's target, the team's members (the owners whose
            deals count).
        seed: as in :func:`forecast`.
        simulations: as in :func:`forecast`.
        bootstrap: as in :func:`forecast`.
        probabilities: as in :func:`forecast`.
        timing: as in :func:`forecast`.
        new_deals: as in :func:`forecast`.
        rate: exchange rates (amounts in other currencies than the target's).

    Raises:
        ValidationError: as :func:`forecast`.
    """
    if not isinstance(target, SalesTarget):
        raise ValidationError("target", "must be a SalesTarget", code="type", value=target)
    owners: Collection[UserId] | None = None
    zones: Collection[ZoneId] | None = None
    if target.user_id is not None:
        owners = (target.user_id,)
    elif target.team_id is not None:
        owners = tuple(members)
    else:
        zones = (target.zone_id,)  # type: ignore[assignment]
    moment = _check_aware(as_of, "as_of")
    valuer = _Valuer(target.amount.currency, rate)
    sims = _check_count(simulations, "simulations", 1)
    replicates = _check_count(bootstrap, "bootstrap", 0)
    source = _enum(ProbabilitySource, probabilities, "probabilities")
    settings = _Settings(
        period=target.period,
        as_of=moment,
        valuer=valuer,
        seed=_check_seed(seed),
        simulations=sims,
        bootstrap=replicates,
        probabilities=source,
        timing=_enum(Timing, timing, "timing"),
        scope=_scope(owners, zones, None),
        new_deals=bool(new_deals),
        fiscal_start=target.fiscal_start,
    )
    run = _run(book, settings)
    needed = float(target.amount.amount - run.won - run.certain)
    reached = sum(1 for p, n in zip(run.pipeline, run.new, strict=True) if p + n >= needed)
    return Attainment(
        target=target,
        as_of=moment,
        won=_money(run.won, valuer),
        attainment=(run.won / target.amount.amount).quantize(_RATIO, rounding=ROUND_HALF_EVEN),
        probability=(Decimal(reached) / Decimal(len(run.pipeline))).quantize(_RATIO),
        forecast=_result(run, target.period, moment, valuer, source, seed, sims, replicates),
    )


# ================================================================= backtest


@frozen(kw_only=True)
class ForecastRequest:
    """What a forecast method is asked: the period's revenue as seen at ``as_of``.

    The book holds the whole history: a method must not look past
    ``as_of`` (:meth:`~crmkit.core.analytics.Book.at` gives what was known).
    """

    book: Book
    period: Period
    as_of: datetime
    currency: str
    rate: RateFunction | None
    seed: int
    pipeline: str | None = None
    fiscal_start: int = 1


@frozen(kw_only=True)
class ForecastEstimate:
    """A method's answer.

    Attributes:
        point: its forecast of the period's won revenue.
        p10, p90: its interval, when it gives one (for coverage).
        chances: its chance that each deal open at ``as_of`` is won within
            the period, when it gives them (for the Brier score).
    """

    point: Money
    p10: Money | None = None
    p90: Money | None = None
    chances: Mapping[OpportunityId, float] = field(factory=lambda: MappingProxyType({}))


@frozen(kw_only=True)
class ForecastMethod:
    """A named way of forecasting a period (``crmkit_register_forecast_methods``)."""

    name: str
    estimate: Callable[[ForecastRequest], ForecastEstimate]


def _weighted(request: ForecastRequest) -> ForecastEstimate:
    """The weighted sum: won so far, plus amount x probability of each open deal
    whose expected close date falls in the period."""
    valuer = _Valuer(request.currency, request.rate)
    start, end = _midnight(request.period.start), _midnight(request.period.end)
    total = Decimal(0)
    chances: dict[OpportunityId, float] = {}
    for deal in _select(request.book, request.as_of, request.pipeline):
        if deal.status is StageKind.WON and deal.closed_at and start <= deal.closed_at < end:
            total += valuer.amount(deal, deal.closed_at.date())
        elif deal.in_pipeline:
            inside = deal.expected_close is not None and deal.expected_close in request.period
            chances[deal.id] = float(deal.probability) if inside else 0.0
            if inside:
                total += valuer.weigh(valuer.amount(deal, request.as_of.date()), deal.probability)
    return ForecastEstimate(point=Money(total, valuer.currency), chances=chances)


def _probabilistic(request: ForecastRequest) -> ForecastEstimate:
    """The probabilistic forecast's P50, with its P10-P90 and the deals' chances."""
    valuer = _Valuer(request.currency, request.rate)
    settings = _Settings(
        period=request.period,
        as_of=request.as_of,
        valuer=valuer,
        seed=request.seed,
        simulations=1000,
        bootstrap=50,
        probabilities=ProbabilitySource.MANUAL,
        timing=Timing.HISTORY,
        scope=_Scope(pipeline=request.pipeline),
        new_deals=True,
        fiscal_start=request.fiscal_start,
        keep_chances=True,
    )
    run = _run(request.book, settings)
    result = _result(
        run, request.period, request.as_of, valuer, ProbabilitySource.MANUAL, request.seed, 1, 1
    )
    return ForecastEstimate(point=result.p50, p10=result.p10, p90=result.p90, chances=run.chances)


#: The weighted sum of the open deals expected to close in the period.
weighted_method: Final = ForecastMethod(name="weighted", estimate=_weighted)
#: :func:`forecast` with its defaults: P50 as the point, P10-P90 as the interval.
probabilistic_method: Final = ForecastMethod(name="probabilistic", estimate=_probabilistic)


@frozen(kw_only=True)
class BacktestRow:
    """One method's forecast of one past period, made at the period's start.

    Attributes:
        method: the method's name.
        period: the period forecast.
        as_of: when the forecast was made (the period's first moment).
        actual: the value won in the period, as it stood at its end.
        point, p10, p90: the method's answer.
        error: ``|point - actual| / actual`` (``None`` when nothing was won).
        covered: ``p10 <= actual <= p90`` (``None`` without an interval).
    """

    method: str
    period: Period
    as_of: datetime
    actual: Money
    point: Money
    p10: Money | None
    p90: Money | None
    error: Decimal | None
    covered: bool | None


@frozen(kw_only=True)
class MethodScore:
    """How good a method was over the backtest's periods.

    Attributes:
        method: its name.
        periods: periods forecast.
        mape: the mean of the rows' ``error`` (periods with nothing won are
            left out; ``None`` when none is left).
        coverage: the share of periods whose actual fell in P10-P90
            (``None`` when the method gives no interval).
        brier: the mean of ``(chance - won)^2`` over every deal the method
            gave a chance for, ``won`` 1 if the deal was won within the period
            (``None`` when it gives no chances).
        deals: how many chances the Brier score averages.
    """

    method: str
    periods: int
    mape: Decimal | None
    coverage: Decimal | None
    brier: Decimal | None
    deals: int


@frozen(kw_only=True)
class Backtest(Tabular):
    """Each method's forecasts of past periods against what happened."""

    as_of: datetime
    currency: str
    rows: tuple[BacktestRow, ...]
    scores: tuple[MethodScore, ...]

    def table(self) -> Table:
        """This result as a table (HTML in Jupyter, ``to_pandas()``)."""
        return Table.of(*self._table())

    def _table(self) -> _TableArgs:
        """One row per method and period; each method's scores are the notes."""
        return (
            f"Backtest as of {self.as_of.isoformat()}",
            ("method", "period", "as_of", "actual", "point", "p10", "p90", "error", "covered",
             "currency"),
            tuple(
                (r.method, r.period.label, r.as_of, r.actual, r.point, r.p10, r.p90, r.error,
                 r.covered, self.currency)
                for r in self.rows
            ),
            tuple(
                (f"{s.method} {name}", value)
                for s in self.scores
                for name, value in (("MAPE", s.mape), ("coverage", s.coverage),
                                    ("Brier", s.brier))
            ),
        )  # fmt: skip


def backtest(
    book: Book,
    *,
    as_of: datetime,
    currency: str,
    kind: PeriodKind | str = PeriodKind.MONTH,
    periods: int = 6,
    methods: Sequence[ForecastMethod] = (weighted_method, probabilistic_method),
    rate: RateFunction | None = None,
    seed: int = 0,
    pipeline: str | None = None,
    fiscal_start: int = 1,
) -> Backtest:
    """Replay history: forecast each of the last ``periods`` complete periods.

    Each period is forecast at its first moment (midnight UTC of its first
    day) from the book as it stood then, by each method; the actual is the
    value won in the period as it stood at its end.  Every amount is in
    ``currency`` (the actual's converted at each close day).

    Raises:
        ValidationError: a bad kind, count, currency or method; a method that
            returns something else than a :class:`ForecastEstimate` (field
            ``methods``).
    """
    moment = _check_aware(as_of, "as_of")
    first = _fiscal_start(fiscal_start)
    code = _currency(currency)
    valuer = _Valuer(code, rate)
    count = _check_count(periods, "periods", 1)
    chosen = tuple(methods)
    for i, method in enumerate(chosen):
        if not isinstance(method, ForecastMethod):
            raise ValidationError(
                f"methods[{i}]", "must be a ForecastMethod", code="type", value=method
            )
    current = Period.containing(moment.date(), _enum(PeriodKind, kind, "kind"), fiscal_start=first)
    candidates = (current, *previous_periods(current, count, fiscal_start=first))
    past = [p for p in candidates if _midnight(p.end) <= moment][:count]
    rows: list[BacktestRow] = []
    briers: dict[str, list[float]] = {m.name: [] for m in chosen}
    for period in reversed(past):
        start, end = _midnight(period.start), _midnight(period.end)
        outcome = {
            d.id: d
            for d in _select(book, end, pipeline)
            if d.status is StageKind.WON and d.closed_at is not None and start <= d.closed_at < end
        }
        actual = _money(
            sum(
                (valuer.amount(d, d.closed_at.date()) for d in outcome.values() if d.closed_at),
                Decimal(0),
            ),
            valuer,
        )
        request = ForecastRequest(
            book=book,
            period=period,
            as_of=start,
            currency=code,
            rate=rate,
            seed=seed,
            pipeline=pipeline,
            fiscal_start=first,
        )
        for method in chosen:
            estimate = method.estimate(request)
            if not isinstance(estimate, ForecastEstimate):
                raise ValidationError(
                    "methods",
                    f"forecast method {method.name!r} must return a ForecastEstimate",
                    code="type",
                    value=estimate,
                )
            for deal_id, chance in estimate.chances.items():
                briers[method.name].append((chance - (deal_id in outcome)) ** 2)
            error = None
            if actual.amount:
                error = (abs(estimate.point.amount - actual.amount) / actual.amount).quantize(
                    _RATIO
                )
            covered = None
            if estimate.p10 is not None and estimate.p90 is not None:
                covered = estimate.p10.amount <= actual.amount <= estimate.p90.amount
            rows.append(
                BacktestRow(
                    method=method.name,
                    period=period,
                    as_of=start,
                    actual=actual,
                    point=estimate.point,
                    p10=estimate.p10,
                    p90=estimate.p90,
                    error=error,
                    covered=covered,
                )
            )
    scores = []
    for method in chosen:
        mine = [r for r in rows if r.method == method.name]
        errors = [r.error for r in mine if r.error is not None]
        covers = [r.covered for r in mine if r.covered is not None]
        squares = briers[method.name]
        scores.append(
            MethodScore(
                method=method.name,
                periods=len(mine),
                mape=_mean(errors),
                coverage=_mean([Decimal(c) for c in covers]),
                brier=_mean([Decimal(repr(s)) for s in squares]),
                deals=len(squares),
            )
        )
    return Backtest(as_of=moment, currency=code, rows=tuple(rows), scores=tuple(scores))


def _mean(values: Sequence[Decimal]) -> Decimal | None:
    if not values:
        return None
    return (sum(values, Decimal(0)) / len(values)).quantize(_RATIO, rounding=ROUND_HALF_EVEN)


# ============================================================== calibration


@frozen(kw_only=True)
class ReliabilityBin:
    """Predictions in ``[lower, upper)`` (the last bin includes 1) and how they came out.

    Attributes:
        count: predictions in the bin.
        predicted: their mean (``None`` when empty).
        observed: the share of them won (``None`` when empty).
    """

    lower: Decimal
    upper: Decimal
    count: int
    predicted: Decimal | None
    observed: Decimal | None


@frozen(kw_only=True)
class CalibrationRow:
    """How well one probability source predicted the outcomes.

    Attributes:
        source: stage, manual or empirical.
        observations: (deal, snapshot) pairs scored.
        brier: the mean of ``(probability - won)^2``; 0 is perfect, 0.25 is
            what always saying one half scores.
        bins: the reliability diagram, ten bins of width 0.1.
    """

    source: ProbabilitySource
    observations: int
    brier: Decimal | None
    bins: tuple[ReliabilityBin, ...]


@frozen(kw_only=True)
class Calibration(Tabular):
    """Probabilities at past snapshots against what became of the deals.

    Attributes:
        as_of: when the outcomes are read.
        snapshots: the moments the probabilities were read at.
        rows: one per :class:`ProbabilitySource`.
    """

    as_of: datetime
    snapshots: tuple[datetime, ...]
    rows: tuple[CalibrationRow, ...]

    def table(self) -> Table:
        """This result as a table (HTML in Jupyter, ``to_pandas()``)."""
        return Table.of(*self._table())

    def _table(self) -> _TableArgs:
        """One row per source and reliability bin; each source's Brier score is a note."""
        return (
            f"Calibration as of {self.as_of.isoformat()}",
            ("source", "lower", "upper", "count", "predicted", "observed"),
            tuple(
                (r.source, b.lower, b.upper, b.count, b.predicted, b.observed)
                for r in self.rows
                for b in r.bins
            ),
            tuple((f"{r.source.value} Brier", r.brier) for r in self.rows),
        )


def calibration(
    book: Book,
    *,
    as_of: datetime,
    snapshots: int = 12,
    min_samples: int = MIN_SAMPLES,
    pipeline: str | None = None,
) -> Calibration:
    """Brier score and reliability bins of each probability source.

    The snapshots are the first moments (midnight UTC) of the ``snapshots``
    calendar months before ``as_of``'s month.  At each one, every deal then
    open or on hold that is won or lost at ``as_of`` is one observation: its
    outcome is 1 if won; its probability is, per source, the default of the
    stage it was in (``stage``), its own probability then (``manual``), or
    its stage's win rate learned from the deals closed before the snapshot
    (``empirical``, with ``min_samples`` and the stage default as fallback).

    Raises:
        ValidationError: a bad count; an unknown pipeline; a naive ``as_of``.
    """
    moment = _check_aware(as_of, "as_of")
    count = _check_count(snapshots, "snapshots", 1)
    samples = _check_count(min_samples, "min_samples", 1)
    outcome = {
        d.id: d.status is StageKind.WON
        for d in _select(book, moment, pipeline)
        if d.closed_at is not None
    }
    month = Period.containing(moment.date(), PeriodKind.MONTH)
    moments = tuple(_midnight(p.start) for p in reversed(previous_periods(month, count)))
    observed: dict[ProbabilitySource, list[tuple[float, bool]]] = {s: [] for s in ProbabilitySource}
    for snapshot in moments:
        learned = {
            (r.pipeline, r.stage): float(r.probability)
            for r in stage_win_rates(book, as_of=snapshot, min_samples=samples, pipeline=pipeline)
        }
        for deal in _select(book, snapshot, pipeline):
            if not deal.in_pipeline or deal.id not in outcome:
                continue
            won = outcome[deal.id]
            default = float(book.pipelines[deal.pipeline].stage(deal.stage).probability)
            observed[ProbabilitySource.STAGE].append((default, won))
            observed[ProbabilitySource.MANUAL].append((float(deal.probability), won))
            observed[ProbabilitySource.EMPIRICAL].append(
                (learned.get((deal.pipeline, deal.stage), default), won)
            )
    return Calibration(
        as_of=moment,
        snapshots=moments,
        rows=tuple(_calibration_row(s, pairs) for s, pairs in observed.items()),
    )


def _calibration_row(
    source: ProbabilitySource, pairs: Iterable[tuple[float, bool]]
) -> CalibrationRow:
    items = list(pairs)
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(10)]
    for p, won in items:
        bins[min(int(p * 10), 9)].append((p, won))
    tenth = Decimal("0.1")
    return CalibrationRow(
        source=source,
        observations=len(items),
        brier=_mean([Decimal(repr((p - won) ** 2)) for p, won in items]),
        bins=tuple(
            ReliabilityBin(
                lower=tenth * i,
                upper=tenth * (i + 1),
                count=len(b),
                predicted=_mean([Decimal(repr(p)) for p, _ in b]),
                observed=_mean([Decimal(won) for _, won in b]),
            )
            for i, b in enumerate(bins)
        ),
    )
