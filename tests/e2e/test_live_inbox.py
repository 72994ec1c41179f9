"""The live inbox in a real Chromium: a message stored while the inbox is open appears
without a reload, under the filters chosen, and a change of assignee shows on its row."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Role
from portal.services import threads as thread_service
from tests.helpers import browser_log_in

pytestmark = pytest.mark.browser

#: Polling runs every two seconds: generous, so a loaded machine does not fail the test.
WAIT = 20_000


def test_a_stored_message_appears_in_the_open_inbox_with_its_filters(
    browser: Browser, live_server: str, make_user, make_org, make_channel, make_thread, drop_mail
) -> None:
    org = make_org("Kite & Co")
    uk = make_channel("UK", organisation=org, address="uk-chan01@helpdesk.test")
    de = make_channel("DE", organisation=org)
    waiting = make_thread(uk, subject="Older UK question")
    make_thread(de, subject="Lieferung fehlt")
    other = make_org("Elsewhere Ltd")
    make_channel("UK", organisation=other, address="uk-else@helpdesk.test")
    agent = make_user(Role.AGENT, assigned=[org], password="correct horse battery")

    context = browser.new_context()
    page = context.new_page()
    browser_log_in(page, live_server, agent.email, "correct horse battery")
    page.goto(f"{live_server}/inbox?channel={uk.id}")
    rows = page.locator("table.inbox tbody tr")
    expect(rows).to_have_count(1)
    filtered_url = page.url
    page.evaluate("window.notReloaded = true")

    # Another organisation's mail never reaches this page.
    drop_mail("amazon_uk_inquiry.eml", replace={"uk-chan01@helpdesk.test": "uk-else@helpdesk.test"})
    drop_mail("amazon_uk_inquiry.eml")
    assert poll_all().stored == 2

    new_row = page.locator("table.inbox tbody tr.is-live-new")
    expect(new_row).to_have_count(1, timeout=WAIT)
    expect(rows).to_have_count(2)
    expect(page.locator("#live-status")).to_contain_text("1 new thread")
    assert page.evaluate("window.notReloaded") is True
    assert page.url == filtered_url
    expect(page.get_by_text("Lieferung fehlt")).to_have_count(0)

    # Assigned elsewhere (another tab, another agent): the row says so, the count too.
    thread_service.assign_thread(waiting, agent, actor=agent)
    db.session.commit()
    changed = page.locator("table.inbox tbody tr.is-live-changed")
    expect(changed).to_have_count(1, timeout=WAIT)
    expect(changed.locator("td.assignee")).to_contain_text(agent.display_name)
    expect(page.locator('#nav-counts [data-count="mine_open"]')).to_have_text("1")
    assert page.evaluate("window.notReloaded") is True
    context.close()
