"""Browser notifications in a real Chromium with the notifications permission granted:
opted in on /account, a new thread of the user's organisation is shown once across two
open tabs, another organisation's never, and a click opens the thread."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from portal.models import Role
from tests.helpers import browser_log_in

pytestmark = pytest.mark.browser

WAIT = 30_000

#: Records every Notification the page constructs (and every permission request),
#: keeping the real one underneath.
RECORD = """
window.__notes = [];
window.__asked = 0;
const Real = window.Notification;
class Recorded extends Real {
  constructor(title, options) {
    super(title, options);
    window.__notes.push({ title, body: options.body, tag: options.tag, note: this });
  }
  static requestPermission() {
    window.__asked += 1;
    return Real.requestPermission();
  }
}
window.Notification = Recorded;
"""


def test_a_new_thread_is_notified_once_and_opens_on_click(
    browser: Browser, live_server: str, make_user, make_org, make_channel, make_thread
) -> None:
    mine = make_channel("UK", organisation=make_org("Kite & Co"))
    theirs = make_channel("DE", organisation=make_org("Elsewhere GmbH"))
    seller = make_user(
        Role.SELLER, organisation=mine.organisation, password="correct horse battery"
    )

    context = browser.new_context(permissions=["notifications"])
    context.add_init_script(RECORD)
    page = context.new_page()
    browser_log_in(page, live_server, seller.email, "correct horse battery")
    page.goto(f"{live_server}/account")
    # Not opted in: no script asks the browser anything.
    assert page.evaluate("window.__asked") == 0
    page.get_by_label("Browser notifications").check()
    page.get_by_role("button", name="Save notifications").click()
    expect(page.locator("[data-notify-state]")).to_have_text("This browser shows them.")
    second = context.new_page()
    second.goto(f"{live_server}/inbox")
    tabs = (page, second)
    claims = [0, 0]  # the claims each tab has made

    def counter(n: int):
        def count(response) -> None:
            if response.url.endswith("/notifications/claim"):
                claims[n] += 1

        return count

    for n, tab in enumerate(tabs):
        tab.on("response", counter(n))

    make_thread(theirs, subject="Beta question")
    ours = make_thread(mine, subject="Alpha question")

    def shown() -> list[str]:
        return [t for tab in tabs for t in tab.evaluate("window.__notes.map(n => n.title)")]

    waited = 0
    while not shown() and waited < WAIT:
        page.wait_for_timeout(250)
        waited += 250
    assert shown() == ["New: Alpha question"]
    # Each tab asks twice more: the notification is still shown once.
    after = list(claims)
    for n, tab in enumerate(tabs):
        while claims[n] < after[n] + 2 and waited < 3 * WAIT:
            tab.wait_for_timeout(250)
            waited += 250
    assert shown() == ["New: Alpha question"]

    shown_on = page if page.evaluate("window.__notes.length") else second
    shown_on.evaluate("window.__notes[0].note.dispatchEvent(new Event('click'))")
    shown_on.wait_for_url(f"{live_server}/threads/{ours.id}")
    context.close()
