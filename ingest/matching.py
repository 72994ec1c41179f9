"""Which existing thread of a channel an inbound message belongs to."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from ingest.parse import ParsedMessage
from portal.extensions import db
from portal.models import Channel, Message, Thread
from portal.services.threads import normalise_subject

#: How long a buyer's pre-sale question, or a subject, keeps a conversation going.
MATCH_WINDOW = timedelta(days=30)


def find_thread(channel: Channel, parsed: ParsedMessage, *, now: datetime) -> Thread | None:
    """The thread of `channel` this message continues, or None for a new conversation.

    Order: In-Reply-To/References against stored messages (ours included); the
    Amazon key (buyer relay alias + order ID; alias alone for pre-sale questions);
    then the normalised subject from the same sender. Never another channel's thread.
    """
    referenced = [r for r in [parsed.in_reply_to, *reversed(parsed.references)] if r]
    if referenced:
        thread_id = db.session.scalar(
            select(Message.thread_id)
            .where(
                Message.channel_id == channel.id,
                Message.message_id.in_(referenced),
                Message.thread_id.is_not(None),
            )
            .order_by(Message.id.desc())
            .limit(1)
        )
        if thread_id is not None:
            return db.session.get(Thread, thread_id)

    recent = select(Thread).where(Thread.channel_id == channel.id)
    if parsed.relay_alias:
        by_alias = recent.where(Thread.buyer_address == parsed.relay_alias)
        if parsed.order_id:
            thread = db.session.scalar(
                by_alias.where(Thread.order_id == parsed.order_id)
                .order_by(Thread.last_message_at.desc())
                .limit(1)
            )
            if thread is not None:
                return thread
        else:
            thread = db.session.scalar(
                by_alias.where(
                    Thread.order_id.is_(None), Thread.last_message_at >= now - MATCH_WINDOW
                )
                .order_by(Thread.last_message_at.desc())
                .limit(1)
            )
            if thread is not None:
                return thread

    subject = normalise_subject(parsed.subject)
    sender = parsed.relay_alias or parsed.from_address
    if subject and sender:
        stmt = recent.where(
            Thread.normalized_subject == subject,
            Thread.buyer_address == sender,
            Thread.last_message_at >= now - MATCH_WINDOW,
        )
        if parsed.order_id:
            # A different order is a different conversation, whatever the subject.
            stmt = stmt.where((Thread.order_id.is_(None)) | (Thread.order_id == parsed.order_id))
        return db.session.scalar(stmt.order_by(Thread.last_message_at.desc()).limit(1))
    return None
