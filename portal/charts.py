"""Bar charts as plain SVG with their data as a table, built in Python.

The reports page draws two charts of up to 366 bars each, and the same data again as
tables: as a Jinja macro that was the largest cost of a page whose figures are kept
(hundreds of small renders and escapes per chart). Here each bar is one f-string and
every text passes escape().
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 160


def _number(value: float) -> str:
    """A coordinate to one decimal ("12.3", "160.0"), as the SVG needs no more."""
    return f"{round(value, 1):.1f}"


def bar_chart(
    chart_id: str,
    title: str,
    bars: Sequence[tuple[str, float | int | None]],
    top: float | int,
    unit: str = "",
) -> Markup:
    """A chart of `bars` ((label, value or None) each; None draws nothing) where `top`
    is a full bar, titled `title`, its data as a table under "Show as table"."""
    step = WIDTH / (len(bars) or 1)
    bar_width = _number(max(step - 2, 1))
    rects = []
    rows = []
    for index, (label, value) in enumerate(bars):
        text = escape(label)
        if value is not None and top:
            h = round(value / top * (HEIGHT - 10), 1)
            rects.append(
                f'<rect class="chart-bar" x="{_number(index * step + 1)}" '
                f'y="{_number(HEIGHT - h)}" width="{bar_width}" height="{_number(h)}">'
                f"<title>{text}: {escape(value)}{escape(unit)}</title></rect>"
            )
        shown = "–" if value is None else f"{escape(value)}{escape(unit)}"
        rows.append(f'<tr><th scope="row">{text}</th><td class="num">{shown}</td></tr>')
    labels = ""
    if bars:
        labels = (
            f'<text x="0" y="{HEIGHT + 15}" class="chart-label">{escape(bars[0][0])}</text>'
            f'<text x="{WIDTH}" y="{HEIGHT + 15}" text-anchor="end" class="chart-label">'
            f"{escape(bars[-1][0])}</text>"
        )
    cid, caption = escape(chart_id), escape(title)
    return Markup(  # noqa: S704 (every label, value, unit, id and title passes escape())
        f'<figure class="chart" id="{cid}">'
        f'<figcaption id="{cid}-title">{caption}</figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT + 20}" width="100%" role="img" '
        f'aria-labelledby="{cid}-title" focusable="false">'
        f'<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" class="chart-axis" />'
        f"{''.join(rects)}{labels}</svg>"
        "<details><summary>Show as table</summary>"
        f'<table class="list"><caption>{caption}</caption>'
        '<thead><tr><th scope="col">Day</th><th scope="col" class="num">Value</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></details></figure>"
    )
