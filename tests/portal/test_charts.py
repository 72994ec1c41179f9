"""portal/charts.py: the reports' bar charts as SVG and as a table."""

from __future__ import annotations

import re

from portal.charts import HEIGHT, bar_chart

HOSTILE = "<script>alert(1)</script>\"'&"


def test_bars_are_drawn_to_scale_and_listed_in_the_table():
    out = str(bar_chart("chart-x", "Per day", [("2026-12-01", 3), ("2026-12-02", 6)], 6))
    rects = re.findall(r'<rect class="chart-bar" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" '
                       r'height="([\d.]+)"><title>([^<]*)</title>', out)  # fmt: skip
    full = HEIGHT - 10
    assert rects == [
        ("1.0", f"{HEIGHT - full / 2:.1f}", "318.0", f"{full / 2:.1f}", "2026-12-01: 3"),
        ("321.0", f"{HEIGHT - full:.1f}", "318.0", f"{full:.1f}", "2026-12-02: 6"),
    ]
    assert 'aria-labelledby="chart-x-title"' in out and "<caption>Per day</caption>" in out
    assert re.findall(r'<tr><th scope="row">([^<]*)</th><td class="num">([^<]*)</td>', out) == [
        ("2026-12-01", "3"),
        ("2026-12-02", "6"),
    ]


def test_missing_values_draw_nothing_and_read_as_a_dash():
    out = str(bar_chart("r", "Rate", [("a", None), ("b", 50.0)], 100, " %"))
    assert out.count('<rect class="chart-bar"') == 1
    assert '<th scope="row">a</th><td class="num">–</td>' in out
    assert '<th scope="row">b</th><td class="num">50.0 %</td>' in out
    assert '<rect class="chart-bar"' not in str(bar_chart("z", "None", [("a", 0)], 0))
    assert "<tbody></tbody>" in str(bar_chart("e", "Empty", [], 0))


def test_every_text_is_escaped():
    out = str(bar_chart(HOSTILE, HOSTILE, [(HOSTILE, 1)], 1, HOSTILE))
    assert "<script" not in out and "\"'&<" not in out
    # id 3× (figure, figcaption, aria-labelledby), title 2×, label and unit 2× each (bar,
    # row), the two axis labels.
    assert out.count("&lt;script&gt;") == 11
