"""crmkit.analysis: each chart writes a readable PNG of the expected size."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from attrs import frozen
from matplotlib.colors import to_hex
from matplotlib.image import imread

import crmkit
from crmkit import Money
from crmkit.analysis import attainment_chart, forecast_fan, funnel_chart, pipeline_chart
from tests.conftest import FixedClock


@pytest.fixture
def crm(clock: FixedClock) -> crmkit.CRM:
    """Three deals: one won, one in proposal, one lead."""
    crm = crmkit.open(":memory:", clock=clock)
    acme = crm.organizations.create(name="Acme")
    for name, stage in (("a", "proposal"), ("b", "lead"), ("c", "proposal")):
        crm.opportunities.create(
            name=name, organization=acme, stage=stage, amount=Money("1000", "EUR"),
            expected_close=date(2026, 3, 1),
        )  # fmt: skip
    clock.advance(days=3)
    crm.opportunities.win(crm.opportunities.find(name="c")[0].id)
    return crm


def _png(path: Path) -> tuple[int, ...]:
    """The shape of the image written at ``path`` (height, width, channels)."""
    assert path.read_bytes().startswith(b"\x89PNG")
    return tuple(imread(path).shape)


def test_funnel_chart_writes_a_png(crm: crmkit.CRM, tmp_path: Path) -> None:
    """A 700x400 PNG (7x4 inches at 100 dpi)."""
    path = tmp_path / "funnel.png"
    figure = funnel_chart(crm.analytics.funnel(pipeline="sales"), path)
    assert (400, 700, 4) == _png(path)
    assert "Funnel: sales" in figure.axes[0].get_title()


def test_pipeline_chart_by_stage_and_total(crm: crmkit.CRM, tmp_path: Path) -> None:
    """Two bars (value, weighted) per group; without groups, the total."""
    by_stage = pipeline_chart(
        crm.analytics.pipeline(currency="EUR", by="stage"), tmp_path / "stage.png"
    )
    assert 4 == len(by_stage.axes[0].patches)  # lead and proposal, two bars each
    pipeline_chart(crm.analytics.pipeline(currency="EUR"), tmp_path / "total.png")
    assert (400, 700, 4) == _png(tmp_path / "stage.png") == _png(tmp_path / "total.png")


@frozen
class Period:
    label: str
    p10: Money
    p50: Money
    p90: Money


def test_forecast_fan_takes_objects_or_tuples(tmp_path: Path) -> None:
    """Objects with label/p10/p50/p90 and plain tuples draw the same fan."""
    points = [
        Period("2027-Q1", Money("10", "EUR"), Money("20", "EUR"), Money("35", "EUR")),
        Period("2027-Q2", Money("12", "EUR"), Money("25", "EUR"), Money("50", "EUR")),
    ]
    figure = forecast_fan(points, tmp_path / "fan.png")
    forecast_fan([("2027-Q1", 10, 20, 35), ("2027-Q2", 12.0, Decimal(25), 50)], tmp_path / "t.png")
    assert (400, 700, 4) == _png(tmp_path / "fan.png") == _png(tmp_path / "t.png")
    assert "EUR" == figure.axes[0].get_ylabel()


def test_forecast_fan_refuses_crossed_percentiles() -> None:
    """P10 above P50 is a bug upstream, not a chart."""
    with pytest.raises(ValueError, match="2027-Q1"):
        forecast_fan([("2027-Q1", 30, 20, 35)])


def test_attainment_chart_colours_by_target(tmp_path: Path) -> None:
    """Green at or above target, red below."""
    figure = attainment_chart(
        [("ana", Money("120", "EUR"), Money("100", "EUR")), ("luis", 50, 100)],
        tmp_path / "targets.png",
    )
    colours = [to_hex(bar.get_facecolor()) for bar in figure.axes[0].patches]
    assert ["#3f8f4f", "#b5473a"] == colours  # green, red
    assert (400, 700, 4) == _png(tmp_path / "targets.png")


def test_charts_draw_nothing_on_screen() -> None:
    """No pyplot: the figures are not registered with any window manager."""
    import sys

    funnel_chart(
        crmkit.open(":memory:").analytics.funnel(
            pipeline="sales", as_of=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(0)
        )
    )
    assert "matplotlib.pyplot" not in sys.modules
