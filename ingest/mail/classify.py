"""Which mail is automatic and must never open a conversation or get mail of ours in
answer: auto-replies, bounces, Amazon's notifications and copies of replies sent from
Seller Central. Pure: no database, no Flask, no network.
"""

from __future__ import annotations

import re

from ingest.mail.parts import MailParts

_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_SELLER_CENTRAL_COPY_RE = re.compile(r"^donotreply@amazon\.[a-z.]+$")


def is_autoreply(mail: MailParts) -> bool:
    """An automatic answer (Auto-Submitted, RFC 3834, or the headers mail software set
    before and beside it), or bulk and list mail."""
    auto_submitted = mail.header("Auto-Submitted").lower()
    precedence = mail.header("Precedence").lower()
    return bool(
        (auto_submitted and not auto_submitted.startswith("no"))
        or mail.header("X-Autoreply")
        or mail.header("X-Autorespond")
        or mail.header("X-Auto-Response-Suppress")
        or precedence in _BULK_PRECEDENCE
    )


def is_bounce(mail: MailParts, from_address: str) -> bool:
    """A delivery status notification, or mail from a mailer daemon or with an empty
    Return-Path (what bounces are sent with)."""
    sender_local = from_address.split("@")[0]
    empty_return_path = "return-path" in mail.headers and mail.header("Return-Path") in ("<>", "")
    return mail.is_dsn or sender_local in ("mailer-daemon", "postmaster") or empty_return_path


def is_amazon_notification(mail: MailParts) -> bool:
    """One of Amazon's automated notices, which its relay marks as such."""
    return mail.header("X-AMAZON-MAIL-RELAY-TYPE").lower() == "notification"


def is_seller_central_copy(from_address: str) -> bool:
    """Amazon's copy of a reply the seller sent from Seller Central."""
    return bool(_SELLER_CENTRAL_COPY_RE.match(from_address))
