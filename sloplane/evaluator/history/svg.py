"""Small SVG charts for the reports, drawn from numbers: no JavaScript, nothing fetched, printable.

Why hand-written SVG rather than a charting library: a report must open from a file or an e-mail with
nothing from the internet, render the same in every browser and on paper, and be byte-stable for golden
tests. Each chart is a fixed-size `<svg>` with a `<title>` per mark (the tooltip), classes the report's CSS
colours, and a text alternative (`aria-label`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 620, 120
PAD = 4


@dataclass(frozen=True)
class Bar:
    """One bar: its height as a share of the chart's top value, its class, and its tooltip."""

    value: float | None
    """None: no data (a grey stub)."""
    css_class: str
    tooltip: str


def _number(value: float) -> str:
    """Coordinates to a tenth of a pixel: enough, and stable text."""
    return f"{value:.1f}"


def bar_chart(
    bars: Sequence[Bar], *, top: float, label: str, reference: float | None = None, css: str = "chart"
) -> str:
    """Bars left to right, scaled so `top` fills the height (taller values are clipped and marked); an optional
    dashed line at `reference` (e.g. the allowed rate)."""
    count = max(len(bars), 1)
    step = (WIDTH - 2 * PAD) / count
    width = max(step - 2, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(css)}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
    ]
    usable = HEIGHT - 2 * PAD
    for index, bar in enumerate(bars):
        x = PAD + index * step + 1
        if bar.value is None:
            height, css = 3.0, "nodata"
        else:
            height, css = max(min(bar.value / top, 1.0) * usable, 1.0) if top > 0 else 1.0, bar.css_class
        y = HEIGHT - PAD - height
        parts.append(
            f'<rect class="{css}" x="{_number(x)}" y="{_number(y)}" width="{_number(width)}" '
            f'height="{_number(height)}"><title>{escape(bar.tooltip)}</title></rect>'
        )
    if reference is not None and top > 0:
        y = HEIGHT - PAD - min(reference / top, 1.0) * usable
        parts.append(f'<line class="reference" x1="{PAD}" x2="{WIDTH - PAD}" y1="{_number(y)}" y2="{_number(y)}"/>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(points: Sequence[float | None], *, label: str, tooltips: Sequence[str]) -> str:
    """A line over [0, 1] (e.g. budget left after each day), a dot with a tooltip per point; gaps where None."""
    count = max(len(points) - 1, 1)
    usable = HEIGHT - 2 * PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">',
        f'<line class="axis" x1="{PAD}" x2="{WIDTH - PAD}" y1="{HEIGHT - PAD}" y2="{HEIGHT - PAD}"/>',
    ]
    placed: list[tuple[float, float, str] | None] = []
    for index, (point, tooltip) in enumerate(zip(points, tooltips, strict=True)):
        if point is None:
            placed.append(None)
            continue
        x = PAD + index * (WIDTH - 2 * PAD) / count
        y = HEIGHT - PAD - max(min(point, 1.0), 0.0) * usable
        placed.append((x, y, tooltip))
    run: list[str] = []
    for spot in [*placed, None]:
        if spot is None:
            if len(run) > 1:
                parts.append(f'<polyline class="burn" points="{" ".join(run)}"/>')
            run = []
        else:
            run.append(f"{_number(spot[0])},{_number(spot[1])}")
    for spot in placed:
        if spot is not None:
            parts.append(
                f'<circle class="{"spent" if spot[1] >= HEIGHT - PAD else "point"}" cx="{_number(spot[0])}" '
                f'cy="{_number(spot[1])}" r="2.5"><title>{escape(spot[2])}</title></circle>'
            )
    parts.append("</svg>")
    return "".join(parts)
