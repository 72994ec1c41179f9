"""Which SMTP sends a channel's replies: its sending mailbox's (with XOAUTH2 where that
mailbox is connected with OAuth), else SMTP_URL.

A mailbox at Microsoft 365 or Google sends only as addresses its account may send as:
the channel's helpdesk address needs Send-As rights (Microsoft 365) or a verified 'Send
mail as' address (Google) on that account (docs/operations.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sqlalchemy import delete, select

from ingest.mail import smtp
from ingest.mail.compose import MailError
from portal.crypto import decrypt_secret
from portal.extensions import db
from portal.models import Channel, Mailbox, SendingMailbox, User
from portal.services.audit import record_event
from portal.services.mailbox_config import public_settings
from portal.services.mailbox_tokens import access_token
from portal.services.mailboxes import MailSourceError, is_connected

log = logging.getLogger(__name__)


class SendingConfigError(ValueError):
    """An SMTP URL or choice of channels that cannot be used; the message says why."""


def clean_smtp_url(url: str) -> str | None:
    """`url` checked and without a password (the mailbox's own is used); None when empty."""
    url = (url or "").strip()
    if not url:
        return None
    if url.startswith("outbox:"):
        raise SendingConfigError(
            "A mailbox sends through SMTP: smtp://, smtp+starttls:// or smtps://."
        )
    try:
        smtp.parse_smtp_url(url)
    except MailError as exc:
        raise SendingConfigError(str(exc).replace("SMTP_URL", "The SMTP URL")) from None
    parts = urlsplit(url)
    # Re-quoted from its plain form, so cleaning a cleaned URL changes nothing.
    user = f"{quote(unquote(parts.username), safe='')}@" if parts.username else ""
    host = parts.hostname or ""
    netloc = f"{user}{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, "", parts.query, ""))


def sending_channels(mailbox: Mailbox) -> list[Channel]:
    """The channels whose replies `mailbox` sends."""
    return list(
        db.session.scalars(
            select(Channel)
            .join(SendingMailbox, SendingMailbox.channel_id == Channel.id)
            .where(SendingMailbox.mailbox_id == mailbox.id)
            .order_by(Channel.id)
        )
    )


def set_sending(
    mailbox: Mailbox, *, smtp_url: str | None, channels: list[Channel], actor: User | None
) -> bool:
    """Make `mailbox` send the replies of exactly `channels` through `smtp_url` (audited,
    no commit); a channel another mailbox sent for moves here. False when unchanged."""
    url = clean_smtp_url(smtp_url or "")
    if channels and url is None:
        raise SendingConfigError("Give the SMTP URL the mailbox sends through.")
    before = (mailbox.smtp_url, [c.id for c in sending_channels(mailbox)])
    wanted = sorted({c.id for c in channels})
    if before == (url, wanted):
        return False
    mailbox.smtp_url = url
    db.session.execute(delete(SendingMailbox).where(SendingMailbox.mailbox_id == mailbox.id))
    if wanted:
        db.session.execute(delete(SendingMailbox).where(SendingMailbox.channel_id.in_(wanted)))
    for channel_id in wanted:
        db.session.add(SendingMailbox(channel_id=channel_id, mailbox_id=mailbox.id))
    db.session.flush()
    record_event(
        "mailbox.sending_changed",
        actor=actor,
        target=mailbox,
        details={"name": mailbox.name, "smtp_url": url, "channels": wanted},
    )
    return True


def transport_for(
    channel_id: int | None, config: Mapping[str, Any], *, now: datetime
) -> smtp.Transport:
    """The SMTP a reply of `channel_id` goes through (None, system mail: SMTP_URL).

    For a connected mailbox this may refresh its access token, which commits: call it
    outside any transaction of the caller's (the outbox's sender does).
    """
    mailbox = None
    if channel_id is not None:
        mailbox = db.session.scalar(
            select(Mailbox)
            .join(SendingMailbox, SendingMailbox.mailbox_id == Mailbox.id)
            .where(SendingMailbox.channel_id == channel_id)
        )
    if mailbox is None or not mailbox.smtp_url:
        return smtp.parse_smtp_url(config["SMTP_URL"])
    transport = smtp.parse_smtp_url(mailbox.smtp_url)
    username = transport.username
    if not username:
        try:
            username = public_settings(mailbox).username
        except MailSourceError:
            username = ""
    if is_connected(mailbox):
        return replace(
            transport, username=username, oauth_token=access_token(mailbox, config, now=now)
        )
    password = decrypt_secret(mailbox.password_encrypted) if mailbox.password_encrypted else ""
    return replace(transport, username=username, password=password)
