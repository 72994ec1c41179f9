"""The Amazon order panel in a real Chromium: the order the worker's fetch-orders job got
from the SP-API stand-in, the review request, and the hint for a seller without SP-API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Browser, expect

from ingest.scheduler import orders_job
from portal.models import Role
from portal.sqltypes import utcnow
from tests.helpers import authorise_with_amazon, browser_log_in, connect_with_mws_token

pytestmark = [pytest.mark.browser, pytest.mark.spapi]

REFRESH_TOKEN = "Atzr|IwEBIstandin-refresh-token-for-the-panel-in-chromium-0123456789WXYZ"
ORDER = "202-1234567-8901234"
TITLE = "Echo Dot (4th Gen) | Smart speaker with Alexa | Charcoal"


def test_agent_reads_the_fetched_order_and_requests_a_review_once(
    app, browser: Browser, live_server: str, spapi, make_org, make_channel, make_thread, make_user
) -> None:
    org = make_org("Kite & Co")
    channel = make_channel("IE", organisation=org)
    authorise_with_amazon(channel, spapi, REFRESH_TOKEN)
    # Delivered ten days ago: Amazon offers the review request (5 to 30 days after).
    delivered = (utcnow() - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    spapi.orders[ORDER]["order"]["fulfillment"]["deliverByWindow"] = {"latestDateTime": delivered}
    thread = make_thread(channel, order_id=ORDER)
    agent = make_user(Role.AGENT, assigned=[org])

    orders_job(app)  # the worker's fetch-orders job, as the scheduler runs it
    assert spapi.calls["getOrder"] == 1
    assert spapi.calls["getSolicitationActionsForOrder"] == 1
    spapi.calls.clear()

    page = browser.new_context().new_page()
    browser_log_in(page, live_server, agent.email)
    page.goto(f"{live_server}/threads/{thread.id}")
    panel = page.locator("#order")
    expect(panel.locator(".item-title")).to_have_text(TITLE)
    expect(panel.locator(".order-status")).to_have_text("Shipped")
    expect(panel.locator(".tracking-number")).to_have_text("RR123456789GB")
    expect(panel.get_by_role("link", name="Open in Seller Central")).to_have_attribute(
        "href", f"https://sellercentral-europe.amazon.com/orders-v3/order/{ORDER}"
    )
    assert sum(spapi.calls.values()) == 0  # the page asked Amazon nothing

    panel.get_by_role("button", name="Request a review").click()
    expect(page.locator(".flash")).to_contain_text("Review requested")
    expect(panel.locator(".order-review-requested")).to_contain_text("Review requested on")
    expect(panel.get_by_role("button", name="Request a review")).to_have_count(0)
    page.reload()
    expect(panel.locator(".order-review-requested")).to_contain_text("Review requested on")
    assert spapi.calls["createProductReviewAndSellerFeedbackSolicitation"] == 1


def test_seller_without_sp_api_sees_the_authorise_with_amazon_hint(
    browser: Browser, live_server: str, spapi, make_org, make_channel, make_thread, make_user
) -> None:
    org = make_org("Kite & Co")
    channel = make_channel("UK", organisation=org)
    connect_with_mws_token(channel)
    thread = make_thread(channel, order_id=ORDER)
    seller = make_user(Role.SELLER, organisation=org)

    page = browser.new_context().new_page()
    browser_log_in(page, live_server, seller.email)
    page.goto(f"{live_server}/threads/{thread.id}")
    panel = page.locator("#order")
    expect(panel.locator(".order-reason")).to_contain_text(
        "There is no order data because this channel is connected with an MWS token only"
    )
    panel.get_by_role("link", name="Authorise with Amazon").click()
    expect(page).to_have_url(f"{live_server}/channels/{channel.id}#step-1")
    expect(page.locator("#step-1")).to_contain_text("Authorise Sellerdesk with Amazon")
    assert sum(spapi.calls.values()) == 0
