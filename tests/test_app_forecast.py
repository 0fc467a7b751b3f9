"""crm.forecast on every store: forecast, attainment, backtest and calibration."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

import crmkit
from crmkit import Money, NotFoundError, ValidationError
from crmkit.core.forecast import ForecastPartKind, ProbabilitySource, Timing
from crmkit.core.ids import SalesTargetId, uuid7
from tests.conftest import FixedClock


def EUR(amount: str) -> Money:  # noqa: N802
    """``amount`` euros."""
    return Money(amount, "EUR")


@pytest.fixture
def crm(any_crm: crmkit.CRM, clock: FixedClock) -> crmkit.CRM:
    """2026: Ana opens a deal each week in Norte (1000 each), won or lost 10 days
    later (every other one won).  On 2027-01-04: two open deals, Ana's at 0.9 and
    Luis's at 0.5, expected to close in February."""
    crm = any_crm
    with crm.transaction():  # one commit: the fixture stays fast on every store
        ana, luis = crm.users.create(name="Ana"), crm.users.create(name="Luis")
        crm.teams.create(name="Norte", members=[ana])
        norte = crm.zones.create(key="norte", name="Norte")
        acme = crm.organizations.create(name="Acme", zone=norte)
        other = crm.organizations.create(name="Other")
        for week in range(24):
            opp = crm.opportunities.create(
                name=f"Deal {week}", organization=acme, stage="proposal", amount=EUR("1000"),
                expected_close=date(2026, 12, 31), owner=ana,
            )  # fmt: skip
            clock.advance(days=10)
            if week % 2:
                crm.opportunities.win(opp.id)
            else:
                crm.opportunities.lose(opp.id, reason="price")
            clock.advance(days=4)
        clock.current = datetime(2027, 1, 4, 9, tzinfo=UTC)
        crm.opportunities.create(
            name="Ana's", organization=acme, stage="proposal", amount=EUR("10000"),
            probability=Decimal("0.9"), expected_close=date(2027, 2, 15), owner=ana,
        )  # fmt: skip
        crm.opportunities.create(
            name="Luis's", organization=other, stage="proposal", amount=EUR("4000"),
            expected_close=date(2027, 2, 15), owner=luis,
        )  # fmt: skip
    return crm


def test_the_forecast_of_a_period_is_seeded_and_ordered(crm: crmkit.CRM) -> None:
    first = crm.forecast.forecast(period="2027-Q1", currency="EUR", seed=7, simulations=500)
    again = crm.forecast.forecast(period="2027-Q1", currency="EUR", seed=7, simulations=500)
    assert first == again
    assert first.p10 <= first.p50 <= first.p90
    assert (Timing.HISTORY, 2, 24) == (first.timing, first.open_deals, first.history)


def test_a_certain_forecast_is_the_sum_of_the_deals_sure_to_close(crm: crmkit.CRM) -> None:
    result = crm.forecast.forecast(
        period="2027-Q1", currency="EUR", timing="expected_close", new_deals=False,
        probabilities="stage", owners=[], simulations=200,
    )  # fmt: skip
    assert EUR("0") == result.p10 == result.p90  # nobody's deals
    eva = crm.users.create(name="Eva")
    for amount, probability in (("7000", 1), ("3000", 0)):
        crm.opportunities.create(
            name="Sure", organization=crm.organizations.find(name="Other")[0],
            stage="proposal", amount=EUR(amount), probability=Decimal(probability),
            expected_close=date(2027, 3, 1), owner=eva,
        )  # fmt: skip
    mine = crm.forecast.forecast(
        period="2027-Q1", currency="EUR", timing="expected_close", new_deals=False, owners=[eva]
    )
    assert EUR("7000") == mine.p10 == mine.p50 == mine.p90


def test_the_forecast_is_scoped_by_team_and_zone(crm: crmkit.CRM) -> None:
    options: dict[str, object] = {
        "period": "2027-Q1", "currency": "EUR", "timing": "expected_close",
        "new_deals": False, "simulations": 300, "bootstrap": 0,
    }  # fmt: skip
    team = crm.forecast.forecast(team="Norte", **options)  # type: ignore[arg-type]
    zone = crm.forecast.forecast(zones=["norte"], **options)  # type: ignore[arg-type]
    everyone = crm.forecast.forecast(**options)  # type: ignore[arg-type]
    assert (1, 1, 2) == (team.open_deals, zone.open_deals, everyone.open_deals)
    assert EUR("10000") == team.part(ForecastPartKind.PIPELINE).p90 == zone.p90


