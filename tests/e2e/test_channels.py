"""A seller connects Amazon UK in a real Chromium: guided setup, token form, copy button."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from portal.models import Role

pytestmark = pytest.mark.browser

GOOD_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"


def log_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/dashboard")


def test_seller_connects_amazon_uk(
    browser: Browser, live_server: str, make_user, make_org, tmp_path
) -> None:
    seller = make_user(
        Role.SELLER, organisation=make_org("Kite & Co"), password="correct horse battery"
    )
    other = make_user(
        Role.SELLER, organisation=make_org("Other Ltd"), password="correct horse battery"
    )
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    log_in(page, live_server, seller.email)
    page.get_by_role("link", name="Channels").click()
    page.get_by_role("link", name="Add a channel").first.click()
    page.get_by_label("Marketplace").select_option("UK")
    page.get_by_role("button", name="Add channel").click()
    # The Professional account confirmation is required, with the reason beside it.
    expect(page.locator("#is_professional-error")).to_contain_text(
        "Only Professional seller accounts"
    )
    page.get_by_label("My Amazon seller account is a Professional selling account").check()
    page.get_by_role("button", name="Add channel").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Amazon UK")
    channel_url = page.url
    step1 = page.locator("#step-1")
    expect(step1).to_contain_text("Authorise a Developer")
    expect(step1).to_contain_text("xSellco")
    expect(step1).to_contain_text("0873-6813-5448")
    expect(step1).to_contain_text("Not done")

    # A Seller ID pasted into the token field: an error beside each field.
    page.get_by_label("Seller ID").fill("A1B2C3D4E5F6G7")
    page.get_by_label("MWS Auth Token").fill("A1B2C3D4E5F6G7")
    page.get_by_role("button", name="Submit token").click()
    expect(page.locator("#mws_auth_token-error")).to_contain_text("looks like a Seller ID")
    expect(page.locator("#seller_id-error")).to_have_count(0)

    page.get_by_label("MWS Auth Token").fill(f"  {GOOD_TOKEN}  ")
    page.get_by_role("button", name="Submit token").click()
    expect(page.locator(".flash")).to_contain_text("pending verification")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Pending verification")
    expect(page.locator("#step-2")).to_contain_text("amzn.mws.…4d6f")
    expect(page.locator("#step-2")).to_contain_text("Done")
    assert GOOD_TOKEN not in page.content()

    address = page.locator("#helpdesk-address").inner_text()
    assert address.startswith("uk-") and address.endswith("@helpdesk.test")
    page.locator("button[aria-controls=helpdesk-address]").click()
    expect(page.locator("button[aria-controls=helpdesk-address]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == address

    page.get_by_label('I entered the helpdesk address as "Customer Service Email"').check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#step-3")).to_contain_text("Confirmed by you")
    page.screenshot(path=str(tmp_path / "channel.png"), full_page=True)
    assert dialogs == []
    context.close()

    # Another seller cannot open that channel.
    context = browser.new_context()
    page = context.new_page()
    log_in(page, live_server, other.email)
    response = page.goto(channel_url)
    assert response is not None and response.status == 404
    expect(page.locator("main")).not_to_contain_text(address)
    context.close()
