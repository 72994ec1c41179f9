"""Passkeys in a real Chromium, with the browser's own virtual authenticator (the
DevTools WebAuthn domain) standing in for a phone or laptop: a seller adds a passkey on
/account/passkeys, then signs in with it alone. WebAuthn refuses IP addresses, so the
portal is served as http://localhost here."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Browser, expect
from werkzeug.serving import make_server

from portal.extensions import db
from portal.models import Role
from portal.services import passkeys
from tests.helpers import browser_log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def localhost_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://localhost:{server.server_port}"
    app.config["PUBLIC_URL"] = base
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_a_passkey_made_in_chromium_signs_in_without_a_password(
    browser: Browser, localhost_server: str, make_user
) -> None:
    base = localhost_server
    seller = make_user(Role.SELLER)
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    devtools = context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    browser_log_in(page, base, seller.email)
    page.goto(f"{base}/account/passkeys")
    page.get_by_label("Name").fill("Chromium")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Passkey “Chromium” added")).to_be_visible()
    db.session.expire_all()
    (stored,) = passkeys.list_passkeys(seller)
    assert stored.name == "Chromium"

    page.get_by_role("button", name="Log out").click()
    page.goto(f"{base}/login")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(f"{base}/dashboard")
    db.session.expire_all()
    assert passkeys.list_passkeys(seller)[0].last_used_at is not None
    assert errors == []
