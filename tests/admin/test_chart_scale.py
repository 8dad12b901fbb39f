"""The equity charts are scaled to the data: a quiet day fills the chart, far thresholds are marked off scale."""

from __future__ import annotations

import datetime as dt

from backoffice.dashboard import line_chart

START = dt.datetime(2026, 11, 20, 5, 0, tzinfo=dt.UTC)
DAY_START = 100_000.0


def _today(equity: list[float]):
    points = [(START + dt.timedelta(minutes=5 * i), v) for i, v in enumerate(equity)]
    return line_chart(
        key="today", title="Equity today", subtitle="", equity=points,
        thresholds=[
            ("Day start", "day-start", [(START, DAY_START)]),
            ("Warning −2%", "warn", [(START, DAY_START * 0.98)]),
            ("Breaker −3%", "breach", [(START, DAY_START * 0.97)]),
        ],
        start=START, end=START + dt.timedelta(hours=8), x_ticks=[], gap=dt.timedelta(minutes=20),
    )


def _heights(chart) -> float:
    ys = [float(part.split(",")[1]) for part in chart.equity_d.replace("M", " ").replace("L", " ").split()]
    return (max(ys) - min(ys)) / (chart.plot_bottom - chart.top)


def test_a_quiet_day_fills_the_chart_and_the_far_thresholds_are_marked_off_scale():
    chart = _today([100_000, 100_120, 99_950, 100_210, 100_080, 99_900, 100_150])

    lines = {line.css: line for line in chart.lines}
    assert _heights(chart) > 0.5  # the day's moves use most of the height, not a flat line
    assert lines["breach bo-off-scale"].d == "" and lines["breach bo-off-scale"].label == "Breaker −3% ▼"
    assert lines["warn bo-off-scale"].d == ""
    assert lines["day-start"].d  # the reference line is always drawn
    assert lines["breach bo-off-scale"].value_display == "$97,000.00 off scale"


def test_a_day_near_its_limits_draws_the_warning_and_breaker_lines():
    chart = _today([100_000, 99_200, 98_600, 98_100, 97_800, 97_600])

    lines = {line.css: line for line in chart.lines}
    assert lines["warn"].d and lines["breach"].d
    assert not any("off scale" in line.value_display for line in chart.lines)
