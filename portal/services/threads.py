"""Threads and messages: recording inbound mail (outbound replies arrive with the inbox)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from sqlalchemy import exists, or_, select

from portal.extensions import db
from portal.models import Attachment, Channel, Direction, Mailbox, Message, Thread, ThreadStatus
from portal.sqltypes import utcnow

if TYPE_CHECKING:
    from ingest.parse import ParsedMessage

log = logging.getLogger(__name__)

# Reply/forward prefixes in the languages of Amazon's marketplaces, repeated or counted.
_SUBJECT_PREFIX_RE = re.compile(
    r"^\s*((re|fwd?|aw|wg|tr|rv|sv|vs|antw|odp|r|enc|res|ynt|返信|転送)(\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)


def normalise_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and with folded white space, lower-case."""
    previous = None
    subject = " ".join(subject.split())
    while previous != subject:
        previous = subject
        subject = _SUBJECT_PREFIX_RE.sub("", subject).strip()
    return subject.lower()[:500]


def is_duplicate(
    *,
    mailbox: Mailbox | None,
    uidvalidity: int | None = None,
    uid: int | None = None,
    message_id: str | None = None,
    content_hash: str | None = None,
) -> bool:
    """True when this mail is already stored for this mailbox (same UID, or same id and bytes)."""
    conditions = []
    if uid is not None and uidvalidity is not None:
        conditions.append((Message.uidvalidity == uidvalidity) & (Message.uid == uid))
    if message_id is not None and content_hash is not None:
        conditions.append(
            (Message.message_id == message_id) & (Message.content_hash == content_hash)
        )
    if not conditions:
        return False
    mailbox_id = mailbox.id if mailbox is not None else None
    stmt = select(exists().where(Message.mailbox_id == mailbox_id, or_(*conditions)))
    return bool(db.session.scalar(stmt))


def _new_message(parsed: ParsedMessage, raw: bytes, **fields) -> Message:
    message = Message(
        direction=Direction.IN,
        message_id=parsed.message_id[:998],
        in_reply_to=parsed.in_reply_to[:998] if parsed.in_reply_to else None,
        references=" ".join(parsed.references),
        subject=parsed.subject,
        from_name=parsed.from_name[:200],
        from_address=parsed.from_address[:254],
        to_addresses=", ".join(parsed.to_addresses),
        cc_addresses=", ".join(parsed.cc_addresses),
        order_id=parsed.order_id,
        text_body=parsed.text,
        html_body=parsed.html,
        visible_text=parsed.buyer_text or parsed.visible_text,
        snippet=parsed.snippet[:300],
        content_hash=parsed.content_hash,
        raw=raw,
        size=len(raw),
        is_autoreply=parsed.is_autoreply,
        is_bounce=parsed.is_bounce,
        is_amazon_notification=parsed.is_amazon_notification,
        is_seller_central_copy=parsed.is_seller_central_copy,
        sent_at=parsed.sent_at,
        **fields,
    )
    for att in parsed.attachments:
        message.attachments.append(
            Attachment(
                filename=att.filename,
                content_type=att.content_type[:255],
                size=att.size,
                content_id=att.content_id[:255] if att.content_id else None,
                is_inline=att.is_inline,
                is_skipped=att.is_skipped,
                data=att.data,
            )
        )
    return message


def create_thread(channel: Channel, parsed: ParsedMessage) -> Thread:
    """A new conversation on `channel`, described by its first message."""
    thread = Thread(
        channel=channel,
        organisation_id=channel.organisation_id,
        subject=parsed.subject,
        normalized_subject=normalise_subject(parsed.subject),
        buyer_name=parsed.buyer_name[:200],
        buyer_address=(parsed.relay_alias or parsed.from_address)[:254],
        order_id=parsed.order_id,
        status=ThreadStatus.CLOSED if parsed.is_automatic else ThreadStatus.OPEN,
    )
    db.session.add(thread)
    return thread


def record_inbound_message(
    parsed: ParsedMessage,
    raw: bytes,
    *,
    channel: Channel,
    thread: Thread,
    mailbox: Mailbox | None,
    uidvalidity: int | None,
    uid: int | None,
    delivered_to: str,
) -> Message:
    """Store a routed inbound message in `thread` and update the thread and channel."""
    now = utcnow()
    message = _new_message(
        parsed,
        raw,
        thread=thread,
        channel=channel,
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        uid=uid,
        delivered_to=delivered_to,
    )
    db.session.add(message)
    received = parsed.sent_at if parsed.sent_at and parsed.sent_at < now else now
    if thread.last_message_at is None or received > thread.last_message_at:
        thread.last_message_at = received
    if not parsed.is_automatic:
        # A buyer wrote: the conversation needs an answer, even if it was closed.
        thread.status = ThreadStatus.OPEN
        if thread.awaiting_reply_since is None:
            thread.awaiting_reply_since = received
        if not thread.order_id and parsed.order_id:
            thread.order_id = parsed.order_id
        if not thread.buyer_name and parsed.buyer_name:
            thread.buyer_name = parsed.buyer_name[:200]
    # Any mail arriving at the helpdesk address proves Amazon forwards it to us.
    if channel.first_message_at is None:
        channel.first_message_at = now
        log.info("Forwarding verified for channel %s (%s)", channel.id, channel.helpdesk_address)
    channel.last_message_at = now
    db.session.flush()
    return message


def record_unrouted_message(
    parsed: ParsedMessage,
    raw: bytes,
    *,
    mailbox: Mailbox | None,
    uidvalidity: int | None,
    uid: int | None,
) -> Message:
    """Keep mail that matches no channel, for an admin to assign."""
    message = _new_message(
        parsed, raw, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, delivered_to=""
    )
    db.session.add(message)
    db.session.flush()
    log.info("Unrouted message %s to %s", parsed.message_id, parsed.delivery_addresses[:3])
    return message


def record_quarantined_message(
    raw: bytes,
    reason: str,
    *,
    message_id: str,
    content_hash: str,
    mailbox: Mailbox | None,
    uidvalidity: int | None,
    uid: int | None,
) -> Message:
    """Keep mail the parser could not handle, raw, with the reason."""
    message = Message(
        direction=Direction.IN,
        message_id=message_id,
        content_hash=content_hash,
        raw=raw,
        size=len(raw),
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        uid=uid,
        quarantine_reason=reason[:2000],
        subject="",
    )
    db.session.add(message)
    db.session.flush()
    log.warning("Quarantined message (%d bytes): %s", len(raw), reason)
    return message
