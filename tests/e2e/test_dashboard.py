"""The dashboards in Chromium: the seller's sparklines and answers due, the admin's
mailbox charts, rendered with no console error and no request outside the app; the
charts' tables read the service's numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, expect

from portal.extensions import db
from portal.models import Direction, Mailbox, Message, Role
from portal.services import mailboxes
from portal.sqltypes import utcnow
from tests.helpers import logged_in_page

pytestmark = pytest.mark.browser


def _serious_violations(page) -> list[str]:
    """What axe-core calls serious or critical on the page as it is now."""
    found = Axe().run(page).response["violations"]
    return [v["id"] for v in found if v["impact"] in {"serious", "critical"}]


def _watch(page, base: str) -> tuple[list[str], list[str]]:
    """Console errors and requests outside the app, from now on."""
    console: list[str] = []
    outside: list[str] = []
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
    return console, outside


def test_seller_dashboard_renders_offline(
    browser: Browser, live_server, make_user, make_org, make_channel, make_thread
):
    now = utcnow()
    org = make_org("Alpha Ltd")
    uk = make_channel("UK", organisation=org)
    late = make_thread(uk, subject="Where is my lamp", received_at=now - timedelta(hours=30))
    make_thread(uk, texts=("a", "b"), received_at=now)
    make_thread(make_channel("DE", organisation=make_org("Beta GmbH")), subject="Beta's buyer")
    seller = make_user(Role.SELLER, organisation=org)

    page, errors = logged_in_page(browser, live_server, seller.email, "/account")
    console, outside = _watch(page, live_server)
    page.goto(f"{live_server}/dashboard")

    spark = page.locator("#channel-overview svg.sparkline")
    expect(spark).to_have_count(1)
    assert spark.get_attribute("role") == "img"
    assert spark.locator("rect.spark-bar").count() >= 1
    page.get_by_text("Show the last 7 days as a table").click()
    row = page.locator("#channel-volume tbody tr", has_text="Amazon UK")
    expect(row.locator("td").last).to_have_text("3")
    assert _serious_violations(page) == []
    expect(page.get_by_text("Beta's buyer")).to_have_count(0)
    page.locator("#overdue").get_by_role("link", name="Where is my lamp").click()
    page.wait_for_url(f"{live_server}/threads/{late.id}")
    assert errors == [] and console == []
    assert outside == []


def test_admin_mailbox_charts_render_offline(
    browser: Browser, live_server, make_user, make_channel
):
    now = utcnow()
    box = Mailbox(name="amazon-eu", source_url="maildir:/tmp/eu")
    db.session.add(box)
    db.session.flush()
    uk = make_channel("UK")
    for n in range(3):
        db.session.add(
            Message(
                channel=uk,
                mailbox_id=box.id,
                direction=Direction.IN,
                message_id=f"<e{n}@example.com>",
                content_hash=f"e{n}",
                created_at=now,
            )
        )
    mailboxes.count_poll(box, failed=True, now=now)
    db.session.commit()
    admin = make_user(Role.ADMIN)

    page, errors = logged_in_page(browser, live_server, admin.email, "/account")
    console, outside = _watch(page, live_server)
    page.goto(f"{live_server}/admin")

    chart = page.locator(f"#mailbox-{box.id}-hours")
    expect(chart.locator("svg rect.chart-bar")).to_have_count(1)
    expect(chart.locator("svg rect.chart-fail")).to_have_count(1)
    chart.get_by_text("Show as table").click()
    last = chart.locator("tbody tr").last
    expect(last.locator("th")).to_have_text(f"{now:%H}:00")
    expect(last.locator("td")).to_have_text(["3", "1", "1"])
    assert _serious_violations(page) == []
    assert errors == [] and console == []
    assert outside == []
