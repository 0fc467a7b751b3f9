"""Pure pipeline analytics over a book rebuilt as of a moment.

Books are made the way the CRM makes them: opportunities opened and moved by
the real transition functions, with a revision recorded for every change of
a revised field, so "as of" is checked against what the opportunity really
was at that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any, Final

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from crmkit import InvalidTransition, Money, ValidationError
from crmkit.core import changes
from crmkit.core.analytics import (
    TEAM_NOTE,
    Book,
    DealState,
    Dimension,
    Period,
    PeriodKind,
    Revision,
    WaterfallStep,
    convert,
    funnel,
    kaplan_meier,
    pipeline,
    sales_cycle,
    time_in_stage,
    velocity,
    waterfall,
    win_rate,
    win_rates,
)
from crmkit.core.entities import LossReason
from crmkit.core.events import Created, StageChanged, Updated
from crmkit.core.ids import (
    CampaignId,
    LossReasonId,
    OpportunityId,
    OrganizationId,
    SourceId,
    TeamId,
    UserId,
    ZoneId,
    uuid7,
)
from crmkit.core.opportunities import Opportunity
from crmkit.core.pipelines import Pipeline, StageKind
from crmkit.core.transitions import (
    advance,
    hold,
    lose,
    open_opportunity,
    reopen,
    resume,
    set_probability,
    win,
)
from crmkit.plugins.builtin_pipelines import GESTION_COMERCIAL, PIPELINES, SALES

T0: Final = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LATER: Final = T0 + timedelta(days=3650)
REASONS: Final = tuple(
    changes.create(LossReason, id=LossReasonId(uuid7()), now=T0, key=k, name=k)[0]
    for k in ("price", "competitor")
)
OWNERS: Final = (UserId(uuid7()), UserId(uuid7()))
SOURCES: Final = (SourceId(uuid7()), SourceId(uuid7()))
CAMPAIGNS: Final = (CampaignId(uuid7()), CampaignId(uuid7()))
ORGANIZATIONS: Final = (OrganizationId(uuid7()), OrganizationId(uuid7()), OrganizationId(uuid7()))
ZONES: Final = {ORGANIZATIONS[0]: ZoneId(uuid7()), ORGANIZATIONS[1]: ZoneId(uuid7())}
#: the first owner is in two teams, the second in none; one team has nobody
TEAMS: Final = {
    TeamId(uuid7()): frozenset({OWNERS[0]}),
    TeamId(uuid7()): frozenset({OWNERS[0], UserId(uuid7())}),
    TeamId(uuid7()): frozenset(),
}


def _usd_rate(base: str, quote: str, on: date) -> Decimal | None:
    return Decimal("0.9") if (base, quote) == ("USD", "EUR") else None


# ============================================================ simulation


@attrs.define
class Deal:
    """An opportunity as the CRM would have made it, with its whole past."""

    opp: Opportunity
    revisions: list[Revision] = attrs.Factory(list)
    states: list[tuple[datetime, Opportunity]] = attrs.Factory(list)

    def record(
        self, at: datetime, event: Created[Opportunity] | Updated[Opportunity] | StageChanged | None
    ) -> None:
        if event is None:
            return
        if not isinstance(event, Created):
            self.revisions += Revision.from_changes(self.opp.id, at, event.changes)
        self.opp = event.entity
        self.states.append((at, event.entity))


ACTIONS: Final = (
    "advance",
    "advance",
    "advance",
    "win",
    "lose",
    "hold",
    "resume",
    "reopen",
    "amount",
    "close",
    "probability",
    "owner",
)


def _act(deal: Deal, pipe: Pipeline, action: str, choice: int, now: datetime) -> None:
    opp = deal.opp
    event: Any
    try:
        if action == "advance":
            targets = sorted(
                t
                for s, t in pipe.transitions
                if s == opp.stage and pipe.stage(t).kind is StageKind.OPEN
            )
            if not targets:
                return
            _, event = advance(opp, pipe, to=targets[choice % len(targets)], now=now, by=None)
        elif action == "win":
            _, event = win(opp, pipe, now=now, by=None, stage=pipe.of_kind(StageKind.WON)[0].key)
        elif action == "lose":
            stages = pipe.of_kind(StageKind.LOST)
            _, event = lose(
                opp,
                pipe,
                reason=REASONS[choice % 2],
                note=None,
                now=now,
                by=None,
                stage=stages[choice % len(stages)].key,
            )
        elif action == "hold":
            _, event = hold(opp, pipe, now=now, by=None)
        elif action == "resume":
            _, event = resume(opp, pipe, now=now, by=None)
        elif action == "reopen":
            _, event = reopen(opp, pipe, now=now, by=None)
        elif action == "amount":
            _, event = changes.update(opp, {"amount": Money(100 * choice, "EUR")}, now=now)
        elif action == "close":
            _, event = changes.update(
                opp, {"expected_close": now.date() + timedelta(days=choice * 7)}, now=now
            )
        elif action == "probability":
            value = None if choice % 3 == 0 else Decimal(choice % 11) / 10
            _, event = set_probability(opp, pipe, value, now=now)
        else:
            _, event = changes.update(opp, {"owner_id": OWNERS[choice % 2]}, now=now)
    except (InvalidTransition, ValidationError):
        return
    deal.record(now, event)


@st.composite
def deals(draw: st.DrawFn, *, currencies: tuple[str, ...] = ("EUR",)) -> Deal:
    """One opportunity opened and moved by random (possibly refused) actions."""
    pipe = draw(st.sampled_from(PIPELINES))
    now = T0 + timedelta(hours=draw(st.integers(0, 24 * 400)))
    amount = draw(
        st.none()
        | st.builds(Money.from_minor_units, st.integers(0, 10**8), st.sampled_from(currencies))
    )
    open_stages = pipe.of_kind(StageKind.OPEN)
    opp, created = open_opportunity(
        pipe,
        id=OpportunityId(uuid7()),
        now=now,
        by=None,
        stage=open_stages[draw(st.integers(0, 1))].key if amount is not None else None,
        name="Deal",
        amount=amount,
        expected_close=draw(st.none() | st.dates(date(2026, 1, 1), date(2028, 12, 31))),
        owner_id=draw(st.none() | st.sampled_from(OWNERS)),
        source_id=draw(st.none() | st.sampled_from(SOURCES)),
        campaign_id=draw(st.none() | st.sampled_from(CAMPAIGNS)),
        organization_id=draw(st.none() | st.sampled_from(ORGANIZATIONS)),
    )
    deal = Deal(opp)
    deal.record(now, created)
    for gap, action, choice in draw(
        st.lists(
            st.tuples(st.integers(1, 24 * 60), st.sampled_from(ACTIONS), st.integers(0, 20)),
            max_size=12,
        )
    ):
        now += timedelta(hours=gap)
        _act(deal, pipe, action, choice, now)
    return deal


def _book(items: list[Deal]) -> Book:
    return Book(
        opportunities=[d.opp for d in items],
        pipelines=PIPELINES,
        zones=ZONES,
        revisions=[r for d in items for r in d.revisions],
        teams=TEAMS,
    )


moments = st.integers(-24 * 10, 24 * 800).map(lambda h: T0 + timedelta(hours=h))
dimensions = st.sampled_from(Dimension)


def _state_at(deal: Deal, at: datetime) -> Opportunity | None:
    found = None
    for when, opp in deal.states:
        if when <= at:
            found = opp
    return found


# ========================================================== properties


@given(st.lists(deals(), max_size=8), moments)
def test_the_book_as_of_a_moment_is_each_opportunity_as_it_was_then(
    items: list[Deal], at: datetime
) -> None:
    """Stage, status, amount, probability, close date, owner: all rebuilt from history."""
    states = {s.id: s for s in _book(items).at(at)}
    for deal in items:
        then = _state_at(deal, at)
        if then is None:
            assert deal.opp.id not in states
            continue
        state = states[deal.opp.id]
        assert (state.stage, state.status) == (then.stage, then.status)
        assert state.amount == then.amount
        assert state.probability == then.probability
        assert state.expected_close == then.expected_close
        assert state.owner_id == then.owner_id
        assert state.closed_at == then.closed_at
        if then.status is StageKind.LOST:
            assert state.close_reason_id == then.close_reason_id


@given(st.lists(deals(), max_size=8), moments, st.none() | dimensions)
def test_weighted_pipeline_never_exceeds_the_unweighted_pipeline(
    items: list[Deal], at: datetime, by: Dimension | None
) -> None:
    """Amounts are not negative here and probabilities are at most 1, in every group."""
    report = pipeline(_book(items), as_of=at, currency="EUR", by=by)
    for row in (*report.rows, report.total):
        assert row.weighted <= row.value


@given(st.lists(deals(), max_size=8), moments, dimensions)
def test_the_groups_add_up_to_the_total(items: list[Deal], at: datetime, by: Dimension) -> None:
    """Every open deal is in one group (by team: one per team of its owner, or the None
    group); the total counts each deal once and is Money arithmetic."""
    book = _book(items)
    report = pipeline(book, as_of=at, currency="EUR", by=by, fiscal_start=4)
    open_deals = [s for s in book.at(at) if s.in_pipeline]
    assert report.total.weighted == sum(
        (s.amount.multiply(s.probability) for s in open_deals if s.amount is not None),
        Money.zero("EUR"),
    )
    assert report.total.count == len(open_deals)
    times = {s.id: max(1, len(s.team_ids)) if by is Dimension.TEAM else 1 for s in open_deals}
    value = sum(
        (s.amount.multiply(times[s.id]) for s in open_deals if s.amount is not None),
        Money.zero("EUR"),
    )
    assert sum(r.count for r in report.rows) == sum(times.values())
    assert sum((r.value for r in report.rows), Money.zero("EUR")) == value
    if by is not Dimension.TEAM:
        assert sum((r.weighted for r in report.rows), Money.zero("EUR")) == report.total.weighted


@st.composite
def closed_deals(draw: st.DrawFn) -> tuple[Deal, datetime]:
    """A deal won or lost at the end of its moves, and a moment it is closed at."""
    deal = draw(deals())
    pipe = next(p for p in PIPELINES if p.key == deal.opp.pipeline)
    closed_at = deal.states[-1][0] + timedelta(hours=1)
    for action in ("resume", "win", "lose"):
        if not deal.opp.is_closed:
            _act(deal, pipe, action, draw(st.integers(0, 3)), closed_at)
    assume(deal.opp.is_closed)  # a win needs an amount and a close date; a loss always works
    return deal, closed_at + timedelta(hours=draw(st.integers(0, 24 * 365)))


@given(st.lists(deals(), max_size=6), closed_deals(), st.none() | dimensions)
def test_adding_a_won_or_lost_deal_never_changes_the_open_pipeline(
    items: list[Deal], extra: tuple[Deal, datetime], by: Dimension | None
) -> None:
    """Closed deals count neither in the value nor in the weighted pipeline."""
    deal, at = extra
    before = pipeline(_book(items), as_of=at, currency="EUR", by=by)
    after = pipeline(_book([*items, deal]), as_of=at, currency="EUR", by=by)
    assert after == before


@given(st.lists(deals(), max_size=10), moments, st.sampled_from(PIPELINES))
def test_the_funnel_never_grows_from_one_step_to_the_next(
    items: list[Deal], at: datetime, pipe: Pipeline
) -> None:
    """Reached k+1 implies reached k, so each step counts at most the one before."""
    steps = funnel(_book(items), as_of=at, pipeline=pipe.key).steps
    assert len(steps) == len(pipe.of_kind(StageKind.OPEN)) + 1
    for before, after in pairwise(steps):
        assert after.reached <= before.reached
        assert after.conversion is None or Decimal(0) <= after.conversion <= 1


@given(st.lists(deals(), max_size=8), moments, st.integers(0, 24 * 300))
def test_a_waterfall_leads_exactly_from_the_start_to_the_end_pipeline(
    items: list[Deal], start: datetime, hours: int
) -> None:
    """Start + every step = end, for the value and the weighted value, to the cent."""
    book = _book(items)
    end = start + timedelta(hours=hours)
    flow = waterfall(book, start=start, end=end, currency="EUR")
    assert flow.start_value + sum((r.value for r in flow.rows), Money.zero("EUR")) == flow.end_value
    assert (
        flow.start_weighted + sum((r.weighted for r in flow.rows), Money.zero("EUR"))
        == flow.end_weighted
    )
    assert (flow.start_value, flow.start_weighted) == (
        pipeline(book, as_of=start, currency="EUR").total.value,
        pipeline(book, as_of=start, currency="EUR").total.weighted,
    )
    assert flow.end_value == pipeline(book, as_of=end, currency="EUR").total.value


@given(st.lists(deals(), max_size=8), moments)
def test_win_rate_counts_each_closed_deal_once(items: list[Deal], at: datetime) -> None:
    """Won + lost = deals closed at ``as_of``; the lost reasons cover every lost deal."""
    book = _book(items)
    rate = win_rate(book, as_of=at, currency="EUR")
    closed = [s for s in book.at(at) if s.closed_at is not None]
    assert rate.won + rate.lost == len(closed)
    assert sum(r.count for r in rate.lost_reasons) == rate.lost
    if rate.by_count is not None:
        assert Decimal(0) <= rate.by_count <= 1


@given(st.lists(deals(), max_size=8), moments, dimensions)
def test_win_rates_per_group_add_up_to_the_whole(
    items: list[Deal], at: datetime, by: Dimension
) -> None:
    """Each closed deal is in one group (by team: one per team of its owner, or None):
    counts and values add up to win_rate's."""
    book = _book(items)
    whole = win_rate(book, as_of=at, currency="EUR")
    groups = win_rates(book, by=by, as_of=at, currency="EUR", fiscal_start=7)
    extra = 0
    if by is Dimension.TEAM:  # a deal of an owner in two teams counts twice
        extra = sum(len(s.team_ids) - 1 for s in book.at(at) if s.closed_at and s.team_ids)
    assert sum(g.won + g.lost for g in groups) == whole.won + whole.lost + extra
    if not extra:
        assert sum(g.won for g in groups) == whole.won
        assert sum((g.won_value for g in groups), Money.zero("EUR")) == whole.won_value
    assert len({g.key for g in groups}) == len(groups)


