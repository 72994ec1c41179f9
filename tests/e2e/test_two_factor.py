"""Two-factor sign-in in a real Chromium: an agent's first login is the enrolment (the
test reads the secret on the page and computes the codes), then logins ask for a code; a
recovery code works once; a trusted browser skips the code."""

from __future__ import annotations

from datetime import UTC, datetime

import pyotp
import pytest
from playwright.sync_api import Page, expect

from portal.models import Role
from tests.helpers import PASSWORD

pytestmark = pytest.mark.browser


class Authenticator:
    """The phone's app: codes from the secret, never the same time step twice."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.last_step: int | None = None

    def code(self) -> str:
        # The portal accepts one step ahead (clock drift): a second code within 30 s
        # uses the next step rather than wait for it.
        current = self.totp.timecode(datetime.now(UTC))
        step = current if self.last_step is None or current > self.last_step else current + 1
        assert self.last_step is None or step > self.last_step, "two codes a step is the limit"
        self.last_step = step
        return self.totp.generate_otp(step)


def log_in(page: Page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def enter_code(page: Page, code: str, *, trust: bool = False) -> None:
    expect(page.get_by_role("heading", name="Two-factor sign-in")).to_be_visible()
    page.get_by_label("Code", exact=True).fill(code)
    if trust:
        page.get_by_label("Trust this browser for 30 days").check()
    page.get_by_role("button", name="Verify").click()


def log_out(page: Page, base: str) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{base}/login")


def test_agent_enrols_at_first_login_then_signs_in_with_codes(
    page: Page, live_server: str, make_user, make_org
) -> None:
    agent = make_user(Role.AGENT, email="ada@example.com", assigned=[make_org("Kite & Co")])
    log_in(page, live_server, agent.email)
    # The enrolment is the first and only page an agent reaches until done.
    expect(page).to_have_url(f"{live_server}/account/two-factor")
    page.goto(f"{live_server}/inbox")
    expect(page).to_have_url(f"{live_server}/account/two-factor")
    expect(page.locator(".qr svg")).to_be_visible()
    phone = Authenticator(page.locator("#totp-secret").inner_text())

    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.locator("#enable-code-error")).to_contain_text("does not match")
    page.get_by_label("Code from the app").fill(phone.code())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(set(codes)) == 10
    page.get_by_role("link", name="I have saved them").click()
    expect(page).to_have_url(f"{live_server}/dashboard")
    log_out(page, live_server)

    # The next login asks for a code after the password.
    log_in(page, live_server, agent.email)
    expect(page).to_have_url(f"{live_server}/login/two-factor")
    enter_code(page, "123 456")
    expect(page.locator("#code-error")).to_contain_text("This code is not right.")
    enter_code(page, phone.code())
    expect(page).to_have_url(f"{live_server}/dashboard")
    log_out(page, live_server)

    # A recovery code works once.
    log_in(page, live_server, agent.email)
    enter_code(page, codes[0])
    expect(page).to_have_url(f"{live_server}/dashboard")
    log_out(page, live_server)
    log_in(page, live_server, agent.email)
    enter_code(page, codes[0])
    expect(page.locator("#code-error")).to_contain_text("This code is not right.")

    # Trusted, this browser skips the code at the next login.
    enter_code(page, codes[1], trust=True)
    expect(page).to_have_url(f"{live_server}/dashboard")
    log_out(page, live_server)
    log_in(page, live_server, agent.email)
    expect(page).to_have_url(f"{live_server}/dashboard")
    page.goto(f"{live_server}/account/two-factor")
    expect(page.locator("#two-factor-status")).to_contain_text("Recovery codes left: 8")
