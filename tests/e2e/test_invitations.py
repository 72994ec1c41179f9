"""Invitations in Chromium: an owner invites a colleague as a member, the mail reaches the
real SMTP server through the worker's outbox pass, the colleague accepts and logs in; as
a member they read the channel but cannot open its settings."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from portal.models import Role
from portal.services import outbox_delivery
from tests.helpers import browser_log_in

pytestmark = [pytest.mark.browser, pytest.mark.smtp]

NEW_PASSWORD = "lantern orchard pebble"


@pytest.fixture
def mailed(app, smtp, live_server):
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{smtp.port}"
    app.config["PUBLIC_URL"] = live_server
    return smtp


def test_a_member_is_invited_accepts_and_cannot_open_channel_settings(
    browser: Browser, page: Page, live_server, mailed, make_org, make_user, make_channel
) -> None:
    org = make_org("Kite & Co")
    owner = make_user(Role.SELLER, organisation=org, email="owner@example.com")
    channel = make_channel("UK", organisation=org)

    browser_log_in(page, live_server, owner.email)
    page.get_by_role("link", name="Kite & Co").click()
    page.get_by_label("E-mail").fill("max@example.com")
    page.get_by_label("As").select_option("member")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".flash")).to_contain_text("Invitation sent to max@example.com")
    expect(page.locator("table.invitations")).to_contain_text("max@example.com")

    assert outbox_delivery.deliver_pending().sent == 1
    [received] = mailed.messages
    assert received.rcpt_tos == ["max@example.com"]
    assert "a member of Kite & Co" in received.message.get_content()
    [link] = re.findall(r"http://\S+/invitations/\S+", received.message.get_content())

    colleague = browser.new_context().new_page()
    colleague.goto(link)
    expect(colleague.locator("main")).to_contain_text("member of Kite & Co")
    colleague.get_by_label("Your name").fill("Max")
    colleague.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    colleague.get_by_label("Repeat new password").fill(NEW_PASSWORD)
    colleague.get_by_role("button", name="Accept and set password").click()
    expect(colleague).to_have_url(f"{live_server}/login")
    browser_log_in(colleague, live_server, "max@example.com", NEW_PASSWORD)
    expect(colleague.locator(".whoami")).to_contain_text("Max")

    # A member reads the channel, without its settings.
    colleague.goto(f"{live_server}/channels/{channel.id}")
    expect(colleague.locator("main")).to_contain_text(channel.helpdesk_address)
    expect(colleague.locator("details.token-form")).to_have_count(0)
    expect(colleague.get_by_role("heading", name="Confirm steps 3 and 4")).to_have_count(0)
    colleague.goto(f"{live_server}/channels")
    expect(colleague.get_by_role("link", name="Add a channel")).to_have_count(0)
    response = colleague.goto(f"{live_server}/channels/new")
    assert response is not None and response.status == 403

    # The link worked once.
    again = browser.new_context().new_page()
    again.goto(link)
    expect(again.locator("main")).to_contain_text("has expired, was withdrawn or has already")
