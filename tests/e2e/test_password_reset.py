"""Forgot password, in Chromium: the mail reaches the real SMTP server through the worker's
outbox pass, its link sets a new password once, and no link works after an hour."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from portal.models import Role
from portal.services import outbox_delivery
from portal.sqltypes import utcnow
from tests.helpers import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.smtp]

NEW_PASSWORD = "lantern orchard pebble"


@pytest.fixture
def mailed(app, smtp, live_server):
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{smtp.port}"
    app.config["PUBLIC_URL"] = live_server
    return smtp


def ask_for_link(page: Page, base: str, email: str, smtp) -> str:
    """Ask on the login page, let the worker's outbox pass send it; the mailed link."""
    before = len(smtp.messages)
    page.goto(f"{base}/login")
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("E-mail").fill(email)
    page.get_by_role("button", name="Send me a link").click()
    expect(page).to_have_url(f"{base}/login")
    expect(page.locator(".flash")).to_contain_text("a link to choose a new password")
    assert outbox_delivery.deliver_pending().sent == 1
    received = smtp.messages[before]
    assert received.rcpt_tos == [email]
    [link] = re.findall(r"http://\S+/password/reset/\S+", received.message.get_content())
    assert link.startswith(f"{base}/password/reset/")
    return link


def test_the_mailed_link_works_once(page: Page, live_server, mailed, make_user) -> None:
    user = make_user(Role.SELLER, email="kim@example.com")
    link = ask_for_link(page, live_server, user.email, mailed)

    page.goto(link)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set new password").click()
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.locator(".flash")).to_contain_text("Your password has been changed")

    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#password-error")).to_have_text("Wrong e-mail or password.")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/dashboard")

    page.goto(link)
    expect(page.locator("main")).to_contain_text("has expired or has already been used")
    expect(page.get_by_label("New password", exact=True)).to_have_count(0)


def test_the_link_no_longer_works_after_an_hour(
    app, page: Page, live_server, mailed, make_user
) -> None:
    user = make_user(Role.SELLER, email="kim@example.com")
    link = ask_for_link(page, live_server, user.email, mailed)
    issued = utcnow()

    app.config["CLOCK"] = lambda: issued + timedelta(hours=1, seconds=1)
    page.goto(link)
    expect(page.locator("main")).to_contain_text("has expired or has already been used")
    expect(page.get_by_label("New password", exact=True)).to_have_count(0)

    app.config["CLOCK"] = lambda: issued + timedelta(minutes=59)
    page.goto(link)
    expect(page.get_by_label("New password", exact=True)).to_be_visible()
