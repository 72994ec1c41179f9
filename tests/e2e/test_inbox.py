"""The agent's inbox in a real Chromium: filters, and hostile mail that must stay inert."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, expect

from ingest.pipeline import poll_all
from portal.models import Role
from tests.helpers import browser_log_in

pytestmark = pytest.mark.browser


def test_agent_filters_inbox_and_reads_hostile_mail_safely(
    browser: Browser, live_server: str, make_user, make_org, make_channel, make_thread, drop_mail
) -> None:
    org = make_org("Kite & Co")
    make_channel("UK", organisation=org, address="uk-chan01@helpdesk.test")
    de = make_channel("DE", organisation=org)
    make_thread(de, subject="Lieferung fehlt", buyer_name="Max")
    drop_mail("hostile_html.eml")
    assert poll_all().stored == 1
    agent = make_user(Role.AGENT, assigned=[org], password="correct horse battery")

    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    # Every request the page makes, frames included: nothing may leave loopback.
    hosts: list[str] = []
    page.on("request", lambda r: hosts.append(urlparse(r.url).hostname or r.url[:16]))

    browser_log_in(page, live_server, agent.email, "correct horse battery")
    page.get_by_role("link", name="Inbox").click()
    rows = page.locator("table.inbox tbody tr")
    expect(rows).to_have_count(2)

    page.get_by_label("Channel").select_option(label="Amazon UK")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    assert "channel=" in page.url  # a filtered inbox is a shareable link
    # The hostile subject shows as text, not markup.
    link = rows.first.locator("td.subject a")
    expect(link).to_contain_text("<img src=x onerror=alert('subject')>")
    link.click()

    expect(page.locator(".message .sender").first).to_contain_text("<script>alert('name')</script>")
    page.get_by_text("Formatted (HTML) version").click()
    frame = page.frame_locator("iframe.html-frame")
    expect(frame.locator("body")).to_contain_text("Hello seller")
    # The cid: logo is resolved; the remote tracking pixel is blocked.
    expect(frame.locator("img[src]")).to_have_count(1)
    assert frame.locator("img[src]").get_attribute("src").startswith("data:image/png")
    expect(page.get_by_role("link", name="Show images")).to_be_visible()
    page.wait_for_timeout(300)  # give any payload a chance to fire

    assert dialogs == []
    assert set(hosts) <= {"127.0.0.1"}, hosts
    context.close()


@pytest.fixture
def kite_thread_with_canned_reply(make_org, make_channel, make_thread, make_user):
    """Jane's thread on Kite & Co's UK channel and its agent Sam, with a canned reply of
    Kite's titled and written as given."""
    from portal.extensions import db
    from portal.services import canned as canned_service

    def make(title: str, body: str):
        org = make_org("Kite & Co")
        uk = make_channel("UK", organisation=org, address="uk-kite@helpdesk.test")
        thread = make_thread(uk, buyer_name="Jane", subject="Where is my order?")
        agent = make_user(Role.AGENT, assigned=[org], name="Sam")
        canned_service.create_canned_reply(organisation=org, title=title, body=body, actor=agent)
        db.session.commit()
        return thread, agent

    return make


def test_agent_inserts_canned_reply_is_warned_and_sends(
    browser: Browser, live_server: str, app, kite_thread_with_canned_reply
) -> None:
    from pathlib import Path

    thread, agent = kite_thread_with_canned_reply(
        "Returns",
        "Hello {buyer_name}, about order {order_id}: see https://kite.example/returns\n{agent_name}",
    )

    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    browser_log_in(page, live_server, agent.email, "correct horse battery")
    page.goto(f"{live_server}/threads/{thread.id}")

    body = page.get_by_label("Reply", exact=True)
    body.fill("Thanks for waiting. ")
    page.get_by_label("Canned reply").select_option(label="Returns")
    page.get_by_role("button", name="Insert").click()
    # Inserted at the cursor by script, keeping what was typed.
    expect(body).to_have_value(
        "Thanks for waiting. Hello Jane, about order 203-1234567-1234567: "
        "see https://kite.example/returns\nSam"
    )
    page.get_by_role("button", name="Send reply").click()
    warning = page.locator(".compliance")
    expect(warning).to_contain_text("kite.example")
    expect(body).to_contain_text("Thanks for waiting.")  # nothing typed is lost
    page.get_by_label("I checked the warnings above; send anyway").check()
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator(".flash")).to_contain_text("Reply sent.")
    outbound = page.locator("article.message.out")
    expect(outbound).to_contain_text("Hello Jane")
    expect(outbound.locator(".badge")).to_have_text("Sent")
    assert len(list(Path(app.config["SMTP_URL"].removeprefix("outbox:")).glob("*.eml"))) == 1
    assert dialogs == []
    context.close()


def test_an_unfilled_order_placeholder_is_flagged_until_replaced(
    browser: Browser, live_server: str, kite_thread_with_canned_reply
) -> None:
    from tests.helpers import browser_log_in, store_order

    thread, agent = kite_thread_with_canned_reply(
        "Status",
        "Order {order_id}: your {item_title} is {order_status}; it goes with {carrier}.",
    )
    # Stored, not shipped yet: a title and a status, no carrier.
    store_order(thread.channel, thread.order_id, fulfillment_status="UNSHIPPED", packages=[])

    context = browser.new_context()
    page = context.new_page()
    browser_log_in(page, live_server, agent.email)
    page.goto(f"{live_server}/threads/{thread.id}")

    notice = page.locator("#unfilled-placeholders")
    expect(notice).to_be_hidden()
    body = page.get_by_label("Reply", exact=True)
    page.get_by_label("Canned reply").select_option(label="Status")
    page.get_by_role("button", name="Insert").click()
    expect(body).to_have_value(
        "Order 203-1234567-1234567: your Garden Kneeler Pad, Green and Silicone Baking Mats "
        "(2-pack) is not yet shipped; it goes with {carrier}."
    )
    expect(notice).to_be_visible()
    expect(notice.locator("code")).to_have_text(["{carrier}"])
    # Sent as it is, the server refuses it beside the field.
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#body-error")).to_contain_text("no value for {carrier}")
    body = page.get_by_label("Reply", exact=True)
    body.fill(body.input_value().replace("{carrier}", "Royal Mail"))
    expect(page.locator("#unfilled-placeholders")).to_be_hidden()
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator(".flash")).to_contain_text("Reply sent.")
    expect(page.locator("article.message.out")).to_contain_text("goes with Royal Mail.")
    context.close()
