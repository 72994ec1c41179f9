"""An admin verifies a seller's token in a real Chromium; the seller's page then shows it active."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from portal.extensions import db
from portal.models import Role
from portal.services import channels as channel_service
from tests.helpers import browser_log_in

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
GOOD_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"


def log_in(page: Page, base: str, email: str) -> None:
    # The password, then (the admin) the code of the authenticator the helper enrols.
    browser_log_in(page, base, email, PASSWORD)


def test_admin_verifies_a_pending_token(
    browser: Browser, live_server: str, make_user, make_org, make_channel, tmp_path
) -> None:
    org = make_org("Kite & Co")
    seller = make_user(Role.SELLER, organisation=org, password=PASSWORD)
    admin = make_user(Role.ADMIN, password=PASSWORD)
    channel = make_channel("UK", organisation=org)
    channel_service.submit_mws_token(
        channel, seller_id="A1B2C3D4E5F6G7", token=GOOD_TOKEN, actor=seller
    )
    db.session.commit()
    channel_url = f"{live_server}/channels/{channel.id}"

    seller_context = browser.new_context()
    seller_page = seller_context.new_page()
    log_in(seller_page, live_server, seller.email)
    seller_page.goto(channel_url)
    expect(seller_page.get_by_role("heading", level=1)).to_contain_text("Pending verification")

    admin_context = browser.new_context()
    page = admin_context.new_page()
    log_in(page, live_server, admin.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Channels").click()
    page.get_by_label("Status").select_option("pending_verification")
    page.get_by_role("button", name="Filter").click()
    row = page.locator(f"#channel-{channel.id}")
    expect(row).to_contain_text("Kite & Co")
    expect(row).to_contain_text("amzn.mws.…4d6f")
    expect(row).to_contain_text("A1B2C3D4E5F6G7")
    row.get_by_role("link", name="Amazon UK").click()

    verify = page.locator("#verify")
    verify.get_by_label("Reason (optional)").fill("Token checked against the Seller ID.")
    verify.get_by_role("button", name="Verify token").click()
    expect(page.locator(".flash")).to_contain_text("Token verified")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Active")
    expect(page.locator("#verify")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "admin-channel.png"), full_page=True)
    admin_context.close()

    # The seller's own browser, on reload, shows the channel active with the admin's note.
    seller_page.reload()
    expect(seller_page.get_by_role("heading", level=1)).to_contain_text("Active")
    status = seller_page.get_by_role("region", name="Channel status")
    expect(status).to_contain_text("Active.")
    expect(status).to_contain_text("Token checked against the Seller ID.")
    seller_context.close()
