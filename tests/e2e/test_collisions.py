"""Two agents on one thread, each in their own browser context: they see each other,
and the second to send is stopped with the first one's reply to read."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from portal.extensions import db
from portal.models import Role
from tests.helpers import logged_in_page

pytestmark = pytest.mark.browser

# The heartbeat runs every 5 s: what the other page learns may take one beat.
BEAT = 12_000


def test_two_agents_see_each_other_and_the_second_is_stopped(
    browser: Browser, live_server: str, make_user, make_channel, make_thread
) -> None:
    thread = make_thread(make_channel("UK"), buyer_name="Jane")
    db.session.commit()
    org = thread.channel.organisation
    ana = make_user(Role.AGENT, name="Ana", assigned=[org])
    bo = make_user(Role.AGENT, name="Bo", assigned=[org])
    path = f"/threads/{thread.id}"
    ana_page, ana_errors = logged_in_page(browser, live_server, ana.email, path)
    bo_page, bo_errors = logged_in_page(browser, live_server, bo.email, path)

    expect(bo_page.locator("[data-presence]")).to_have_text("Also here: Ana.", timeout=BEAT)
    expect(ana_page.locator("[data-presence]")).to_have_text("Also here: Bo.", timeout=BEAT)
    bo_page.get_by_role("textbox", name="Reply").fill(
        "Hello Jane, order 203-1234567-1234567 left today."
    )
    expect(ana_page.locator("[data-presence]")).to_have_text(
        "Also here: Bo (writing a reply).", timeout=BEAT
    )

    ana_page.get_by_role("textbox", name="Reply").fill(
        "Hello Jane, order 203-1234567-1234567 is on its way."
    )
    ana_page.get_by_role("button", name="Send reply").click()
    expect(ana_page.locator(".flash")).to_contain_text("Reply sent.")

    bo_page.get_by_role("button", name="Send reply").click()
    alert = bo_page.locator(".collision")
    expect(alert).to_contain_text("Ana replied at ")
    expect(alert).to_contain_text("read it first.")
    expect(
        bo_page.get_by_text("Hello Jane, order 203-1234567-1234567 is on its way.")
    ).to_be_visible()
    expect(bo_page.get_by_role("textbox", name="Reply")).to_have_value(
        "Hello Jane, order 203-1234567-1234567 left today."
    )
    bo_page.get_by_role("button", name="Send anyway").click()
    expect(bo_page.locator(".flash")).to_contain_text("Reply sent.")

    # Ana leaves: Bo's page stops showing her at its next beat.
    ana_page.context.close()
    expect(bo_page.locator("[data-presence]")).to_have_text("", timeout=BEAT)
    assert ana_errors == [] and bo_errors == []
    bo_page.context.close()
