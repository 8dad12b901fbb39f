"""Server-side SVG charts (lines, and bars about a zero line): the geometry the dashboard's chart template draws.

Chart geometry uses floats: they are pixel coordinates, not risk arithmetic.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from backoffice.formatting import money, signed_money


@dataclass(frozen=True)
class Line:
    label: str
    css: str
    d: str  # SVG path data
    label_x: float
    label_y: float
    value_display: str


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Point:
    """A marked data point (a day's close on the history chart), with its hover text."""

    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Bar:
    """A bar from the zero line: up (a gain) or down (a loss), with its hover text."""

    x: float
    y: float
    width: float
    height: float
    sign: str  # "up", "down" or "flat"
    title: str


@dataclass
class Chart:
    key: str
    title: str
    subtitle: str
    width: int = 760
    height: int = 240
    left: int = 78
    right: int = 150
    top: int = 14
    bottom: int = 26
    equity_d: str = ""
    area_d: str = ""
    lines: list[Line] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    last_x: float | None = None
    last_y: float | None = None
    last_display: str = ""
    points: list[Point] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    zero_y: float | None = None
    empty: bool = True

    @property
    def plot_right(self) -> int:
        return self.width - self.right

    @property
    def plot_bottom(self) -> int:
        return self.height - self.bottom

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"


Series = list[tuple[dt.datetime, float]]


def _path(points: list[tuple[float, float]], breaks: set[int] | None = None) -> str:
    parts = []
    for i, (x, y) in enumerate(points):
        command = "M" if i == 0 or (breaks and i in breaks) else "L"
        parts.append(f"{command}{x:.1f},{y:.1f}")
    return " ".join(parts)


def _nice_step(span: float, count: int) -> float:
    """A 1-2-2.5-5 step that draws about ``count`` gridlines over ``span``."""
    raw = max(span / max(count, 1), 1e-9)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(f * magnitude for f in (1, 2, 2.5, 5, 10) if raw <= f * magnitude)


def _scales(
    chart: Chart, *, start: dt.datetime, end: dt.datetime, low: float, high: float
) -> tuple[Callable[[dt.datetime], float], Callable[[float], float]]:
    """Data to plot coordinates: time across (clamped to the window), value up."""
    span_t = max((end - start).total_seconds(), 1.0)
    plot_w = chart.plot_right - chart.left
    plot_h = chart.plot_bottom - chart.top

    def x_of(at: dt.datetime) -> float:
        return chart.left + max(0.0, min(1.0, (at - start).total_seconds() / span_t)) * plot_w

    def y_of(value: float) -> float:
        return chart.top + (high - value) / (high - low) * plot_h

    return x_of, y_of


def line_chart(
    *,
    key: str,
    title: str,
    subtitle: str,
    equity: Series,
    thresholds: list[tuple[str, str, Series]],
    start: dt.datetime,
    end: dt.datetime,
    x_ticks: list[tuple[dt.datetime, str]],
    gap: dt.timedelta,
    point_titles: list[str] | None = None,
) -> Chart:
    """Equity as a line with its thresholds as dashed (step) lines, in SVG coordinates.

    With ``point_titles`` (one per equity point) each point is also marked, with that hover text.
    """
    chart = Chart(key=key, title=title, subtitle=subtitle)
    if not equity:
        return chart
    chart.empty = False
    # The axis follows the data (equity, and the day-start and peak references): a normal day
    # moves a fraction of a percent, and an axis stretched to a breaker 3 % away draws it as a
    # flat line. A threshold joins the axis when it is within one data span (at least 0.5 % of
    # the level) of the data; a farther one is listed in the gutter, marked off scale.
    data = [v for _, v in equity] + [
        v for _, css, series in thresholds if css in ("day-start", "peak") for _, v in series
    ]
    low, high = min(data), max(data)
    reach = max(high - low, abs(high) * 0.005, 1.0)
    in_range = [t for t in thresholds if all(low - reach <= v <= high + reach for _, v in t[2])]
    off_scale = [t for t in thresholds if t not in in_range]
    values = data + [v for _, _, series in in_range for _, v in series]
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or max(abs(high) * 0.01, 1.0)
    low, high = low - pad, high + pad
    x_of, y_of = _scales(chart, start=start, end=end, low=low, high=high)

    coords = [(x_of(at), y_of(v)) for at, v in equity]
    # A hole in the history (the jobs were down) stays a hole, not a straight line.
    breaks = {i for i in range(1, len(equity)) if equity[i][0] - equity[i - 1][0] > gap}
    chart.equity_d = _path(coords, breaks)
    if point_titles is not None:
        chart.points = [Point(x=x, y=y, title=t) for (x, y), t in zip(coords, point_titles, strict=True)]
    if not breaks:
        chart.area_d = (
            f"{_path(coords)} L{coords[-1][0]:.1f},{chart.plot_bottom} L{coords[0][0]:.1f},{chart.plot_bottom} Z"
        )
    chart.last_x, chart.last_y = coords[-1]
    chart.last_display = money(Decimal(str(equity[-1][1])).quantize(Decimal("0.01")))

    for label, css, series in off_scale:
        below = series[-1][1] < low
        chart.lines.append(
            Line(
                label=f"{label} {'▼' if below else '▲'}",
                css=f"{css} bo-off-scale",
                d="",
                label_x=chart.plot_right + 6,
                label_y=chart.plot_bottom - 4 if below else chart.top + 10,
                value_display=money(Decimal(str(series[-1][1])).quantize(Decimal("0.01"))) + " off scale",
            )
        )
    for label, css, series in in_range:
        # Step lines: a threshold holds until the next point changes it (a new day's start equity).
        stepped: list[tuple[float, float]] = []
        for i, (at, value) in enumerate(series):
            if i:
                stepped.append((x_of(at), stepped[-1][1]))
            stepped.append((x_of(at), y_of(value)))
        stepped.append((chart.plot_right, stepped[-1][1]))
        chart.lines.append(
            Line(
                label=label,
                css=css,
                d=_path(stepped),
                label_x=chart.plot_right + 6,
                label_y=stepped[-1][1],
                value_display=money(Decimal(str(series[-1][1])).quantize(Decimal("0.01"))),
            )
        )
    # The current equity is labelled in the same gutter as the thresholds (its line is the curve itself).
    chart.lines.append(
        Line(label="Equity", css="equity", d="", label_x=chart.plot_right + 6, label_y=chart.last_y,
             value_display=chart.last_display)
    )
    _spread_labels(chart.lines, chart.top + 6, chart.plot_bottom - 10)

    step = _nice_step(high - low, 4)
    tick = (low // step + 1) * step
    while tick < high:
        chart.y_ticks.append(Tick(pos=y_of(tick), label=f"${tick:,.0f}"))
        tick += step
    chart.x_ticks = [Tick(pos=x_of(at), label=label) for at, label in x_ticks if start <= at <= end]
    return chart


def bar_chart(
    *,
    key: str,
    title: str,
    subtitle: str,
    bars: list[tuple[dt.datetime, dt.datetime, Decimal, str]],
    start: dt.datetime,
    end: dt.datetime,
    x_ticks: list[tuple[dt.datetime, str]],
) -> Chart:
    """Signed amounts as bars from a zero line, each spanning most of its [from, to) slot.

    ``bars`` holds (slot start, slot end, amount, label) tuples; the axis always
    includes zero, so a gain and a loss of one size are bars of one length.
    """
    chart = Chart(key=key, title=title, subtitle=subtitle)
    if not bars:
        return chart
    chart.empty = False
    values = [float(amount) for _, _, amount, _ in bars]
    low, high = min(0.0, *values), max(0.0, *values)
    pad = (high - low) * 0.08 or 1.0
    low, high = (low - pad if low < 0 else low), (high + pad if high > 0 else high)
    if high == low:
        high = low + 1.0
    x_of, y_of = _scales(chart, start=start, end=end, low=low, high=high)

    zero = y_of(0.0)
    chart.zero_y = zero
    for (slot_from, slot_to, amount, label), value in zip(bars, values, strict=True):
        x0, x1 = x_of(slot_from), x_of(slot_to)
        inset = (x1 - x0) * 0.15
        y = y_of(value)
        chart.bars.append(
            Bar(
                x=x0 + inset,
                y=min(y, zero),
                width=max(x1 - x0 - 2 * inset, 1.0),
                height=max(abs(zero - y), 1.0),
                sign="up" if amount > 0 else "down" if amount < 0 else "flat",
                title=f"{label}: {signed_money(amount)}",
            )
        )
    step = _nice_step(high - low, 4)
    tick = math.ceil(low / step) * step
    while tick <= high:
        chart.y_ticks.append(Tick(pos=y_of(tick), label=f"{'+' if tick > 0 else '-' if tick < 0 else ''}"
                                                        f"${abs(tick):,.0f}"))
        tick += step
    chart.x_ticks = [Tick(pos=x_of(at), label=label) for at, label in x_ticks if start <= at <= end]
    last = bars[-1][2]
    chart.last_display = signed_money(last)
    return chart


def _spread_labels(lines: list[Line], top: float, bottom: float, gap: float = 24.0) -> None:
    """Threshold labels sit at their line's height, nudged apart so none overlaps another.

    Downwards first (each at least ``gap`` below the one above), then, if that
    ran past the bottom, upwards from the bottom.
    """
    order = sorted(range(len(lines)), key=lambda i: lines[i].label_y)
    ys = [lines[i].label_y for i in order]
    for k in range(len(ys)):
        ys[k] = max(ys[k], top if k == 0 else ys[k - 1] + gap)
    for k in reversed(range(len(ys))):
        ys[k] = min(ys[k], bottom if k == len(ys) - 1 else ys[k + 1] - gap)
    for k, i in enumerate(order):
        lines[i] = replace(lines[i], label_y=max(ys[k], top))
