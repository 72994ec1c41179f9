"""The phone layout in Chromium at 390×844: the navigation folds behind Menu, inbox rows
are cards, the thread is one column with the reply box reachable, taps are 44 px,
nothing scrolls sideways; without JavaScript the navigation stays in view."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from portal.models import Role
from tests.helpers import browser_log_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide"


def height(locator) -> float:
    return locator.bounding_box()["height"]


@pytest.fixture
def agent_with_threads(make_org, make_channel, make_thread, make_user):
    org = make_org("Pocket Ltd")
    channel = make_channel("UK", organisation=org)
    threads = [make_thread(channel, subject=f"Parcel question {i}") for i in range(3)]
    return make_user(Role.AGENT, assigned=[org]), threads


def test_an_agent_works_the_inbox_and_a_thread_on_a_phone(
    browser: Browser, live_server: str, agent_with_threads
) -> None:
    agent, threads = agent_with_threads
    page = browser.new_context(viewport=PHONE, has_touch=True).new_page()
    browser_log_in(page, live_server, agent.email)
    page.goto(f"{live_server}/inbox")
    no_sideways_scroll(page)

    # The navigation is behind Menu until it is opened.
    nav = page.get_by_role("navigation", name="Main")
    menu = page.get_by_role("button", name="Menu")
    expect(nav).to_be_hidden()
    assert height(menu) >= 44
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav).to_be_visible()
    inbox_link = nav.get_by_role("link", name="Inbox")
    assert height(inbox_link) >= 44
    menu.click()
    expect(nav).to_be_hidden()

    # Rows are cards: buyer, subject, status and due time; no header row, no channel.
    rows = page.locator("table.inbox tbody tr")
    expect(rows).to_have_count(3)
    card = rows.first
    assert card.evaluate("r => getComputedStyle(r).display") == "grid"
    expect(page.locator("table.inbox thead th").first).not_to_be_in_viewport()
    for cell in ("buyer", "subject", "status", "due"):
        expect(card.locator(f"td.{cell}")).to_be_visible()
    for cell in ("channel", "order", "assignee"):
        expect(card.locator(f"td.{cell}")).to_be_hidden()
    assert card.bounding_box()["width"] <= PHONE["width"]
    subject = card.locator("td.subject a")
    assert height(subject) >= 44

    # The thread is one column and the reply box is reachable.
    subject.tap()
    page.wait_for_url("**/threads/*")
    no_sideways_scroll(page)
    reply = page.locator("#composer textarea[name='body']")
    reply.scroll_into_view_if_needed()
    expect(reply).to_be_in_viewport()
    box = reply.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    send = page.locator("#composer").get_by_role("button", name="Send reply")
    assert height(send) >= 44
    side = page.get_by_role("complementary", name="Details").bounding_box()
    main = page.locator("#composer").bounding_box()
    assert side["y"] > main["y"]  # below the conversation, not beside it


def test_without_javascript_the_navigation_stays_in_view_on_a_phone(
    browser: Browser, live_server: str, agent_with_threads
) -> None:
    agent, _ = agent_with_threads
    page = browser.new_context(viewport=PHONE, java_script_enabled=False).new_page()
    browser_log_in(page, live_server, agent.email)
    page.goto(f"{live_server}/inbox")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    no_sideways_scroll(page)
