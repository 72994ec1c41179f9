"""Keyboard shortcuts in a real Chromium: j/k move through the inbox, o opens, r/e/a act
on a thread, / searches, ? lists them, and none of them fires while typing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Browser, expect

from portal.extensions import db
from portal.models import Role, Thread, ThreadStatus
from portal.sqltypes import utcnow
from tests.helpers import browser_log_in

pytestmark = pytest.mark.browser


def test_an_agent_works_the_inbox_from_the_keyboard(
    app, browser: Browser, live_server: str, make_org, make_channel, make_thread, make_user
) -> None:
    org = make_org("Keys Ltd")
    channel = make_channel("UK", organisation=org)
    now = utcnow()
    # Newest first in the inbox: "Third" on top.
    threads = [
        make_thread(channel, subject=subject, received_at=now - timedelta(minutes=10 - i))
        for i, subject in enumerate(["First", "Second", "Third"])
    ]
    agent = make_user(Role.AGENT, assigned=[org])
    page = browser.new_context().new_page()
    browser_log_in(page, live_server, agent.email)
    page.goto(f"{live_server}/inbox?sort=activity")
    rows = page.locator("table.inbox tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator(".kbd-hint")).to_be_visible()

    page.keyboard.press("j")
    expect(rows.nth(0)).to_contain_class("kbd-current")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("j")  # stays on the last row
    expect(rows.nth(2)).to_contain_class("kbd-current")
    expect(rows.nth(0)).not_to_contain_class("kbd-current")
    page.keyboard.press("k")
    expect(rows.nth(1)).to_contain_class("kbd-current")
    second_href = rows.nth(1).locator("a[href*='/threads/']").first.get_attribute("href")

    # "/" goes to the search field; letters typed there are text, not shortcuts.
    page.keyboard.press("/")
    search = page.locator("form[role='search'] input[name='q']")
    expect(search).to_be_focused()
    page.keyboard.type("jko")
    expect(search).to_have_value("jko")
    assert "/inbox" in page.url
    search.fill("")

    # "?" lists the shortcuts in a dialog that Escape closes.
    page.locator("h1").click()
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    expect(dialog.locator("tr")).to_have_count(8)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # "o" opens the chosen row.
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("o")
    page.wait_for_url(f"**{second_href}")
    thread_id = int(second_href.rstrip("/").rsplit("/", 1)[1])

    # "a" assigns it to me, "r" goes to the reply box (where "e" is a letter), and
    # "e" outside it closes the thread.
    page.keyboard.press("a")
    expect(page.get_by_role("button", name="Assign to me")).to_have_count(0)
    page.keyboard.press("r")
    reply = page.locator("#composer textarea[name='body']")
    expect(reply).to_be_focused()
    page.keyboard.type("e")
    expect(reply).to_have_value("e")
    page.locator("h1").click()
    page.keyboard.press("e")
    expect(page.locator("select[name='status']")).to_have_value("closed")

    db.session.expire_all()
    thread = db.session.get(Thread, thread_id)
    assert thread.status == ThreadStatus.CLOSED
    assert thread.assignee_id == agent.id
    others = {t.id for t in threads} - {thread_id}
    assert {db.session.get(Thread, i).status for i in others} == {ThreadStatus.OPEN}
