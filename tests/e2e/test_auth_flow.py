"""Sign-up → dashboard → logout → login, in a real Chromium, CSRF on."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def test_signup_login_dashboard_logout(page: Page, live_server: str) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(f"{live_server}/signup")
    page.get_by_label("Business name").fill("Kite & Co")
    page.get_by_label("Your name").fill("Kim")
    page.get_by_label("E-mail").fill("kim@example.com")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Repeat password").fill("short")
    page.get_by_role("button", name="Create account").click()
    # Bad input: the message shows next to the field and nothing is created.
    expect(page.locator("#password-error")).to_contain_text("at least 10 characters")

    page.get_by_label("Password", exact=True).fill("kite flying season")
    page.get_by_label("Repeat password").fill("kite flying season")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{live_server}/dashboard")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Kite & Co")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.locator(".flash")).to_contain_text("You are logged out.")
    page.goto(f"{live_server}/dashboard")
    expect(page).to_have_url(f"{live_server}/login?next=%2Fdashboard")

    page.get_by_label("E-mail").fill("kim@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#password-error")).to_have_text("Wrong e-mail or password.")

    page.get_by_label("Password").fill("kite flying season")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/dashboard")
    expect(page.locator(".whoami")).to_contain_text("Kim")
    assert dialogs == []


def test_form_without_csrf_token_is_refused_in_browser(page: Page, live_server: str) -> None:
    page.goto(f"{live_server}/login")
    # Simulate a cross-site form: the same fields, no token.
    page.evaluate("document.querySelector('input[name=csrf_token]').remove()")
    page.get_by_label("E-mail").fill("kim@example.com")
    page.get_by_label("Password").fill("whatever it is")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Form expired")).to_be_visible()