@given(st.lists(deals(), max_size=8), moments, st.integers(1, 24 * 400))
def test_cycle_stage_times_and_velocity_hold_together_on_any_book(
    items: list[Deal], at: datetime, window_hours: int
) -> None:
    """Closed + censored = deals opened; every visit left or ongoing; velocity not negative."""
    book = _book(items)
    states = book.at(at)
    cycle = sales_cycle(book, as_of=at)
    assert cycle.closed + cycle.censored == len(states)
    assert cycle.closed == sum(1 for s in states if s.closed_at is not None)
    for pipe in PIPELINES:
        for stage in time_in_stage(book, as_of=at, pipeline=pipe.key):
            assert 0 <= stage.left <= stage.visits
    speed = velocity(book, as_of=at, currency="EUR", window=timedelta(hours=window_hours))
    assert speed.open_deals == sum(1 for s in states if s.in_pipeline)
    assert speed.per_day is None or speed.per_day >= Money.zero("EUR")


observations = st.lists(
    st.tuples(st.integers(0, 1000).map(lambda d: timedelta(days=d)), st.booleans()), max_size=40
)


@given(observations)
def test_kaplan_meier_without_censoring_is_the_plain_distribution(
    items: list[tuple[timedelta, bool]],
) -> None:
    """All ended: survival reaches 0 and the median is the ceil(n/2)-th shortest duration."""
    ended = [(d, True) for d, _ in items]
    curve, median = kaplan_meier(ended)
    if not ended:
        assert (curve, median) == ((), None)
        return
    assert curve[-1].survival == 0
    ordered = sorted(d for d, _ in ended)
    assert median == ordered[(len(ordered) + 1) // 2 - 1]


@given(observations)
def test_censoring_never_makes_deals_look_faster(items: list[tuple[timedelta, bool]]) -> None:
    """Counting still-open deals as closed would underestimate survival at every time."""
    curve, _ = kaplan_meier(items)
    naive, _ = kaplan_meier([(d, True) for d, _ in items])
    naive_at = {p.elapsed: p.survival for p in naive}
    for point in curve:
        assert point.survival >= naive_at[point.elapsed]
    survivals = [p.survival for p in curve]
    assert survivals == sorted(survivals, reverse=True)


@given(st.lists(deals(currencies=("EUR", "USD")), min_size=1, max_size=6), moments)
def test_amounts_in_another_currency_need_a_rate(items: list[Deal], at: datetime) -> None:
    """With a rate, USD amounts are converted; without one, the call fails, never sums."""
    book = _book(items)
    foreign = [
        s
        for s in book.at(at)
        if s.in_pipeline and s.amount is not None and s.amount.currency == "USD"
    ]
    with_rate = pipeline(book, as_of=at, currency="EUR", rate=_usd_rate)
    assert with_rate.total.value.currency == "EUR"
    if foreign:
        with pytest.raises(ValidationError) as caught:
            pipeline(book, as_of=at, currency="EUR")
        assert (caught.value.field, caught.value.code) == ("currency", "no_rate")


# ============================================================ examples


def _opened(
    pipe: Pipeline = SALES, *, at: datetime = T0, stage: str | None = None, **fields: Any
) -> Deal:
    opp, created = open_opportunity(
        pipe, id=OpportunityId(uuid7()), now=at, by=None, stage=stage, name="Deal", **fields
    )
    deal = Deal(opp)
    deal.record(at, created)
    return deal


def _do(deal: Deal, call: Callable[..., tuple[Opportunity, Any]], days: float, **kw: Any) -> Deal:
    now = T0 + timedelta(days=days)
    _, event = call(deal.opp, SALES, now=now, by=None, **kw)
    deal.record(now, event)
    return deal


def EUR(amount: str) -> Money:  # noqa: N802
    """``amount`` euros."""
    return Money(amount, "EUR")


def test_pipeline_by_stage_weighs_each_open_deal_by_its_probability() -> None:
    """10000 in proposal (0.5) and 4000 in lead (0.1): 14000, weighted 5400; wins excluded."""
    a = _opened(stage="proposal", amount=EUR("10000"), expected_close=date(2026, 3, 1))
    b = _opened(amount=EUR("4000"))
    c = _do(
        _opened(stage="proposal", amount=EUR("99000"), expected_close=date(2026, 2, 1)),
        win,
        3,
    )
    report = pipeline(_book([a, b, c]), as_of=LATER, currency="EUR", by=Dimension.STAGE)
    assert [(r.key, r.count, r.value, r.weighted) for r in report.rows] == [
        ("lead", 1, EUR("4000"), EUR("400")),
        ("proposal", 1, EUR("10000"), EUR("5000")),
    ]
    assert (report.total.value, report.total.weighted) == (EUR("14000"), EUR("5400"))


def test_pipeline_as_of_a_past_date_uses_the_amount_and_stage_of_then() -> None:
    """A deal raised from 1000 to 5000 and advanced later weighs 1000 x 0.1 before."""
    deal = _opened(amount=EUR("1000"))
    now = T0 + timedelta(days=10)
    _, event = changes.update(deal.opp, {"amount": EUR("5000")}, now=now)
    deal.record(now, event)
    _do(deal, advance, 20, to="qualified")
    book = _book([deal])
    assert pipeline(book, as_of=T0 + timedelta(days=5), currency="EUR").total.weighted == EUR("100")
    assert pipeline(book, as_of=T0 + timedelta(days=15), currency="EUR").total.weighted == EUR(
        "500"
    )
    assert pipeline(book, as_of=LATER, currency="EUR").total.weighted == EUR("1250")
    assert pipeline(book, as_of=T0 - timedelta(days=1), currency="EUR").total.count == 0


def test_periods_carry_the_year_and_follow_the_fiscal_year() -> None:
    """March 2027 is 2027-Q1; with an April fiscal start it is the last quarter of FY2027."""
    day = date(2027, 3, 15)
    assert Period.containing(day, PeriodKind.MONTH).label == "2027-03"
    assert Period.containing(day, PeriodKind.QUARTER).label == "2027-Q1"
    assert Period.containing(day, PeriodKind.YEAR).label == "2027"
    fiscal = Period.containing(day, PeriodKind.QUARTER, fiscal_start=4)
    assert (fiscal.label, fiscal.start, fiscal.end) == (
        "FY2027-Q4",
        date(2027, 1, 1),
        date(2027, 4, 1),
    )
    assert Period.containing(date(2027, 4, 1), PeriodKind.YEAR, fiscal_start=4).label == "FY2028"
    assert day in Period.containing(day, PeriodKind.YEAR)
    with pytest.raises(ValidationError) as caught:
        Period.containing(day, PeriodKind.YEAR, fiscal_start=13)
    assert caught.value.field == "fiscal_start"


def test_quarters_of_different_years_are_never_merged() -> None:
    """Q1 2026 and Q1 2027 are two rows."""
    items = [
        _opened(amount=EUR("100"), expected_close=date(2026, 2, 1)),
        _opened(amount=EUR("200"), expected_close=date(2027, 2, 1)),
        _opened(amount=EUR("300")),
    ]
    report = pipeline(_book(items), as_of=LATER, currency="EUR", by="quarter")
    assert [(r.key, r.value) for r in report.rows] == [
        ("2026-Q1", EUR("100")),
        ("2027-Q1", EUR("200")),
        (None, EUR("300")),
    ]


def test_pipeline_groups_by_owner_zone_source_and_campaign() -> None:
    """Ids come out as text; the zone is the organization's; deals without one group as None."""
    deal = _opened(
        amount=EUR("100"),
        owner_id=OWNERS[0],
        organization_id=ORGANIZATIONS[0],
        source_id=SOURCES[1],
        campaign_id=CAMPAIGNS[0],
    )
    bare = _opened(amount=EUR("50"), organization_id=ORGANIZATIONS[2])
    book = _book([deal, bare])
    expected = {
        Dimension.OWNER: str(OWNERS[0]),
        Dimension.ZONE: str(ZONES[ORGANIZATIONS[0]]),
        Dimension.SOURCE: str(SOURCES[1]),
        Dimension.CAMPAIGN: str(CAMPAIGNS[0]),
        Dimension.PIPELINE: "sales",
    }
    for by, key in expected.items():
        rows = pipeline(book, as_of=LATER, currency="EUR", by=by).rows
        assert rows[0].key == key
        if by is not Dimension.PIPELINE:
            assert (rows[1].key, rows[1].value) == (None, EUR("50"))


def test_a_pipeline_by_two_dimensions_has_a_key_column_each() -> None:
    """Rows keyed by (owner, month); the table and DataFrame split the key into columns."""
    deal = _opened(amount=EUR("100"), owner_id=OWNERS[0], organization_id=ORGANIZATIONS[0])
    book = _book([deal, _opened(amount=EUR("50"), organization_id=ORGANIZATIONS[2])])
    report = pipeline(book, as_of=LATER, currency="EUR", by=("owner", "month"))
    assert [r.keys[0] for r in report.rows] == [str(OWNERS[0]), None]
    table = report.table()
    assert table.columns[:2] == ("owner", "month")
    assert [row[0] for row in table.rows] == [str(OWNERS[0]), None]
    assert len(report.to_pandas()) == 2


def test_pipeline_by_team_counts_a_deal_under_every_team_of_its_owner() -> None:
    """Ana is in two teams: her deal counts in both; Luis is in none, and a deal without
    owner has none either: both under None.  The total counts each deal once."""
    ana, luis = OWNERS
    first, second, _nobody = sorted(TEAMS, key=str)
    deals_ = [
        _opened(amount=EUR("100"), owner_id=ana),
        _opened(amount=EUR("50"), owner_id=luis),
        _opened(amount=EUR("5")),
    ]
    report = pipeline(_book(deals_), as_of=LATER, currency="EUR", by="team")
    assert [(r.key, r.count, r.value) for r in report.rows] == [
        (str(first), 1, EUR("100")),
        (str(second), 1, EUR("100")),
        (None, 2, EUR("55")),
    ]
    assert (report.total.count, report.total.value) == (3, EUR("155"))
    assert ("teams", TEAM_NOTE[1]) in report.table().notes
    assert _book(deals_).at(LATER)[0].team_ids == (first, second)


def test_a_deals_team_is_that_of_its_owner_at_as_of() -> None:
    """Reassigned from Ana to Luis on day 10: in Ana's teams before, in no team after."""
    ana, luis = OWNERS
    deal = _opened(amount=EUR("100"), owner_id=ana)
    moved = T0 + timedelta(days=10)
    _, event = changes.update(deal.opp, {"owner_id": luis}, now=moved)
    deal.record(moved, event)
    book = _book([deal])
    before = pipeline(book, as_of=moved - timedelta(days=1), currency="EUR", by=Dimension.TEAM)
    after = pipeline(book, as_of=LATER, currency="EUR", by=Dimension.TEAM)
    assert [r.key for r in before.rows] == sorted(str(t) for t, m in TEAMS.items() if ana in m)
    assert [r.key for r in after.rows] == [None]


def test_a_pipeline_by_team_and_month_crosses_every_team_with_the_month() -> None:
    """By (team, month) a deal of an owner in two teams makes two rows, one per team."""
    deal = _opened(amount=EUR("100"), owner_id=OWNERS[0], expected_close=date(2027, 3, 1))
    report = pipeline(_book([deal]), as_of=LATER, currency="EUR", by=("team", "month"))
    first, second, _ = sorted(TEAMS, key=str)
    assert [r.keys for r in report.rows] == [(str(first), "2027-03"), (str(second), "2027-03")]
    assert report.total.count == 1


def test_win_rate_by_count_and_value_with_average_deal_and_lost_reasons() -> None:
    """Won 3000 and 1000, lost 6000 for price: 2/3 by count, 0.4 by value, average 2000."""
    won_a = _do(
        _opened(stage="proposal", amount=EUR("3000"), expected_close=date(2026, 2, 1)), win, 5
    )
    won_b = _do(
        _opened(stage="proposal", amount=EUR("1000"), expected_close=date(2026, 2, 1)), win, 9
    )
    lost = _do(_opened(amount=EUR("6000")), lose, 7, reason=REASONS[0], note=None)
    _opened(amount=EUR("500"))  # still open: not counted
    rate = win_rate(_book([won_a, won_b, lost]), as_of=LATER, currency="EUR")
    assert (rate.won, rate.lost) == (2, 1)
    assert rate.by_count == Decimal(2) / 3
    assert rate.by_value == Decimal("0.4")
    assert rate.average_deal == EUR("2000")
    assert [(r.reason_id, r.count, r.value) for r in rate.lost_reasons] == [
        (REASONS[0].id, 1, EUR("6000"))
    ]
    recent = win_rate(
        _book([won_a, won_b, lost]), as_of=LATER, currency="EUR", since=T0 + timedelta(days=8)
    )
    assert (recent.won, recent.lost) == (1, 0)


def test_win_rates_by_owner_and_by_close_month() -> None:
    """Ana won one and lost one; nobody's deal was lost; months are those of the close."""
    ana = OWNERS[0]
    won = _do(
        _opened(stage="proposal", amount=EUR("10"), expected_close=date(2026, 2, 1), owner_id=ana),
        win,
        30,
    )
    lost = _do(_opened(amount=EUR("20"), owner_id=ana), lose, 2, reason=REASONS[0], note=None)
    other = _do(_opened(amount=EUR("5")), lose, 3, reason=REASONS[1], note=None)
    book = _book([won, lost, other])
    by_owner = win_rates(book, by="owner", as_of=LATER, currency="EUR")
    assert [(g.key, g.won, g.lost, g.by_count) for g in by_owner] == [
        (str(ana), 1, 1, Decimal("0.5")),
        (None, 0, 1, Decimal(0)),
    ]
    by_month = win_rates(book, by=Dimension.MONTH, as_of=LATER, currency="EUR")
    assert [(g.key, g.won, g.lost) for g in by_month] == [("2026-01", 0, 2), ("2026-02", 1, 0)]


def test_win_rates_by_team_and_by_several_dimensions() -> None:
    """By team, Ana's win counts for both her teams; by (team, month) each group has a key
    per dimension and the table a column per dimension."""
    ana = OWNERS[0]
    won = _do(
        _opened(stage="proposal", amount=EUR("10"), expected_close=date(2026, 2, 1), owner_id=ana),
        win,
        30,
    )
    lost = _do(_opened(amount=EUR("20"), owner_id=OWNERS[1]), lose, 2, reason=REASONS[0], note=None)
    book = _book([won, lost])
    first, second, _ = sorted(TEAMS, key=str)
    by_team = win_rates(book, by="team", as_of=LATER, currency="EUR")
    assert [(g.key, g.won, g.lost) for g in by_team] == [
        (str(first), 1, 0),
        (str(second), 1, 0),
        (None, 0, 1),
    ]
    assert ("teams", TEAM_NOTE[1]) in by_team.table().notes
    crossed = win_rates(book, by=("team", "month"), as_of=LATER, currency="EUR")
    assert crossed.by == (Dimension.TEAM, Dimension.MONTH)
    assert [g.keys for g in crossed] == [
        (str(first), "2026-02"),
        (str(second), "2026-02"),
        (None, "2026-01"),
    ]
    assert crossed[2].key == "- / 2026-01"
    table = crossed.table()
    assert table.columns[:3] == ("team", "month", "won")
    assert table.rows[2][:4] == (None, "2026-01", 0, 1)
    assert win_rates(book, by=["owner"], as_of=LATER, currency="EUR").by is Dimension.OWNER


def test_sales_cycle_censors_open_deals() -> None:
    """Closed after 10 and 30 days, one still open at 20: KM median 30, not 10 or 20."""
    a = _do(_opened(stage="proposal", amount=EUR("1"), expected_close=date(2026, 2, 1)), win, 10)
    b = _do(_opened(amount=EUR("1")), lose, 30, reason=REASONS[1], note=None)
    c = _opened(amount=EUR("1"), at=T0 + timedelta(days=15))  # open for 20 days at as_of
    d = _opened(amount=EUR("1"), at=T0 + timedelta(days=40))  # not opened yet at as_of
    cycle = sales_cycle(_book([a, b, c, d]), as_of=T0 + timedelta(days=35))
    assert (cycle.closed, cycle.censored) == (2, 1)
    assert cycle.median == timedelta(days=30)
    assert cycle.median_won == timedelta(days=10)
    assert [p.survival for p in cycle.curve] == [Decimal(2) / 3, Decimal(0)]


def test_time_in_stage_counts_each_visit() -> None:
    """Lead for 4 days, qualified for 6, back to lead for 2, now (censored) in qualified."""
    deal = _opened(amount=EUR("1"))
    _do(deal, advance, 4, to="qualified")
    _do(deal, advance, 10, to="lead")
    _do(deal, advance, 12, to="qualified")
    stages = {s.stage: s for s in time_in_stage(_book([deal]), as_of=LATER, pipeline="sales")}
    assert (stages["lead"].visits, stages["lead"].left) == (2, 2)
    assert stages["lead"].mean_left == timedelta(days=3)
    assert (stages["qualified"].visits, stages["qualified"].left) == (2, 1)
    assert stages["qualified"].mean_left == timedelta(days=6)
    assert stages["proposal"].visits == 0


def test_funnel_counts_lost_deals_at_every_stage_they_reached() -> None:
    """A deal lost in negotiation reached lead..negotiation; a won deal reached every step.

    The deal won straight from proposal counts in negotiation too: reaching a
    later step means having passed the earlier ones.
    """
    lost = _opened(stage="qualified", amount=EUR("1"))
    for day, stage in ((1, "proposal"), (2, "negotiation")):
        _do(lost, advance, day, to=stage)
    _do(lost, lose, 3, reason=REASONS[0], note=None)
    won = _do(_opened(stage="proposal", amount=EUR("1"), expected_close=date(2026, 2, 1)), win, 4)
    fresh = _opened()
    steps = funnel(_book([lost, won, fresh]), as_of=LATER, pipeline="sales").steps
    assert [(s.stage, s.reached) for s in steps] == [
        ("lead", 3),
        ("qualified", 2),
        ("proposal", 2),
        ("negotiation", 2),
        ("won", 1),
    ]
    assert steps[0].conversion is None
    assert steps[4].conversion == Decimal("0.5")


def test_funnel_of_a_pipeline_with_several_lost_stages_ends_in_its_won_stage() -> None:
    """Gestión comercial ends in 'generar-pedido-de-venta'."""
    steps = funnel(_book([]), as_of=LATER, pipeline=GESTION_COMERCIAL.key).steps
    assert steps[-1].stage == "generar-pedido-de-venta"
    assert all(s.reached == 0 for s in steps)


def test_velocity_is_open_deals_times_average_deal_times_win_rate_over_cycle() -> None:
    """2 open x 2000 x 1/2 / 10 days = 200 a day."""
    won = _do(
        _opened(stage="proposal", amount=EUR("2000"), expected_close=date(2026, 2, 1)), win, 10
    )
    lost = _do(_opened(amount=EUR("1")), lose, 5, reason=REASONS[0], note=None)
    items = [won, lost, _opened(amount=EUR("7")), _opened()]
    speed = velocity(_book(items), as_of=T0 + timedelta(days=20), currency="EUR")
    assert (speed.open_deals, speed.win_rate) == (2, Decimal("0.5"))
    assert speed.cycle_days == 10
    assert speed.per_day == EUR("200")
    empty = velocity(_book([]), as_of=T0, currency="EUR")
    assert (empty.per_day, empty.average_deal) == (None, None)


def test_waterfall_names_each_move() -> None:
    """Created, advanced, moved back, slipped, amount changed, won and lost between two dates."""
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=30)
    advanced = _opened(amount=EUR("1000"))
    _do(advanced, advance, 5, to="qualified")
    back = _opened(stage="qualified", amount=EUR("1000"))
    _do(back, advance, 5, to="lead")
    slipped = _opened(amount=EUR("10"), expected_close=date(2026, 2, 1))
    _, event = changes.update(
        slipped.opp, {"expected_close": date(2026, 5, 1)}, now=T0 + timedelta(days=6)
    )
    slipped.record(T0 + timedelta(days=6), event)
    won = _do(_opened(stage="proposal", amount=EUR("400"), expected_close=date(2026, 2, 1)), win, 7)
    lost = _do(_opened(amount=EUR("300")), lose, 8, reason=REASONS[0], note=None)
    created = _opened(amount=EUR("50"), at=T0 + timedelta(days=9))
    flow = waterfall(
        _book([advanced, back, slipped, won, lost, created]), start=start, end=end, currency="EUR"
    )
    rows = {r.step: (r.count, r.value, r.weighted) for r in flow.rows}
    assert rows[WaterfallStep.CREATED] == (1, EUR("50"), EUR("5"))
    assert rows[WaterfallStep.ADVANCED] == (1, EUR("0"), EUR("150"))
    assert rows[WaterfallStep.MOVED_BACK] == (1, EUR("0"), EUR("-150"))
    assert rows[WaterfallStep.SLIPPED] == (1, EUR("0"), EUR("0"))
    assert rows[WaterfallStep.WON] == (1, EUR("-400"), EUR("-200"))
    assert rows[WaterfallStep.LOST] == (1, EUR("-300"), EUR("-30"))
    assert flow.start_value == EUR("2710")
    assert flow.end_value == EUR("2060")


