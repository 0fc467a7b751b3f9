"""The probabilistic forecast, attainment, backtest and calibration, as pure functions.

Books are made with the real transition functions: each deal is opened at a
moment, optionally won or lost at a later one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import Money, ValidationError
from crmkit.core import changes
from crmkit.core.analytics import Book, Period, PeriodKind, Revision
from crmkit.core.entities import LossReason
from crmkit.core.forecast import (
    Attainment,
    Backtest,
    Calibration,
    Forecast,
    ForecastEstimate,
    ForecastMethod,
    ForecastPartKind,
    ForecastRequest,
    ProbabilitySource,
    Timing,
    attainment,
    backtest,
    calibration,
    forecast,
    parse_period,
    previous_periods,
    probabilistic_method,
    stage_win_rates,
    weighted_method,
)
from crmkit.core.ids import (
    LossReasonId,
    OpportunityId,
    OrganizationId,
    SalesTargetId,
    TeamId,
    UserId,
    ZoneId,
    uuid7,
)
from crmkit.core.opportunities import Opportunity
from crmkit.core.targets import SalesTarget
from crmkit.core.transitions import lose, open_opportunity, win
from crmkit.plugins.builtin_pipelines import SALES

T0: Final = datetime(2025, 1, 1, tzinfo=UTC)
AS_OF: Final = datetime(2027, 1, 10, tzinfo=UTC)
Q1: Final = parse_period("2027-Q1")
REASON: Final = changes.create(LossReason, id=LossReasonId(uuid7()), now=T0, key="p", name="p")[0]
ANA, LUIS = UserId(uuid7()), UserId(uuid7())
ORG = OrganizationId(uuid7())
NORTE = ZoneId(uuid7())


def EUR(amount: str | int | Decimal) -> Money:  # noqa: N802
    """``amount`` euros."""
    return Money(Decimal(amount), "EUR")


def deal(
    opened: datetime,
    amount: Money | None = None,
    *,
    won: datetime | None = None,
    lost: datetime | None = None,
    probability: Decimal | None = None,
    expected_close: date | None = None,
    owner: UserId | None = None,
    organization: OrganizationId | None = None,
) -> Opportunity:
    """An opportunity opened in ``proposal`` at ``opened``, then won or lost."""
    opp, _ = open_opportunity(
        SALES,
        id=OpportunityId(uuid7()),
        now=opened,
        by=None,
        stage="proposal",
        name="Deal",
        amount=amount or EUR(1000),
        probability=probability,
        expected_close=expected_close,
        owner_id=owner,
        organization_id=organization,
    )
    event = None
    if won is not None:
        opp, event = win(opp, SALES, now=won, by=None, expected_close=won.date())
    if lost is not None:
        opp, event = lose(opp, SALES, reason=REASON, note=None, now=lost, by=None)
    if event is not None:
        REVISIONS[opp.id] = Revision.from_changes(opp.id, event.change.at, event.changes)
    return opp


#: the revisions of each deal's close (its probability override, amount...)
REVISIONS: Final[dict[OpportunityId, tuple[Revision, ...]]] = {}


def book(*opportunities: Opportunity) -> Book:
    return Book(
        opportunities=opportunities,
        pipelines=[SALES],
        zones={ORG: NORTE},
        revisions=[r for o in opportunities for r in REVISIONS.get(o.id, ())],
    )


def history(
    n: int, *, cycle: timedelta, won_every: int = 2, end: datetime = AS_OF
) -> list[Opportunity]:
    """``n`` closed deals, each lasting exactly ``cycle``, one in ``won_every`` won."""
    result = []
    for i in range(n):
        opened = end - cycle - timedelta(days=i + 1)
        close = opened + cycle
        result.append(
            deal(
                opened,
                won=close if i % won_every == 0 else None,
                lost=None if i % won_every == 0 else close,
            )
        )
    return result


# ================================================================= periods


@pytest.mark.parametrize(
    ("label", "fiscal_start", "start", "end"),
    [
        ("2027-03", 1, date(2027, 3, 1), date(2027, 4, 1)),
        ("2027-Q1", 1, date(2027, 1, 1), date(2027, 4, 1)),
        ("2027", 1, date(2027, 1, 1), date(2028, 1, 1)),
        ("FY2027-Q3", 7, date(2027, 1, 1), date(2027, 4, 1)),
        ("FY2027", 7, date(2026, 7, 1), date(2027, 7, 1)),
        ("fy2027-q1", 7, date(2026, 7, 1), date(2026, 10, 1)),
    ],
)
def test_a_period_label_names_the_period_that_carries_it(
    label: str, fiscal_start: int, start: date, end: date
) -> None:
    period = parse_period(label, fiscal_start=fiscal_start)
    assert (start, end) == (period.start, period.end)
    assert period.label == label.upper()


@pytest.mark.parametrize(
    ("label", "fiscal_start"),
    [("2027-13", 1), ("2027-Q5", 1), ("FY2027-Q1", 1), ("2027-Q1", 7), ("Q1", 1), ("", 1)],
)
def test_a_bad_period_label_is_refused(label: str, fiscal_start: int) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_period(label, fiscal_start=fiscal_start)
    assert ("period", "period") == (caught.value.field, caught.value.code)


def test_previous_periods_go_back_across_years() -> None:
    labels = [p.label for p in previous_periods(Q1, 3)]
    assert ["2026-Q4", "2026-Q3", "2026-Q2"] == labels


def target(**fields: object) -> SalesTarget:
    values: dict[str, object] = {
        "period_kind": PeriodKind.QUARTER,
        "period_start": date(2027, 1, 1),
        "amount": EUR(10_000),
    }
    values.update(fields)
    return changes.create(SalesTarget, id=SalesTargetId(uuid7()), now=T0, **values)[0]


# ================================================================ forecast


def run(b: Book, **kwargs: Any) -> Forecast:
    options: dict[str, Any] = {
        "period": Q1,
        "as_of": AS_OF,
        "currency": "EUR",
        "simulations": 400,
        "bootstrap": 20,
    }
    options.update(kwargs)
    return forecast(b, **options)


def test_a_deal_that_always_closes_in_the_period_weighs_its_win_probability() -> None:
    """History: every deal closes after exactly 10 days; a 5-day-old deal at 0.5 closes
    inside Q1 for sure, so its chance is its probability."""
    young = deal(AS_OF - timedelta(days=5), EUR(8000), probability=Decimal("0.5"))
    b = book(young, *history(30, cycle=timedelta(days=10)))
    request = ForecastRequest(book=b, period=Q1, as_of=AS_OF, currency="EUR", rate=None, seed=1)
    assert 0.5 == probabilistic_method.estimate(request).chances[young.id]


def test_a_deal_older_than_every_cycle_leaves_it_to_its_expected_close_date() -> None:
    old = deal(AS_OF - timedelta(days=90), EUR(8000), expected_close=date(2027, 2, 1))
    late = deal(AS_OF - timedelta(days=90), EUR(8000), expected_close=date(2027, 5, 1))
    b = book(old, late, *history(30, cycle=timedelta(days=10)))
    request = ForecastRequest(book=b, period=Q1, as_of=AS_OF, currency="EUR", rate=None, seed=1)
    chances = probabilistic_method.estimate(request).chances
    assert (0.5, 0.0) == (chances[old.id], chances[late.id])


def test_the_close_time_distribution_counts_open_deals_as_censored() -> None:
    """Half the deals closed at 10 days, the other half are still open at 40 days:
    a 5-day-old deal has a half chance of closing at 10 days (within Q1), not 100%."""
    young = deal(AS_OF - timedelta(days=5), probability=Decimal(1))
    stale = [deal(AS_OF - timedelta(days=40)) for _ in range(30)]
    b = book(young, *stale, *history(30, cycle=timedelta(days=10)))
    request = ForecastRequest(book=b, period=Q1, as_of=AS_OF, currency="EUR", rate=None, seed=1)
    assert 0.5 == pytest.approx(probabilistic_method.estimate(request).chances[young.id])


def test_too_little_history_falls_back_to_expected_close_dates() -> None:
    b = book(deal(AS_OF, expected_close=date(2027, 2, 1)), *history(3, cycle=timedelta(days=9)))
    assert Timing.EXPECTED_CLOSE is run(b).timing


def test_the_forecast_adds_what_was_won_in_the_period_already() -> None:
    won = deal(datetime(2027, 1, 2, tzinfo=UTC), EUR(700), won=datetime(2027, 1, 5, tzinfo=UTC))
    before = deal(T0, EUR(900), won=datetime(2026, 12, 30, tzinfo=UTC))
    result = run(book(won, before), new_deals=False)
    assert EUR(700) == result.part("won").expected == result.p10 == result.p90


def test_a_period_already_over_is_what_was_won_in_it() -> None:
    won = deal(datetime(2026, 2, 2, tzinfo=UTC), EUR(700), won=datetime(2026, 3, 5, tzinfo=UTC))
    open_ = deal(datetime(2026, 2, 2, tzinfo=UTC), EUR(5000), probability=Decimal(1))
    result = run(book(won, open_), period="2026-Q1")
    assert (EUR(700), EUR(700)) == (result.p10, result.p90)


def _seasonal_history() -> list[Opportunity]:
    """Two years in which deals are created and won within the first month of
    each quarter (one a week, 1000 each), never in the second or third month."""
    deals = []
    for quarter in previous_periods(Q1, 8):
        first = datetime.combine(quarter.start, datetime.min.time(), tzinfo=UTC)
        for week in range(4):
            opened = first + timedelta(days=7 * week)
            deals.append(deal(opened, EUR(1000), won=opened + timedelta(days=2)))
    return deals


def test_the_run_rate_follows_the_period_position_in_its_quarter() -> None:
    b = book(*_seasonal_history())
    january = run(b, period="2027-01", as_of=datetime(2026, 12, 31, tzinfo=UTC), bootstrap=0)
    february = run(b, period="2027-02", as_of=datetime(2027, 1, 31, tzinfo=UTC), bootstrap=0)
    assert january.part(ForecastPartKind.NEW).expected > EUR(2000)
    assert EUR(0) == february.part(ForecastPartKind.NEW).p90
    assert 8 == january.analogs


def test_without_new_deals_the_run_rate_is_zero() -> None:
    b = book(*_seasonal_history())
    result = run(b, period="2027-01", as_of=datetime(2026, 12, 31, tzinfo=UTC), new_deals=False)
    assert EUR(0) == result.part("new").p90


def test_the_bootstrap_widens_the_interval_of_a_short_history() -> None:
    """Three past quarters of very different run-rates: resampling them spreads the rate."""
    deals = []
    for count, quarter in zip((1, 6, 12), previous_periods(Q1, 3), strict=True):
        first = datetime.combine(quarter.start, datetime.min.time(), tzinfo=UTC)
        deals += [
            deal(first + timedelta(days=i), EUR(1000), won=first + timedelta(days=i + 1))
            for i in range(count)
        ]
    b = book(*deals)
    as_of = datetime(2027, 1, 1, tzinfo=UTC)
    fixed = run(b, as_of=as_of, bootstrap=0, simulations=2000, lookback=3)
    resampled = run(b, as_of=as_of, bootstrap=200, simulations=2000, lookback=3)
    assert resampled.p90.amount - resampled.p10.amount > fixed.p90.amount - fixed.p10.amount


def test_amounts_in_another_currency_need_a_rate() -> None:
    dollars = deal(
        AS_OF, Money("1000", "USD"), probability=Decimal(1), expected_close=date(2027, 2, 1)
    )
    with pytest.raises(ValidationError) as caught:
        run(book(dollars), timing="expected_close")
    assert ("currency", "no_rate") == (caught.value.field, caught.value.code)
    result = run(
        book(dollars),
        timing="expected_close",
        rate=lambda base, quote, on: Decimal("0.9"),
        new_deals=False,
    )
    assert EUR(900) == result.p50


@pytest.mark.parametrize(
    ("argument", "value", "code"),
    [
        ("simulations", 0, "range"),
        ("bootstrap", -1, "range"),
        ("seed", "x", "type"),
        ("probabilities", "gut", "invalid"),
        ("period", "2027-Q9", "period"),
        ("as_of", datetime(2027, 1, 1), "type"),
        ("pipeline", "nope", "pipeline"),
    ],
)
def test_bad_forecast_arguments_are_refused(argument: str, value: object, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        run(book(), **{argument: value})
    assert code == caught.value.code


# ============================================================== properties


@st.composite
def books(draw: st.DrawFn, *, certain: bool = False) -> Book:
    """Random books: open deals of random age, probability and close date; closed history."""
    opportunities = []
    for _ in range(draw(st.integers(0, 12))):
        opened = AS_OF - timedelta(days=draw(st.integers(0, 400)))
        probability = (
            draw(st.sampled_from([Decimal(0), Decimal(1)]))
            if certain
            else draw(st.none() | st.decimals(0, 1, places=2))
        )
        opportunities.append(
            deal(
                opened,
                EUR(draw(st.integers(0, 10**6))),
                probability=probability,
                expected_close=draw(st.none() | st.dates(date(2026, 10, 1), date(2027, 6, 30))),
                owner=draw(st.sampled_from([ANA, LUIS, None])),
            )
        )
    for _ in range(draw(st.integers(0, 30))):
        opened = AS_OF - timedelta(days=draw(st.integers(1, 700)))
        closed = min(AS_OF, opened + timedelta(days=draw(st.integers(0, 200))))
        won = draw(st.booleans())
        opportunities.append(
            deal(
                opened,
                EUR(draw(st.integers(0, 10**5))),
                won=closed if won else None,
                lost=None if won else closed,
                owner=draw(st.sampled_from([ANA, LUIS])),
            )
        )
    return book(*opportunities)


@settings(max_examples=40)
@given(b=books(), seed=st.integers(0, 2**32), source=st.sampled_from(ProbabilitySource))
def test_p10_is_at_most_p50_which_is_at_most_p90(
    b: Book, seed: int, source: ProbabilitySource
) -> None:
    result = run(b, seed=seed, probabilities=source, simulations=100, bootstrap=5)
    assert result.p10 <= result.p50 <= result.p90


@settings(max_examples=40)
@given(b=books(certain=True), seed=st.integers(0, 2**32))
def test_a_certain_book_forecasts_exactly_the_sum(b: Book, seed: int) -> None:
    """Probabilities 0 or 1, close dates certain, no run-rate: no spread at all."""
    result = run(b, seed=seed, timing=Timing.EXPECTED_CLOSE, new_deals=False)
    expected = sum(
        (
            d.amount.amount
            for d in b.at(AS_OF)
            if d.in_pipeline and d.probability == 1 and d.expected_close in Q1 and d.amount
        ),
        Decimal(0),
    ) + sum(
        (
            d.amount.amount
            for d in b.at(AS_OF)
            if d.closed_at and d.status.value == "won" and d.closed_at.date() in Q1 and d.amount
        ),
        Decimal(0),
    )
    assert EUR(expected) == result.p10 == result.p50 == result.p90 == result.expected


@settings(max_examples=25)
@given(b=books(), seed=st.integers(0, 2**32))
def test_the_same_seed_gives_the_same_forecast(b: Book, seed: int) -> None:
    assert run(b, seed=seed) == run(b, seed=seed)


@settings(max_examples=25)
@given(b=books(), amount=st.integers(1, 10**6), seed=st.integers(0, 2**16))
def test_attainment_never_falls_when_more_is_won(b: Book, amount: int, seed: int) -> None:
    goal = target(user_id=ANA)
    extra = deal(
        datetime(2027, 1, 2, tzinfo=UTC),
        EUR(amount),
        won=datetime(2027, 1, 3, tzinfo=UTC),
        owner=ANA,
    )
    more = attrs.evolve(b, opportunities=(*b.opportunities, extra))
    options: dict[str, Any] = {"as_of": AS_OF, "simulations": 100, "bootstrap": 5, "seed": seed}
    before, after = attainment(b, goal, **options), attainment(more, goal, **options)
    assert after.won - before.won == EUR(amount)
    assert after.attainment >= before.attainment


def test_attainment_counts_the_team_members_deals_and_the_chance_to_reach_it() -> None:
    mine = deal(
        datetime(2027, 1, 2, tzinfo=UTC), EUR(6000), won=datetime(2027, 1, 4, tzinfo=UTC), owner=ANA
    )
    theirs = deal(
        datetime(2027, 1, 2, tzinfo=UTC),
        EUR(3000),
        won=datetime(2027, 1, 4, tzinfo=UTC),
        owner=LUIS,
    )
    sure = deal(
        AS_OF, EUR(5000), probability=Decimal(1), expected_close=date(2027, 3, 1), owner=ANA
    )
    goal = target(team_id=TeamId(uuid7()))
    result = attainment(
        book(mine, theirs, sure), goal, as_of=AS_OF, members=[ANA], timing="expected_close"
    )
    assert (EUR(6000), Decimal("0.6000"), Decimal(1)) == (
        result.won,
        result.attainment,
        result.probability,
    )
    unreachable = attainment(book(mine), goal, as_of=AS_OF, members=[ANA], new_deals=False)
    assert Decimal(0) == unreachable.probability


def test_a_zone_target_counts_the_deals_of_organizations_in_the_zone() -> None:
    inside = deal(
        datetime(2027, 1, 2, tzinfo=UTC),
        EUR(2500),
        won=datetime(2027, 1, 4, tzinfo=UTC),
        organization=ORG,
    )
    outside = deal(
        datetime(2027, 1, 2, tzinfo=UTC), EUR(9000), won=datetime(2027, 1, 4, tzinfo=UTC)
    )
    result = attainment(book(inside, outside), target(zone_id=NORTE), as_of=AS_OF)
    assert EUR(2500) == result.won


# ================================================================= backtest


def _monthly_book() -> Book:
    """Each month of 2026: a deal opened on the 1st expected to close on the 20th
    at probability 0.5; even months' deals are won on the 20th, odd months' lost."""
    deals = []
    for month in range(1, 13):
        opened = datetime(2026, month, 1, 9, tzinfo=UTC)
        close = datetime(2026, month, 20, tzinfo=UTC)
        won = month % 2 == 0
        deals.append(
            deal(
                opened - timedelta(days=1),
                EUR(1000),
                probability=Decimal("0.5"),
                expected_close=close.date(),
                won=close if won else None,
                lost=None if won else close,
            )
        )
    return book(*deals)


def test_the_backtest_scores_each_method_on_past_periods() -> None:
    result = backtest(
        _monthly_book(), as_of=datetime(2027, 1, 1, tzinfo=UTC), currency="EUR", periods=4,
        methods=[weighted_method],
    )  # fmt: skip
    assert ["2026-09", "2026-10", "2026-11", "2026-12"] == [r.period.label for r in result.rows]
    assert [EUR(0), EUR(1000), EUR(0), EUR(1000)] == [r.actual for r in result.rows]
    assert all(r.point == EUR(500) for r in result.rows)
    (score,) = result.scores
    assert ("weighted", 4, Decimal("0.5000"), None) == (
        score.method,
        score.periods,
        score.mape,
        score.coverage,
    )
    assert (Decimal("0.2500"), 4) == (score.brier, score.deals)


def test_the_backtest_runs_a_users_method() -> None:
    def exactly(request: ForecastRequest) -> ForecastEstimate:
        return ForecastEstimate(point=EUR(1000), p10=EUR(0), p90=EUR(1000))

    result = backtest(
        _monthly_book(), as_of=datetime(2027, 1, 1, tzinfo=UTC), currency="EUR", periods=2,
        methods=[ForecastMethod(name="mine", estimate=exactly), probabilistic_method],
    )  # fmt: skip
    mine, probabilistic = result.scores
    assert (Decimal(0), Decimal(1), None) == (mine.mape, mine.coverage, mine.brier)
    assert probabilistic.coverage is not None


def test_a_method_that_answers_something_else_is_refused() -> None:
    bad = ForecastMethod(name="bad", estimate=lambda request: 5)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValidationError) as caught:
        backtest(
            _monthly_book(), as_of=datetime(2027, 1, 1, tzinfo=UTC), currency="EUR", methods=[bad]
        )
    assert "methods" == caught.value.field


# ============================================================== calibration


def test_calibration_scores_stage_manual_and_empirical_probabilities() -> None:
    """40 old deals (all in proposal, 0.5 by default) of which 3 in 4 were won; 20
    open on Dec 1st at a manual 0.9, all won in December."""
    march = datetime(2026, 3, 1, tzinfo=UTC)
    old = [
        deal(
            march - timedelta(days=i + 1),
            won=march if i % 4 else None,
            lost=None if i % 4 else march,
        )
        for i in range(40)
    ]
    december = datetime(2026, 12, 15, tzinfo=UTC)
    recent = [
        deal(december - timedelta(days=25), probability=Decimal("0.9"), won=december)
        for _ in range(20)
    ]
    result = calibration(book(*old, *recent), as_of=AS_OF, snapshots=1, min_samples=20)
    rows = {r.source: r for r in result.rows}
    assert (datetime(2026, 12, 1, tzinfo=UTC),) == result.snapshots
    assert 20 == rows[ProbabilitySource.STAGE].observations
    assert Decimal("0.2500") == rows[ProbabilitySource.STAGE].brier
    assert Decimal("0.0100") == rows[ProbabilitySource.MANUAL].brier
    assert Decimal("0.0625") == rows[ProbabilitySource.EMPIRICAL].brier
    ninety = rows[ProbabilitySource.MANUAL].bins[9]
    assert (20, Decimal("0.9000"), Decimal(1)) == (ninety.count, ninety.predicted, ninety.observed)


def test_empirical_rates_fall_back_to_the_stage_default_below_the_minimum_sample() -> None:
    closed = history(10, cycle=timedelta(days=5), won_every=1)  # all won
    rows = {r.stage: r for r in stage_win_rates(book(*closed), as_of=AS_OF, min_samples=10)}
    assert (Decimal(1), True) == (rows["proposal"].probability, rows["proposal"].learned)
    rows = {r.stage: r for r in stage_win_rates(book(*closed), as_of=AS_OF, min_samples=11)}
    assert (Decimal("0.5"), False) == (rows["proposal"].probability, rows["proposal"].learned)


def test_the_forecast_can_use_empirical_probabilities() -> None:
    closed = history(30, cycle=timedelta(days=5), won_every=1)  # all won: rate 1
    young = deal(AS_OF - timedelta(days=1), EUR(4000))
    result = run(book(young, *closed), probabilities="empirical", new_deals=False, bootstrap=0)
    pipeline = result.part("pipeline")
    assert EUR(4000) == pipeline.p10 == pipeline.p90


def test_every_result_is_a_table_with_html_and_a_dataframe() -> None:
    b = _monthly_book()
    as_of = datetime(2027, 1, 1, tzinfo=UTC)
    results: list[Forecast | Attainment | Backtest | Calibration] = [
        run(b, as_of=as_of),
        attainment(b, target(user_id=ANA), as_of=as_of, simulations=50),
        backtest(b, as_of=as_of, currency="EUR", periods=2, methods=[weighted_method]),
        calibration(b, as_of=as_of, snapshots=2),
    ]
    for result in results:
        table = result.table()
        assert table.title
        assert table.rows
        assert all(len(row) == len(table.columns) for row in table.rows)
        assert table.title in result._repr_html_()
        frame = result.to_pandas()
        assert list(frame.columns) == list(table.columns)
        assert len(frame) == len(table.rows)


def test_forecast_results_are_plain_frozen_attrs() -> None:
    result = run(book())
    assert attrs.has(type(result))
    assert isinstance(result.parts, tuple)
    assert isinstance(Period, type)
