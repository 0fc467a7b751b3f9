"""Charts of the analytics, drawn with matplotlib (the ``plot`` extra).

``pip install "crmkit[plot]"``.  Each function draws one chart on a new
:class:`matplotlib.figure.Figure` (no pyplot, no global state, no window: the
Agg canvas renders it) and returns it; given a ``path``, it also writes the
chart there as PNG.  They read the result objects of ``crm.analytics`` (a
:class:`~crmkit.core.analytics.Funnel`, a
:class:`~crmkit.core.analytics.PipelineReport`) or plain rows, so any
forecast or target API can feed them:

- :func:`funnel_chart`: the conversion funnel, deals reached per step;
- :func:`pipeline_chart`: value and weighted value per group of a pipeline report;
- :func:`forecast_fan`: P10-P90 band and P50 line over periods;
- :func:`attainment_chart`: won value against target per owner, team or zone.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

from crmkit.core.analytics import Funnel, PipelineReport
from crmkit.core.money import Money

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "AttainmentPoint",
    "FanPoint",
    "attainment_chart",
    "forecast_fan",
    "funnel_chart",
    "pipeline_chart",
]

#: An amount a chart accepts: money (its currency labels the axis) or a number.
Amount: TypeAlias = Money | Decimal | int | float


@runtime_checkable
class FanPoint(Protocol):
    """One period of a forecast: its label and the P10, P50 and P90 revenue."""

    @property
    def label(self) -> str: ...
    @property
    def p10(self) -> Amount: ...
    @property
    def p50(self) -> Amount: ...
    @property
    def p90(self) -> Amount: ...


@runtime_checkable
class AttainmentPoint(Protocol):
    """One owner, team or zone: its label, the value won and the target."""

    @property
    def label(self) -> str: ...
    @property
    def won(self) -> Amount: ...
    @property
    def target(self) -> Amount: ...


_BLUE = "#3b6ea5"
_LIGHT = "#a9c4e2"
_GREEN = "#3f8f4f"
_RED = "#b5473a"


def _figure(width: float = 7.0, height: float = 4.0) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - the dev install has matplotlib
        raise ImportError(
            'crmkit.analysis charts need matplotlib: pip install "crmkit[plot]"',
            name="matplotlib",
        ) from error
    return Figure(figsize=(width, height), layout="constrained")


def _number(value: Amount | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, Money):
        return float(value.amount)
    return float(value)


def _currency(values: Iterable[Amount | None]) -> str:
    codes = {v.currency for v in values if isinstance(v, Money)}
    return codes.pop() if len(codes) == 1 else ""


def _save(figure: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        figure.savefig(Path(path), format="png", dpi=100)
    return figure


def funnel_chart(funnel: Funnel, path: str | Path | None = None) -> Figure:
    """The conversion funnel: one horizontal bar per step, widest first, with conversions.

    Args:
        funnel: ``crm.analytics.funnel(...)``.
        path: also write the chart there as PNG.

    Raises:
        ImportError: matplotlib is not installed.
    """
    figure = _figure()
    ax = figure.add_subplot()
    steps = funnel.steps
    top = max((s.reached for s in steps), default=0) or 1
    for i, step in enumerate(steps):
        left = (top - step.reached) / 2
        colour = _GREEN if i == len(steps) - 1 else _BLUE
        ax.barh(i, step.reached, left=left, color=colour, height=0.7)
        note = f"{step.reached}"
        if step.conversion is not None:
            note += f"  ({float(step.conversion):.0%})"
        ax.text(top / 2, i, note, ha="center", va="center", color="white", fontweight="bold")
    ax.set_yticks(range(len(steps)), [s.stage for s in steps])
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_title(f"Funnel: {funnel.pipeline} (deals that reached each step)")
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    return _save(figure, path)


def pipeline_chart(report: PipelineReport, path: str | Path | None = None) -> Figure:
    """Pipeline value and weighted value per group (stage, owner, quarter...).

    Without groups (``by=None``) it shows the total alone.

    Args:
        report: ``crm.analytics.pipeline(by=...)``.
        path: also write the chart there as PNG.

    Raises:
        ImportError: matplotlib is not installed.
    """
    figure = _figure()
    ax = figure.add_subplot()
    rows = report.rows if report.by is not None else (report.total,)
    labels = [r.key or "(none)" for r in rows]
    places = range(len(rows))
    ax.bar(
        [p - 0.2 for p in places], [_number(r.value) for r in rows], 0.4, label="value",
        color=_LIGHT,
    )  # fmt: skip
    ax.bar(
        [p + 0.2 for p in places], [_number(r.weighted) for r in rows], 0.4, label="weighted",
        color=_BLUE,
    )  # fmt: skip
    ax.set_xticks(list(places), labels, rotation=30 if len(rows) > 6 else 0, ha="right")
    ax.set_ylabel(report.currency)
    if isinstance(report.by, tuple):
        by = " x ".join(d.value for d in report.by)
    else:
        by = report.by.value if report.by is not None else "total"
    ax.set_title(f"Open pipeline by {by} as of {report.as_of.date().isoformat()}")
    ax.legend()
    return _save(figure, path)


def _fan_rows(
    points: Iterable[FanPoint | Sequence[object]],
) -> list[tuple[str, Amount, Amount, Amount]]:
    rows: list[tuple[str, Amount, Amount, Amount]] = []
    for point in points:
        if isinstance(point, FanPoint):
            rows.append((point.label, point.p10, point.p50, point.p90))
        else:
            label, p10, p50, p90 = point
            rows.append((str(label), p10, p50, p90))  # type: ignore[arg-type]
    return rows


def forecast_fan(
    points: Iterable[FanPoint | Sequence[object]],
    path: str | Path | None = None,
    *,
    title: str = "Forecast",
) -> Figure:
    """A forecast fan: the P10-P90 band and the P50 line over periods.

    Args:
        points: per period, an object with ``label``, ``p10``, ``p50`` and
            ``p90`` (:class:`FanPoint`) or a ``(label, p10, p50, p90)`` tuple;
            amounts as ``Money`` or numbers.
        path: also write the chart there as PNG.
        title: the chart's title.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: a period whose P10 <= P50 <= P90 does not hold.
    """
    rows = _fan_rows(points)
    for label, p10, p50, p90 in rows:
        if not _number(p10) <= _number(p50) <= _number(p90):
            raise ValueError(f"period {label}: P10 <= P50 <= P90 does not hold")
    figure = _figure()
    ax = figure.add_subplot()
    places = list(range(len(rows)))
    low = [_number(r[1]) for r in rows]
    mid = [_number(r[2]) for r in rows]
    high = [_number(r[3]) for r in rows]
    ax.fill_between(places, low, high, color=_LIGHT, alpha=0.7, label="P10-P90")
    ax.plot(places, mid, color=_BLUE, marker="o", label="P50")
    ax.set_xticks(places, [r[0] for r in rows])
    ax.set_ylabel(_currency(v for r in rows for v in r[1:]))
    ax.set_title(title)
    ax.legend()
    return _save(figure, path)


def attainment_chart(
    rows: Iterable[AttainmentPoint | Sequence[object]],
    path: str | Path | None = None,
    *,
    title: str = "Target attainment",
) -> Figure:
    """Won value against target: one bar per owner, team or zone, the target as a tick.

    A bar is green at or above its target, red below; the label says the
    attainment (won / target).

    Args:
        rows: an object with ``label``, ``won`` and ``target``
            (:class:`AttainmentPoint`) or a ``(label, won, target)`` tuple.
        path: also write the chart there as PNG.
        title: the chart's title.

    Raises:
        ImportError: matplotlib is not installed.
    """
    items: list[tuple[str, Amount, Amount]] = []
    for row in rows:
        if isinstance(row, AttainmentPoint):
            items.append((row.label, row.won, row.target))
        else:
            label, won, target = row
            items.append((str(label), won, target))  # type: ignore[arg-type]
    figure = _figure()
    ax = figure.add_subplot()
    for i, (_, won, target) in enumerate(items):
        reached, goal = _number(won), _number(target)
        ax.bar(i, reached, 0.6, color=_GREEN if reached >= goal else _RED)
        ax.hlines(goal, i - 0.4, i + 0.4, color="black", linewidth=2)
        share = f"{reached / goal:.0%}" if goal else "-"
        ax.text(i, max(reached, goal), share, ha="center", va="bottom")
    ax.set_xticks(range(len(items)), [label for label, _, _ in items])
    ax.set_ylabel(_currency(v for item in items for v in item[1:]))
    ax.set_title(title)
    return _save(figure, path)