def test_conversion_without_a_rate_is_a_no_rate_error() -> None:
    """The error names the pair and day; the same currency needs no rate."""
    assert convert(EUR("5"), "EUR", date(2026, 1, 1), None) == EUR("5")
    assert convert(Money("10", "USD"), "EUR", date(2026, 1, 1), _usd_rate) == EUR("9")
    with pytest.raises(ValidationError) as caught:
        convert(Money("10", "USD"), "JPY", date(2026, 1, 1), _usd_rate)
    assert caught.value.code == "no_rate"
    assert "USD to JPY on 2026-01-01" in str(caught.value)


def test_bad_arguments_are_validation_errors() -> None:
    """Unknown dimension, currency or pipeline; naive datetimes; the wrong types in a book."""
    book = _book([])
    TEAM = next(iter(TEAMS))  # noqa: N806
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: pipeline(book, as_of=T0, currency="EUR", by="colour"), "by"),
        (lambda: pipeline(book, as_of=T0, currency="XXX1"), "currency"),
        (lambda: pipeline(book, as_of=T0, currency="EUR", pipeline="nope"), "pipeline"),
        (lambda: funnel(book, as_of=T0, pipeline="nope"), "pipeline"),
        (lambda: book.at(datetime(2026, 1, 1)), "as_of"),
        (lambda: waterfall(book, start=T0, end=T0 - timedelta(1), currency="EUR"), "end"),
        (lambda: Book(opportunities=["x"], pipelines=PIPELINES), "opportunities[0]"),
        (lambda: Book(opportunities=[_opened().opp], pipelines=[]), "pipelines"),
        (lambda: Book(opportunities=[], pipelines=PIPELINES, teams=[1]), "teams"),
        (lambda: Book(opportunities=[], pipelines=PIPELINES, teams={"t": []}), "teams"),
        (
            lambda: Book(opportunities=[], pipelines=PIPELINES, teams={TEAM: ["ana"]}),
            f"teams[{TEAM}][0]",
        ),
        (lambda: win_rates(book, by=None, as_of=T0, currency="EUR"), "by"),  # type: ignore[arg-type]
        (lambda: win_rates(book, by=(), as_of=T0, currency="EUR"), "by"),
        (
            lambda: Revision(
                opportunity_id=OpportunityId(uuid7()), at=T0, field="name", old=1, new=2
            ),
            "field",
        ),
    ]
    for call, field in calls:
        with pytest.raises(ValidationError) as caught:
            call()
        assert caught.value.field == field


def test_archived_opportunities_and_those_without_history_are_left_out() -> None:
    """Archiving hides a deal from every figure; so does having no stage history at all."""
    deal = _opened(amount=EUR("100"))
    archived, _ = changes.archive(deal.opp, now=T0)
    bare = attrs.evolve(_opened(amount=EUR("5")).opp, history=())
    book = Book(opportunities=[archived, bare], pipelines=PIPELINES)
    assert book.at(LATER) == ()
    assert all(s.visits == 0 for s in time_in_stage(book, as_of=LATER, pipeline="sales"))
    assert funnel(book, as_of=LATER, pipeline="sales").steps[0].reached == 0
    assert isinstance(_book([deal]).at(LATER)[0], DealState)
