"""The admin's decisions on waiting mail (services/admin_mail.py), without the pages;
tests/portal/test_admin_mail.py drives the same actions through the admin console."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Direction, Mailbox
from portal.services import admin_mail
from tests.helpers import stored_messages


def test_retry_is_refused_for_mail_that_is_not_quarantined(app, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    (message,) = stored_messages()  # no channel takes it: unrouted
    with pytest.raises(admin_mail.MailActionError):
        admin_mail.retry_parsing(
            message, actor=None, inbound_domain="helpdesk.test", max_attachment_bytes=10**6
        )
    assert db.session.scalar(select(Mailbox.name)) == "default"
    assert message.direction == Direction.IN