def test_a_past_forecast_sees_the_amounts_of_then(crm: crmkit.CRM, clock: FixedClock) -> None:
    """The amount raised after ``as_of`` is read back from the audit trail."""
    deal = crm.opportunities.create(
        name="Sure", organization=crm.organizations.find(name="Other")[0],
        stage="proposal", amount=EUR("10000"), probability=Decimal(1),
        expected_close=date(2027, 3, 1), owner=crm.users.create(name="Eva"),
    )  # fmt: skip
    before = clock.advance(hours=1)
    clock.advance(days=1)
    crm.opportunities.update(deal.id, expected_version=deal.version, amount=EUR("50000"))
    options: dict[str, object] = {
        "period": "2027-Q1", "currency": "EUR", "timing": "expected_close",
        "new_deals": False, "owners": [deal.owner_id],
    }  # fmt: skip
    then = crm.forecast.forecast(as_of=before, **options)  # type: ignore[arg-type]
    now = crm.forecast.forecast(**options)  # type: ignore[arg-type]
    assert (EUR("10000"), EUR("50000")) == (then.p50, now.p50)


def test_the_attainment_of_a_team_target(crm: crmkit.CRM, clock: FixedClock) -> None:
    target = crm.targets.create(amount=EUR("20000"), period="2027-Q1", team="Norte")
    deal = crm.opportunities.find(name="Ana's")[0]
    clock.advance(days=2)
    crm.opportunities.win(deal.id)
    result = crm.forecast.attainment(target, simulations=300, bootstrap=10)
    assert (EUR("10000"), Decimal("0.5000")) == (result.won, result.attainment)
    assert Decimal(0) <= result.probability <= Decimal(1)
    (again,) = crm.forecast.attainments(period="2027-Q1", simulations=300, bootstrap=10)
    assert result == again
    with pytest.raises(NotFoundError):
        crm.forecast.attainment(SalesTargetId(uuid7()))


def test_a_series_forecasts_consecutive_periods_from_one_snapshot(crm: crmkit.CRM) -> None:
    """The fan's periods follow each other; each equals the single-period forecast."""
    series = crm.forecast.series(currency="EUR", periods=3, simulations=300, bootstrap=5)
    assert ["2027-Q1", "2027-Q2", "2027-Q3"] == [label for label, *_ in series.fan()]
    single = crm.forecast.forecast(period="2027-Q1", currency="EUR", simulations=300, bootstrap=5)
    assert single == series.forecasts[0]
    months = crm.forecast.series(currency="EUR", start="2027-02", periods=2, simulations=50)
    assert ["2027-02", "2027-03"] == [f.period.label for f in months.forecasts]
    assert ["period", "expected", "p10", "p50", "p90", "currency"] == list(
        series.to_pandas().columns
    )
    with pytest.raises(ValidationError, match="periods"):
        crm.forecast.series(currency="EUR", periods=0)
    with pytest.raises(ValidationError, match="kind"):
        crm.forecast.series(currency="EUR", kind="week")


def test_the_attainment_report_names_every_target(crm: crmkit.CRM) -> None:
    crm.targets.create(amount=EUR("20000"), period="2027-Q1", team="Norte")
    luis = crm.users.find(name="Luis")[0]
    crm.targets.create(amount=EUR("5000"), period="2027-Q1", user=luis)
    crm.targets.create(amount=EUR("5000"), period="2027-Q2", zone="norte")
    report = crm.forecast.attainment_report(period="2027-Q1", simulations=100, bootstrap=5)
    assert ["Luis", "Norte"] == sorted(report.labels)
    assert {("Norte", EUR("0"), EUR("20000")), ("Luis", EUR("0"), EUR("5000"))} == set(
        report.bars()
    )
    assert "2027-Q1" in report.table().title


def test_the_backtest_and_calibration_read_the_stored_history(crm: crmkit.CRM) -> None:
    """...and an unknown method or team is refused."""
    result = crm.forecast.backtest(currency="EUR", kind="month", periods=3)
    assert ["weighted", "probabilistic"] == [s.method for s in result.scores]
    assert ["2026-10", "2026-11", "2026-12"] == sorted({r.period.label for r in result.rows})
    report = crm.forecast.calibration(snapshots=6)
    assert [ProbabilitySource.STAGE, ProbabilitySource.MANUAL, ProbabilitySource.EMPIRICAL] == [
        r.source for r in report.rows
    ]
    assert all(r.observations > 0 for r in report.rows)
    rates = {r.stage: r for r in crm.forecast.stage_win_rates(pipeline="sales")}
    assert (24, 12, Decimal("0.5"), True) == (
        rates["proposal"].closed, rates["proposal"].won,
        rates["proposal"].probability, rates["proposal"].learned,
    )  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        crm.forecast.backtest(currency="EUR", methods=["crystal-ball"])
    assert ("methods[0]", "choice") == (caught.value.field, caught.value.code)
    with pytest.raises(ValidationError) as caught:
        crm.forecast.forecast(period="2027-Q1", currency="EUR", team="Sur")
    assert ("team", "reference") == (caught.value.field, caught.value.code)
