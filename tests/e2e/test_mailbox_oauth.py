"""'Connect Microsoft 365' in a real Chromium: the button, the stand-in's consent (it
redirects back at once), the flash on the mailboxes page; then the worker's poll signs in
to the OAuth Dovecot with XOAUTH2."""

from __future__ import annotations

import itertools
import os

import pytest
from imapclient import IMAPClient
from playwright.sync_api import Browser, expect

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Role
from portal.services import mailbox_config
from tests.helpers import logged_in_page
from tests.mailgen import amazon_message

pytestmark = [pytest.mark.browser, pytest.mark.oauth, pytest.mark.imap]

_users = itertools.count(1)


def test_admin_connects_a_mailbox_in_the_browser(
    browser: Browser, live_server: str, app, oauth, oauth_dovecot, uk, make_user
) -> None:
    app.config["PUBLIC_URL"] = live_server  # the redirect URI the provider sends back to
    user = f"browser{next(_users)}-{os.getpid()}@example.com"
    oauth_dovecot.add_user(user, "imap-pass")
    client = IMAPClient("127.0.0.1", port=oauth_dovecot.port, ssl=False, timeout=30)
    try:
        client.login(user, "imap-pass")
        client.append("INBOX", amazon_message(1, uk.helpdesk_address))
    finally:
        client.logout()
    mailbox = mailbox_config.create_mailbox(
        actor=None,
        name="Shop mailbox",
        settings=mailbox_config.imap_settings(
            host="127.0.0.1",
            port=oauth_dovecot.port,
            security="plain",
            username=user,
            folder="INBOX",
            processed_folder=None,
        ),
        password="not-the-password",
    )
    db.session.commit()
    admin = make_user(Role.ADMIN)

    page, errors = logged_in_page(browser, live_server, admin.email, "/admin/mailboxes")
    row = page.locator(f"#mailbox-{mailbox.id}")
    row.get_by_role("button", name="Connect Microsoft 365").click()
    expect(page).to_have_url(f"{live_server}/admin/mailboxes#mailbox-{mailbox.id}")
    expect(page.locator(".flash")).to_contain_text("“Shop mailbox” is connected with Microsoft 365")
    expect(row).to_contain_text("Signs in with Microsoft 365 (OAuth, XOAUTH2).")
    assert errors == []

    assert poll_all().stored == 1
    db.session.refresh(mailbox)
    assert mailbox.last_error is None
