"""The live thread page in a real Chromium: a buyer's message stored through the pipeline
while the thread is open appears without a reload, announced, and the reply being typed
stays as it was."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Role, Thread
from tests.helpers import browser_log_in

pytestmark = pytest.mark.browser

#: Polling runs every two seconds: generous, so a loaded machine does not fail the test.
WAIT = 20_000


def test_a_stored_message_appears_in_the_open_thread(
    browser: Browser, live_server: str, make_user, make_org, make_channel, drop_mail
) -> None:
    org = make_org("Kite & Co")
    make_channel("UK", organisation=org, address="uk-chan01@helpdesk.test")
    agent = make_user(Role.AGENT, assigned=[org], password="correct horse battery")
    drop_mail("amazon_uk_inquiry.eml")
    assert poll_all().stored == 1
    thread = db.session.scalars(select(Thread)).one()

    context = browser.new_context()
    page = context.new_page()
    browser_log_in(page, live_server, agent.email, "correct horse battery")
    page.goto(f"{live_server}/threads/{thread.id}")
    articles = page.locator("#thread-live article.message")
    expect(articles).to_have_count(1)
    page.evaluate("window.notReloaded = true")
    body = page.locator("#reply-form textarea[name=body]")
    body.fill("Dear Jane, I am looking into it")

    drop_mail("amazon_uk_followup.eml")
    assert poll_all().stored == 1

    expect(page.locator("#thread-live article.message.is-live-new")).to_have_count(1, timeout=WAIT)
    expect(articles).to_have_count(2)
    expect(page.locator("#thread-live-status")).to_contain_text(
        "New in this thread: a message from"
    )
    assert page.evaluate("window.notReloaded") is True
    expect(body).to_have_value("Dear Jane, I am looking into it")
    context.close()
