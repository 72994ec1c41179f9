"""Sign-up → dashboard → logout → login, in a real Chromium, CSRF on; what a logout ends."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from portal.models import Role
from tests.helpers import PASSWORD

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
    expect(page.locator("#password-error")).to_contain_text("at least 12 characters")

    page.get_by_label("Password", exact=True).fill("kite flying season")
    page.get_by_label("Repeat password").fill("kite flying season")
    page.get_by_role("button", name="Create account").click()
    # The same answer as for an address that has an account: no sign-in, a mail.
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.locator(".flash")).to_contain_text("We have sent a mail to kim@example.com")
    page.get_by_label("E-mail").fill("kim@example.com")
    page.get_by_label("Password").fill("kite flying season")
    page.get_by_role("button", name="Log in").click()
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


@pytest.mark.parametrize(
    "replayed",
    [("session",), ("remember_token",), ("session", "remember_token")],
    ids=["session", "remember_token", "both"],
)
def test_logout_ends_every_copy_of_the_cookies(
    browser: Browser, live_server: str, make_user, replayed
) -> None:
    # The outside probe's steps: log in with "Keep me logged in", copy the cookies, log
    # out, and bring the copies back in another browser window.
    user = make_user(Role.SELLER)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Keep me logged in").check()
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/dashboard")
    copied = [cookie for cookie in context.cookies() if cookie["name"] in replayed]
    assert sorted(cookie["name"] for cookie in copied) == sorted(replayed)

    def replay() -> Page:
        other = browser.new_context()
        other.add_cookies(copied)
        replaying = other.new_page()
        replaying.goto(f"{live_server}/dashboard")
        return replaying

    # The control: while the sign-in lasts, the copies open the dashboard.
    expect(replay()).to_have_url(f"{live_server}/dashboard")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server}/login")
    expect(replay()).to_have_url(f"{live_server}/login?next=%2Fdashboard")
