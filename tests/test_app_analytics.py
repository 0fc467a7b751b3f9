"""crm.analytics on every store: the pure analytics over the stored book and its audit."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

import crmkit
from crmkit import Money, ValidationError, hookimpl
from crmkit.core.analytics import Dimension, WaterfallStep
from tests.conftest import FixedClock

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def EUR(amount: str) -> Money:  # noqa: N802
    """``amount`` euros."""
    return Money(amount, "EUR")


class Rates:
    """USD -> EUR at 0.9 every day, once the rate table is ``loaded``."""

    loaded = False

    @hookimpl
    def crmkit_exchange_rate(self, base: str, quote: str, on: date) -> Decimal | None:
        known = self.loaded and (base, quote) == ("USD", "EUR")
        return Decimal("0.9") if known else None


@pytest.fixture
def book(any_crm: crmkit.CRM, clock: FixedClock) -> crmkit.CRM:
    """Norte: a deal raised from 1000 to 5000 on day 10, then qualified on day 20;
    one won on day 5 (3000), one lost for price on day 8 (6000), one archived."""
    crm = any_crm
    norte = crm.zones.create(key="norte", name="Norte")
    acme = crm.organizations.create(name="Acme S.A.", zone=norte)
    raised = crm.opportunities.create(name="Raised", organization=acme, amount=EUR("1000"))
    won = crm.opportunities.create(
        name="Won", organization=acme, stage="proposal", amount=EUR("3000"),
        expected_close=date(2026, 2, 1),
    )  # fmt: skip
    lost = crm.opportunities.create(name="Lost", organization=acme, amount=EUR("6000"))
    gone = crm.opportunities.create(name="Gone", organization=acme, amount=EUR("999"))
    crm.opportunities.archive(gone.id, expected_version=gone.version)
    clock.advance(days=5)
    crm.opportunities.win(won.id)
    clock.advance(days=3)
    crm.opportunities.lose(lost.id, reason="price")
    clock.advance(days=2)
    raised = crm.opportunities.update(
        raised.id, expected_version=raised.version, amount=EUR("5000")
    )
    clock.advance(days=10)
    crm.opportunities.advance(raised.id, to="qualified")
    clock.advance(days=10)
    return crm


def test_the_pipeline_now_and_as_it_stood_before_the_changes(book: crmkit.CRM) -> None:
    """Now 5000 x 0.25; on day 7 the raised deal was 1000 in lead and the lost one still open."""
    now = book.analytics.pipeline(currency="EUR", by="zone")
    assert (now.total.count, now.total.value, now.total.weighted) == (1, EUR("5000"), EUR("1250"))
    assert [r.key for r in now.rows] == [str(book.zones.get_by_key("norte").id)]
    then = book.analytics.pipeline(currency="EUR", as_of=START + timedelta(days=7))
    assert (then.total.count, then.total.value, then.total.weighted) == (
        2,
        EUR("7000"),
        EUR("700"),
    )


def test_win_rate_funnel_and_cycle_through_the_facade(book: crmkit.CRM) -> None:
    """One won (3000), one lost (6000 for price); the won deal reached every step."""
    rate = book.analytics.win_rate(currency="EUR")
    assert (rate.won, rate.lost, rate.average_deal) == (1, 1, EUR("3000"))
    price = book.loss_reasons.get_by_key("price")
    assert [(r.reason_id, r.count) for r in rate.lost_reasons] == [(price.id, 1)]
    by_zone = book.analytics.win_rates(by="zone", currency="EUR")
    assert [(g.key, g.won, g.lost) for g in by_zone] == [
        (str(book.zones.get_by_key("norte").id), 1, 1)
    ]
    steps = book.analytics.funnel(pipeline="sales").steps
    assert [s.reached for s in steps] == [3, 2, 1, 1, 1]
    cycle = book.analytics.sales_cycle()
    assert (cycle.closed, cycle.censored, cycle.median_won) == (2, 1, timedelta(days=5))
    stages = {s.stage: s for s in book.analytics.time_in_stage(pipeline="sales")}
    assert stages["lead"].left == 2
    speed = book.analytics.velocity(currency="EUR")
    assert speed.open_deals == 1


def test_the_waterfall_reads_the_audited_amount_change(book: crmkit.CRM) -> None:
    """From day 1 to now: +4000 amount, advanced, one won, one lost; it adds up."""
    flow = book.analytics.waterfall(start=START + timedelta(days=1), currency="EUR")
    rows = {r.step: r for r in flow.rows}
    assert rows[WaterfallStep.AMOUNT_CHANGED].value == EUR("4000")
    assert rows[WaterfallStep.ADVANCED].count == 1
    assert (rows[WaterfallStep.WON].value, rows[WaterfallStep.LOST].value) == (
        EUR("-3000"),
        EUR("-6000"),
    )
    assert flow.start_value == EUR("10000")
    assert flow.end_value == EUR("5000")


def test_another_currency_needs_a_rate_plugin(backend_url: str, clock: FixedClock) -> None:
    """A USD deal in an EUR report: no_rate without a plugin, converted with one."""
    rates = Rates()
    with crmkit.open(backend_url, clock=clock, plugins=[rates]) as crm:
        acme = crm.organizations.create(name="Acme")
        crm.opportunities.create(name="Dollars", organization=acme, amount=Money("100", "USD"))
        with pytest.raises(ValidationError) as caught:
            crm.analytics.pipeline(currency="EUR")
        assert (caught.value.field, caught.value.code) == ("currency", "no_rate")
        by_month = crm.analytics.pipeline(currency="USD", by=Dimension.MONTH)
        assert [(r.key, r.value) for r in by_month.rows] == [(None, Money("100", "USD"))]
        rates.loaded = True
        assert crm.analytics.pipeline(currency="EUR").total.value == EUR("90")


def test_win_rates_and_pipeline_by_team_use_the_teams_as_they_are_now(
    any_crm: crmkit.CRM, clock: FixedClock
) -> None:
    """A deal counts under each team (not archived) of its owner, with today's members,
    even as of a past date; win rates group by team and zone together."""
    crm = any_crm
    ana, luis = crm.users.create(name="Ana"), crm.users.create(name="Luis")
    norte = crm.zones.create(key="norte", name="Norte")
    acme = crm.organizations.create(name="Acme S.A.", zone=norte)
    both = crm.teams.create(name="Norte", members=[ana, luis])
    big = crm.teams.create(name="Grandes cuentas", members=[ana])
    old = crm.teams.create(name="Antiguo", members=[luis])
    crm.teams.archive(old.id, expected_version=old.version)
    won = crm.opportunities.create(
        name="Won", organization=acme, stage="proposal", amount=EUR("3000"),
        expected_close=date(2026, 2, 1), owner=ana,
    )  # fmt: skip
    lost = crm.opportunities.create(name="Lost", organization=acme, amount=EUR("600"), owner=luis)
    crm.opportunities.create(name="Open", organization=acme, amount=EUR("100"), owner=ana)
    clock.advance(days=5)
    crm.opportunities.win(won.id)
    crm.opportunities.lose(lost.id, reason="price")
    clock.advance(days=1)

    rates = crm.analytics.win_rates(by=("team", "zone"), currency="EUR")
    assert sorted((g.keys[0] or "", g.keys[1], g.won, g.lost) for g in rates) == sorted(
        [(str(both.id), str(norte.id), 1, 1), (str(big.id), str(norte.id), 1, 0)]
    )
    assert rates.table().columns[:2] == ("team", "zone")
    past = START + timedelta(days=1)
    assert {r.key for r in crm.analytics.pipeline(currency="EUR", by="team", as_of=past).rows} == {
        str(both.id),
        str(big.id),
    }
    crm.teams.update(big.id, expected_version=big.version, members=[luis])
    rows = crm.analytics.pipeline(currency="EUR", by="team", as_of=past).rows
    assert {r.key: r.count for r in rows} == {str(both.id): 3, str(big.id): 1}  # all open then
    with pytest.raises(ValidationError) as caught:
        crm.analytics.win_rates(by=(), currency="EUR")
    assert caught.value.field == "by"


def test_bad_arguments_are_validation_errors(crm: crmkit.CRM) -> None:
    """A naive as_of, an unknown dimension or pipeline: ValidationError, nothing else."""
    with pytest.raises(ValidationError) as caught:
        crm.analytics.pipeline(currency="EUR", as_of=datetime(2026, 1, 1))
    assert caught.value.field == "as_of"
    with pytest.raises(ValidationError) as caught:
        crm.analytics.pipeline(currency="EUR", by="colour")
    assert caught.value.field == "by"
    with pytest.raises(ValidationError) as caught:
        crm.analytics.funnel(pipeline="nope")
    assert caught.value.field == "pipeline"


def test_every_report_shows_as_a_table_and_a_dataframe(book: crmkit.CRM) -> None:
    """Each result has an HTML table and a DataFrame with the same columns and rows."""
    reports = [
        book.analytics.pipeline(currency="EUR", by="stage"),
        book.analytics.pipeline(currency="EUR"),
        book.analytics.win_rate(currency="EUR"),
        book.analytics.win_rates(by="owner", currency="EUR"),
        book.analytics.sales_cycle(),
        book.analytics.time_in_stage(pipeline="sales"),
        book.analytics.funnel(pipeline="sales"),
        book.analytics.velocity(currency="EUR"),
        book.analytics.waterfall(start=START + timedelta(days=1), currency="EUR"),
    ]
    for report in reports:
        table = report.table()
        frame = report.to_pandas()
        assert list(table.columns) == list(frame.columns)
        assert len(table.rows) == len(frame)
        assert report._repr_html_().count("<tr>") == len(table.rows) + 1
    funnel = book.analytics.funnel(pipeline="sales").to_pandas()
    assert [3, 2, 1, 1, 1] == list(funnel["reached"])
    by_stage = book.analytics.pipeline(currency="EUR", by="stage").to_pandas()
    assert [("qualified", Decimal("5000"), "EUR")] == list(
        zip(by_stage["stage"], by_stage["value"], by_stage["currency"], strict=True)
    )
