"""Charts as server-rendered inline SVG (no chart library, no script): the geometry is computed here, the markup
comes from templates/charts/chart.svg (autoescaped like every page).

Grouped bar charts (volume per channel and hour, discrepancies per day, webhook backlog) and line charts (success
rate per channel and hour; an hour without orders leaves a gap instead of pretending 0 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup

from tomato.gateway.console.render import ENV

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 28
PALETTE = ("#d9480f", "#1971c2", "#2f9e44", "#7048e8", "#e67700", "#495057")
TICKS = 4


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str


@dataclass(frozen=True)
class Line:
    points: str  # "x,y x,y …" for a polyline
    stroke: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    dots: list[Bar] = field(default_factory=list)
    x_labels: list[Label] = field(default_factory=list)
    y_labels: list[Label] = field(default_factory=list)
    grid: list[float] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (colour, name)
    empty: bool = False


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above `value` (an axis that ends on a round number)."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value:
        step /= 10
    for m in (1, 2, 2.5, 5, 10):
        if step * m >= value:
            return step * m
    return step * 10


def _axes(
    categories: Sequence[str], top: float, fmt: Callable[[float], str]
) -> tuple[list[Label], list[Label], list[float]]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(categories), 1)
    every = max(1, len(categories) // 12)  # at most ~12 labels under the axis
    xs = [Label(LEFT + slot * (i + 0.5), HEIGHT - BOTTOM + 16, c) for i, c in enumerate(categories) if i % every == 0]
    ys, grid = [], []
    for k in range(TICKS + 1):
        y = TOP + plot_h - plot_h * k / TICKS
        ys.append(Label(LEFT - 6, y + 4, fmt(top * k / TICKS)))
        grid.append(y)
    return xs, ys, grid


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    counts: bool = False,
    top: float | None = None,
) -> Chart:
    """Grouped bars: one group per category, one bar per series (values ≥ 0); `counts`: things counted, so the axis
    shows whole numbers only; `top`: a fixed end of the axis (a rate's 100 %) instead of one above the peak."""
    peak = max((v for _, values in series for v in values), default=0)
    if not categories or not series or peak <= 0:
        return Chart(title=title, empty=True, legend=_legend(series))
    top = top if top is not None and top >= peak else nice_ceiling(peak)
    if counts:  # whole ticks: the axis ends on a multiple of the tick count
        top = max(TICKS, math.ceil(top / TICKS) * TICKS)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(categories)
    bar_w = slot * 0.8 / len(series)
    bars = []
    for s, (name, values) in enumerate(series):
        for i, value in enumerate(values):
            if value <= 0:
                continue
            h = plot_h * value / top
            x = LEFT + slot * i + slot * 0.1 + bar_w * s
            label = f"{name} · {categories[i]}: {fmt(value)}"
            bars.append(Bar(round(x, 2), round(TOP + plot_h - h, 2), round(bar_w, 2), round(h, 2), _colour(s), label))
    xs, ys, grid = _axes(categories, top, fmt)
    return Chart(title=title, bars=bars, x_labels=xs, y_labels=ys, grid=grid, legend=_legend(series))


def line_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    top: float = 1.0,
    fmt: Callable[[float], str] = lambda v: f"{v * 100:.0f}%",
) -> Chart:
    """One polyline per run of known values in each series; a lone known value is drawn as a dot."""
    if not categories or all(v is None for _, values in series for v in values):
        return Chart(title=title, empty=True, legend=_legend(series))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(categories)
    lines, dots = [], []
    for s, (name, values) in enumerate(series):
        run: list[tuple[float, float]] = []
        for i, value in enumerate([*values, None]):
            if value is not None:
                run.append((LEFT + slot * (i + 0.5), TOP + plot_h - plot_h * min(value, top) / top))
                continue
            if len(run) == 1:
                x, y = run[0]
                dots.append(Bar(round(x - 2.5, 2), round(y - 2.5, 2), 5, 5, _colour(s), name))
            elif run:
                points = " ".join(f"{x:.2f},{y:.2f}" for x, y in run)
                lines.append(Line(points, _colour(s), name))
            run = []
    xs, ys, grid = _axes(categories, top, fmt)
    return Chart(title=title, lines=lines, dots=dots, x_labels=xs, y_labels=ys, grid=grid, legend=_legend(series))


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _legend(series: Sequence[tuple[str, Sequence[object]]]) -> list[tuple[str, str]]:
    return [(_colour(i), name) for i, (name, _) in enumerate(series)]


def render(chart: Chart, empty_text: str) -> Markup:
    return Markup(ENV.get_template("charts/chart.svg").render(chart=chart, empty_text=empty_text))
