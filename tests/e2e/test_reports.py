"""/reports in Chromium: the charts render with no script errors and no request leaves
the app, and the chart's table reads the service's numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Browser

from portal.models import Role
from portal.sqltypes import utcnow
from tests.helpers import logged_in_page

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
