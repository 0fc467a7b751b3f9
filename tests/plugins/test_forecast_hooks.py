"""crmkit_register_forecast_methods: plugins' forecast methods in crm.forecast.backtest()."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

import crmkit
from crmkit import ForecastEstimate, ForecastMethod, ForecastRequest, Money, PluginError, hookimpl
from tests.conftest import FixedClock


def _always(amount: str) -> ForecastMethod:
    def estimate(request: ForecastRequest) -> ForecastEstimate:
        money = Money(amount, request.currency)
        return ForecastEstimate(point=money, p10=money, p90=money)

    return ForecastMethod(name=f"always-{amount}", estimate=estimate)


class Constant:
    """Registers a method that always forecasts ``amount``."""

    def __init__(self, *methods: ForecastMethod) -> None:
        self.methods = list(methods)
        self.calls = 0

    @hookimpl
    def crmkit_register_forecast_methods(self) -> list[ForecastMethod]:
        self.calls += 1
        return self.methods


def test_a_plugins_forecast_method_is_scored_by_the_backtest(clock: FixedClock) -> None:
    plugin = Constant(_always("1000"))
    with crmkit.open(":memory:", plugins=[plugin], clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        deal = crm.opportunities.create(
            name="ERP", organization=acme, stage="proposal", amount=Money("1000", "EUR"),
            expected_close=date(2026, 1, 20),
        )  # fmt: skip
        clock.advance(days=3)
        crm.opportunities.win(deal.id)
        assert ["weighted", "probabilistic", "always-1000"] == list(crm.forecast.methods())
        result = crm.forecast.backtest(
            currency="EUR", methods=["always-1000"], periods=1,
            as_of=datetime(2026, 2, 1, tzinfo=UTC),
        )  # fmt: skip
        crm.forecast.methods()
    (row,) = result.rows
    assert ("2026-01", Money("1000", "EUR"), True) == (row.period.label, row.actual, row.covered)
    assert 1 == plugin.calls  # collected once per CRM


@pytest.mark.parametrize(
    "methods",
    [
        [_always("1"), _always("1")],
        [ForecastMethod(name="weighted", estimate=_always("1").estimate)],
    ],
)
def test_a_method_name_taken_twice_is_a_plugin_error(
    clock: FixedClock, methods: list[ForecastMethod]
) -> None:
    crm = crmkit.open(":memory:", plugins=[Constant(*methods)], clock=clock)
    with pytest.raises(PluginError, match="registered twice"):
        crm.forecast.methods()


def test_a_method_that_is_not_a_forecast_method_is_a_plugin_error(clock: FixedClock) -> None:
    class Wrong:
        @hookimpl
        def crmkit_register_forecast_methods(self) -> list[object]:
            return ["weighted"]

    crm = crmkit.open(":memory:", plugins=[Wrong()], clock=clock)
    with pytest.raises(PluginError, match="ForecastMethod"):
        crm.forecast.methods()
