"""Account lockout, in Chromium: five wrong passwords lock the account, the page says until
when next to the field, and even the right password waits until then."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from portal.extensions import db
from portal.models import Role
from portal.models.ratelimits import LoginLockout
from portal.sqltypes import utcnow
from tests.helpers import PASSWORD

pytestmark = pytest.mark.browser


def try_password(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_five_wrong_passwords_lock_the_account_and_the_page_says_until_when(
    page: Page, live_server: str, make_user
) -> None:
    user = make_user(Role.SELLER, email="lee@example.com")
    for _ in range(4):
        try_password(page, live_server, user.email, "not the password at all")
        expect(page.locator("#password-error")).to_have_text("Wrong e-mail or password.")

    try_password(page, live_server, user.email, "not the password at all")
    error = page.locator("#password-error")
    expect(error).to_contain_text("Too many failed logins for this e-mail address")
    expect(error).to_contain_text(re.compile(r"try again in 30 seconds \(at \d\d:\d\d:\d\d UTC\)"))

    # The right password waits too, and is told so beside the field, not let in.
    try_password(page, live_server, user.email, PASSWORD)
    expect(page.locator("#password-error")).to_contain_text("try again in")
    expect(page).to_have_url(re.compile(r"/login"))

    # Once the wait is over (the clock moved on, not slept), the right password works.
    db.session.execute(update(LoginLockout).values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    try_password(page, live_server, user.email, PASSWORD)
    expect(page).to_have_url(f"{live_server}/dashboard")
