"""Mailbox settings and the connection test (services/mailbox_config.py), without the pages;
tests/portal/test_admin_mailboxes.py runs the connection test from the admin console too."""

from __future__ import annotations

import pytest

from portal.crypto import encrypt_secret
from portal.extensions import db
from portal.models import Mailbox
from portal.services import mailbox_config


@pytest.mark.parametrize(
    ("host", "username", "security"),
    [("", "u", "tls"), ("imap example.com", "u", "tls"), ("h", " ", "tls"), ("h", "u", "ssl")],
)
def test_the_service_refuses_incomplete_imap_settings(app, host, username, security):
    with pytest.raises(mailbox_config.MailboxConfigError):
        mailbox_config.imap_settings(
            host=host,
            port=None,
            security=security,
            username=username,
            folder="",
            processed_folder=None,
        )


def test_connection_test_reports_an_unreadable_password(app):
    mailbox = Mailbox(
        name="bad key",
        source_url="imap://u@127.0.0.1:1/INBOX",
        password_encrypted=encrypt_secret("x", key="ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTEyMzQ="),
        last_uid=0,
    )
    db.session.add(mailbox)
    db.session.commit()
    check = mailbox_config.check_connection(mailbox)
    assert not check.ok
    assert "TOKEN_KEY" in check.message
