"""/reports in Chromium: the charts render with no script errors and no request leaves
the app, and the chart's table reads the service's numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Browser

from portal.extensions import db
from portal.models import Role
from portal.services import reports
from portal.sqltypes import utcnow
from tests.helpers import add_sent_reply, logged_in_page

pytestmark = pytest.mark.browser


def test_charts_render_offline_with_their_tables(
    browser: Browser, live_server, make_user, make_org, make_channel, make_thread
):
    org = make_org("Alpha Ltd")
    uk = make_channel("UK", organisation=org)
    received = utcnow() - timedelta(hours=2)
    make_thread(uk, texts=("a", "b"), received_at=received)
    seller = make_user(Role.SELLER, organisation=org)

    page, errors = logged_in_page(browser, live_server, seller.email, "/dashboard")
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith(live_server) else outside.append(request.url)
        ),
    )
    page.goto(f"{live_server}/reports?period=7")

    # A bar a day (7 days back to now touch 8 calendar days), empty ones of height 0.
    assert page.locator("#chart-messages svg rect.chart-bar").count() == 8
    assert page.locator("#chart-rate svg").count() == 1
    page.locator("#chart-messages summary").click()
    row = page.locator("#chart-messages table tr", has_text=received.date().isoformat())
    assert row.locator("td").inner_text() == "2"
    total = page.locator("#report-channels tr.total td")
    assert total.nth(0).inner_text() == "2"
    assert errors == []
    assert outside == []


def test_tables_read_the_services_numbers(
    browser: Browser, live_server, make_user, make_org, make_channel, make_thread
):
    now = utcnow()
    org = make_org("Alpha Ltd")
    agent = make_user(Role.AGENT, assigned=[org], name="Ann Agent")
    uk = make_channel("UK", organisation=org)
    de = make_channel("DE", organisation=org)
    # UK: two answered by the agent after 2 h and 30 h, one open; DE: one open.
    for hours_ago, answered_after in ((40, 30), (6, 2)):
        thread = make_thread(uk, received_at=now - timedelta(hours=hours_ago))
        reply = add_sent_reply(
            thread, at=now - timedelta(hours=hours_ago - answered_after), number=hours_ago
        )
        reply.author = agent
    make_thread(uk, received_at=now - timedelta(hours=1))
    make_thread(de, received_at=now - timedelta(hours=3))
    db.session.commit()
    rows = reports.channel_report(
        organisation_ids=[org.id], start=now - timedelta(days=7), end=now, now=now
    )
    expected = {row.scope: reports.report_row(row)[1:] for row in rows}
    distribution = reports.response_distribution(
        organisation_ids=[org.id], start=now - timedelta(days=7), end=now
    )
    seller = make_user(Role.SELLER, organisation=org)

    page, errors = logged_in_page(browser, live_server, seller.email, "/dashboard")
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith(live_server) else outside.append(request.url)
        ),
    )
    page.goto(f"{live_server}/reports?period=7&sort=messages&dir=desc")

    table = page.get_by_role("table", name="Per channel and in total")
    read = {}
    for row in table.locator("tbody tr").all():
        scope = row.get_by_role("rowheader").inner_text()
        read["total" if scope == "Total" else scope] = [
            "" if cell == "–" else cell for cell in row.locator("td").all_inner_texts()
        ]
    assert read == expected
    # Sorted by messages, most first: UK (3) before DE (1); the header says so.
    assert table.get_by_role("rowheader").all_inner_texts() == ["UK", "DE", "Total"]
    assert table.locator("th[aria-sort=descending]").inner_text().startswith("Messages")
    # The agent answered two messages, one within 24 h: median 16 h, p90 27.2 h.
    agents = page.get_by_role("table", name="Per agent")
    assert agents.locator("tbody tr").first.locator("td").all_inner_texts() == [
        "2",
        "2",
        "1",
        "50.0",
        "960.0",
        "1632.0",
    ]
    # The histogram and its table: 2 h in 1–4 h, 30 h in 24–48 h (late).
    chart = page.locator("#chart-distribution")
    assert chart.locator("svg rect.chart-bar").count() == len(distribution)
    assert chart.locator("svg rect.chart-bar-late").count() == 2
    chart.locator("summary").click()
    shown = {
        row.get_by_role("rowheader").inner_text(): row.locator("td").inner_text()
        for row in chart.locator("tbody tr").all()
    }
    assert shown == {
        label + (" (late)" if key in ("24_48h", "over_48h") else ""): str(n)
        for key, label, n in distribution
    }
    assert shown["1–4 h"] == "1" and shown["24–48 h (late)"] == "1"
    assert errors == []
    assert outside == []
