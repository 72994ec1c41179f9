"""'Authorise with Amazon' in a real Chromium, against the local consent and token stand-in."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from portal.crypto import decrypt_secret
from portal.extensions import db
from portal.models import Channel, ChannelStatus, CredentialKind, Role
from tests.spapi_standin import SELLING_PARTNER_ID

pytestmark = [pytest.mark.browser, pytest.mark.spapi]

PASSWORD = "correct horse battery"


def log_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/dashboard")


def plaintext_anywhere(secret: str) -> list[str]:
    """Tables with a row holding `secret` in plain text (any column, text or bytes)."""
    found = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                for value in row:
                    raw = value if isinstance(value, bytes | memoryview) else str(value).encode()
                    if secret.encode() in bytes(raw):
                        found.append(table.name)
    return found


def test_seller_authorises_with_amazon(
    browser: Browser, live_server: str, spapi, make_user, make_org, make_channel, tmp_path
) -> None:
    org = make_org("Kite & Co")
    seller = make_user(Role.SELLER, organisation=org, password=PASSWORD)
    uk = make_channel("UK", organisation=org)
    de = make_channel("DE", organisation=org)
    us = make_channel("US", organisation=org)
    channel_url = f"{live_server}/channels/{uk.id}"

    context = browser.new_context()
    page = context.new_page()
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "/spapi/callback" in r.url else None)
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    log_in(page, live_server, seller.email)
    page.goto(channel_url)
    step1 = page.locator("#step-1")
    expect(step1).to_contain_text("Authorise Sellerdesk with Amazon")
    expect(step1).to_contain_text("Amazon Germany, Amazon UK")
    expect(step1).to_contain_text("Not done")
    # The MWS path is still there, folded away.
    expect(page.locator("#step-2 summary").first).to_have_text("Use an MWS Auth Token instead")
    expect(page.get_by_label("MWS Auth Token")).to_be_hidden()

    # Consent on the stand-in's Seller Central page, then back on the channel page.
    step1.get_by_role("button", name="Authorise with Amazon").click()
    expect(page).to_have_title("Amazon Seller Central (stand-in)")
    assert page.url.startswith(spapi.consent_url + "?")
    page.get_by_role("button", name="Authorise").click()
    expect(page).to_have_url(channel_url)
    expect(page.locator(".flash")).to_have_text(
        "Authorised with Amazon. Amazon Germany, Amazon UK are now pending verification."
    )
    expect(page.get_by_role("heading", level=1)).to_contain_text("Pending verification")
    (refresh_token,) = spapi.issued_refresh_tokens
    hint = "Atzr|…" + refresh_token[-4:]
    expect(step1).to_contain_text("Done")
    expect(step1).to_contain_text(f"Authorised with Amazon for Seller ID {SELLING_PARTNER_ID}")
    expect(step1).to_contain_text(hint)
    expect(step1.get_by_role("button", name="Authorise again with Amazon")).to_be_visible()
    assert refresh_token not in page.content()
    page.screenshot(path=str(tmp_path / "authorised.png"), full_page=True)

    # Stored encrypted on both European channels; nowhere in plain text.
    for channel in (uk, de):
        credential = db.session.scalar(select(Channel).where(Channel.id == channel.id)).credential
        db.session.refresh(credential)
        assert credential.kind == CredentialKind.SPAPI_REFRESH_TOKEN
        assert decrypt_secret(credential.secret_encrypted) == refresh_token
    db.session.refresh(us)
    assert us.status == ChannelStatus.AWAITING_TOKEN and us.credential is None
    assert plaintext_anywhere(refresh_token) == []
    assert plaintext_anywhere(refresh_token[5:]) == []

    # Replaying Amazon's answer is refused, with a clear message; nothing changes.
    assert len(callbacks) == 1
    page.goto(callbacks[0])
    expect(page).to_have_url(f"{channel_url}#step-1")
    expect(page.locator(".flash")).to_contain_text(
        "does not match an authorisation you started here"
    )
    expect(page.get_by_role("heading", level=1)).to_contain_text("Pending verification")
    assert len(spapi.token_requests) == 1

    # A forged state (with a genuine, unused code): refused too.
    query = urlencode(
        {
            "state": f"{uk.id}.forged",
            "selling_partner_id": "A9ATTACKER0000",
            "spapi_oauth_code": spapi.issue_code(),
        }
    )
    page.goto(f"{live_server}/channels/spapi/callback?{query}")
    expect(page).to_have_url(f"{channel_url}#step-1")
    expect(page.locator(".flash")).to_contain_text("Nothing was stored")
    assert len(spapi.token_requests) == 1

    # Denying at Amazon changes nothing either.
    page.get_by_role("button", name="Authorise again with Amazon").click()
    page.get_by_role("button", name="Deny").click()
    expect(page.locator(".flash")).to_have_text(
        "You did not authorise Sellerdesk in Seller Central, so nothing changed."
    )
    db.session.expire_all()
    assert db.session.get(Channel, uk.id).credential.seller_id == SELLING_PARTNER_ID
    assert plaintext_anywhere(refresh_token) == []

    # Revoking from the portal: token deleted, channels disabled.
    page.get_by_role("button", name="Revoke Amazon authorisation").click()
    expect(page.locator(".flash")).to_contain_text("Amazon Germany, Amazon UK are disabled")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Disabled")
    expect(step1.get_by_role("button", name="Authorise with Amazon")).to_be_visible()
    db.session.expire_all()
    assert db.session.get(Channel, uk.id).credential is None
    assert db.session.get(Channel, de.id).status == ChannelStatus.DISABLED
    assert csp_errors == []
    context.close()
