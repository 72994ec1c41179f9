"""The outbox: replies are stored as pending messages first and sent after the commit.

`queue_reply` adds the reply (its exact MIME bytes included) to the caller's
transaction; `retry` and `cancel` are the admin's actions on a reply not yet sent.
None of these commits. Sending, which commits its claims and each attempt's result,
is outbox_delivery.py, whose docstring is the send protocol.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import or_, select, update

from ingest.mail import compose
from ingest.mail.compose import BuiltReply
from portal.extensions import db
from portal.models import (
    Attachment,
    ChannelStatus,
    Direction,
    Message,
    NoResponseMark,
    SendStatus,
    Thread,
    User,
)
from portal.services.audit import record_event
from portal.services.canned import unfilled_message, unfilled_placeholders
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

#: Amazon refuses messages whose attachments total more than this.
MAX_ATTACHMENTS_BYTES = 10 * 1024 * 1024
#: What the admin may still retry or cancel: anything not sent or cancelled.
_UNSENT = (SendStatus.FAILED, SendStatus.PENDING)


class ReplyError(ValueError):
    """A reply that cannot be queued, or an outbox action not allowed; shown to the user."""


# --- queueing --------------------------------------------------------------------------


def _is_buyer_message(message: Message) -> bool:
    return (
        message.direction == Direction.IN
        and not message.is_internal_note
        and message.quarantine_reason is None
        and not (
            message.is_autoreply
            or message.is_bounce
            or message.is_amazon_notification
            or message.is_seller_central_copy
        )
    )


def is_answerable(message: Message, thread: Thread) -> bool:
    """Whether a reply in `thread` may answer `message`: only mail that came in on it.

    An internal note or one of our own replies would give the buyer an In-Reply-To
    naming a message they never saw (a note's id is `…@sellerdesk.invalid`), and the
    note's empty subject for the reply's.
    """
    return (
        message.thread_id == thread.id
        and message.direction == Direction.IN
        and not message.is_internal_note
    )


def answerable_message_ids(thread: Thread) -> set[int]:
    """The ids of the messages a reply in `thread` may answer (is_answerable)."""
    return {m.id for m in thread.messages if is_answerable(m, thread)}


def default_reply_to(thread: Thread) -> Message | None:
    """The message a reply answers: the newest buyer message, else the newest inbound one."""
    inbound = [m for m in thread.messages if is_answerable(m, thread)]
    buyer = [m for m in inbound if _is_buyer_message(m)]
    candidates = buyer or inbound
    return max(candidates, key=lambda m: (m.created_at, m.id)) if candidates else None


def queue_reply(
    thread: Thread,
    *,
    body: str,
    author: User | None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    reply_to: Message | None = None,
    subject: str | None = None,
    now: datetime | None = None,
) -> Message:
    """Add the reply as a pending outbound message (no commit); send it after the commit.

    `attachments` are (filename, content type, bytes). `subject` defaults to `Re: ` +
    the answered message's subject; one given here is checked strictly. Raises
    ReplyError with a message for the agent when the reply cannot go out.
    """
    now = now or utcnow()
    body = _written_body(body)
    _check_can_send(thread, attachments)
    reply_to = _answered_message(thread, reply_to)
    if subject is None:
        subject = _default_subject(thread, reply_to)
    built = _build_mime(
        thread, body=body, subject=subject, reply_to=reply_to, attachments=attachments, now=now
    )
    message = _pending_message(thread, built, body=body, author=author, now=now)
    db.session.add(message)
    _mark_answered(thread, now)
    db.session.flush()
    record_event(
        "thread.reply_queued",
        actor=author,
        organisation_id=thread.organisation_id,
        target=message,
        details={
            "thread_id": thread.id,
            "message_id": built.message_id,
            "attachments": len(built.attachments),
        },
    )
    log.info("Reply %s queued on thread %s", built.message_id, thread.id)
    return message


def _written_body(body: str | None) -> str:
    """The body with LF line ends and no blank lines around it; ReplyError when empty or
    still holding a canned reply's placeholder (one this thread had no value for)."""
    body = (body or "").replace("\r\n", "\n").strip("\n")
    if not body.strip():
        raise ReplyError("Write a reply before sending.")
    unfilled = unfilled_placeholders(body)
    if unfilled:
        raise ReplyError(unfilled_message(unfilled))
    return body


def _check_can_send(thread: Thread, attachments: Sequence[tuple[str, str, bytes]]) -> None:
    """ReplyError unless the channel sends, the buyer has an address and Amazon takes
    the attachments."""
    channel = thread.channel
    if channel.status == ChannelStatus.DISABLED:
        raise ReplyError(
            f"The {channel.marketplace} channel is disabled; replies cannot be sent from it."
        )
    if not thread.buyer_address:
        raise ReplyError("This conversation has no buyer address to reply to.")
    total = sum(len(data) for _, _, data in attachments)
    if total > MAX_ATTACHMENTS_BYTES:
        raise ReplyError(
            f"Attachments total {total / 1024 / 1024:.1f} MB; Amazon accepts at most "
            f"{MAX_ATTACHMENTS_BYTES // 1024 // 1024} MB per message."
        )


def _answered_message(thread: Thread, chosen: Message | None) -> Message | None:
    """The message the reply answers: the agent's choice if answerable, else the default."""
    if chosen is None:
        return default_reply_to(thread)
    if chosen.thread_id != thread.id:
        raise ReplyError("The message answered is not part of this conversation.")
    if not is_answerable(chosen, thread):
        raise ReplyError(
            "Only a message from the buyer can be answered, not a note or one of our replies."
        )
    return chosen


def _default_subject(thread: Thread, reply_to: Message | None) -> str:
    # Stored subjects come from buyers' mail: fold them rather than refuse to answer.
    return compose.reply_subject(
        compose.clean_subject(reply_to.subject if reply_to else thread.subject)
    )


def _build_mime(
    thread: Thread,
    *,
    body: str,
    subject: str,
    reply_to: Message | None,
    attachments: Sequence[tuple[str, str, bytes]],
    now: datetime,
) -> BuiltReply:
    """The reply's MIME from the channel to the buyer, threaded under `reply_to`."""
    channel = thread.channel
    answered_id = reply_to.message_id if reply_to else None
    try:
        return compose.build_reply(
            from_address=channel.helpdesk_address,
            to_address=thread.buyer_address,
            from_name=channel.organisation.name,
            subject=subject,
            body=body,
            in_reply_to=answered_id,
            references=compose.build_references(
                reply_to.references if reply_to else "", answered_id
            ),
            attachments=attachments,
            now=now,
        )
    except compose.MailError as exc:
        raise ReplyError(str(exc)) from None


def _pending_message(
    thread: Thread, built: BuiltReply, *, body: str, author: User | None, now: datetime
) -> Message:
    """The outbound row, due at once, holding the exact bytes every attempt sends."""
    channel = thread.channel
    return Message(
        direction=Direction.OUT,
        thread=thread,
        channel=channel,
        message_id=built.message_id,
        in_reply_to=built.in_reply_to,
        references=" ".join(built.references),
        subject=built.subject,
        from_name=channel.organisation.name[:200],
        from_address=built.from_address,
        to_addresses=built.to_address,
        order_id=thread.order_id,
        text_body=body,
        visible_text=body,
        snippet=" ".join(body.split())[:300],
        content_hash=hashlib.sha256(built.raw.replace(b"\r\n", b"\n")).hexdigest(),
        raw=built.raw,
        size=len(built.raw),
        author_id=author.id if author is not None else None,
        send_status=SendStatus.PENDING,
        send_attempts=0,
        next_attempt_at=now,
        created_at=now,
        attachments=[
            Attachment(filename=filename, content_type=content_type, size=len(data), data=data)
            for filename, content_type, data in built.attachments
        ],
    )


def _mark_answered(thread: Thread, now: datetime) -> None:
    # Answered: Amazon's 24-hour clock stops with our reply (even while it is queued).
    thread.awaiting_reply_since = None
    if thread.last_message_at is None or now > thread.last_message_at:
        thread.last_message_at = now


def unanswered_buyer_messages(thread: Thread) -> list[Message]:
    """Buyer messages that no sent or still pending reply came after, less those marked
    "no response needed": what the buyer's clock runs for."""
    answered_at = max(
        (
            m.created_at
            for m in thread.messages
            if m.direction == Direction.OUT
            and not m.is_internal_note
            and m.send_status in (SendStatus.SENT, SendStatus.PENDING, None)
        ),
        default=None,
    )
    marked = set(
        db.session.scalars(
            select(NoResponseMark.message_id).where(NoResponseMark.thread_id == thread.id)
        )
    )
    return [
        m
        for m in thread.messages
        if _is_buyer_message(m)
        and (answered_at is None or m.created_at > answered_at)
        and m.id not in marked
    ]


def restore_awaiting_reply(thread: Thread) -> None:
    """After a reply is cancelled or refused: the buyer's clock runs again from the
    oldest buyer message still unanswered."""
    waiting = [
        min(m.sent_at or m.created_at, m.created_at) for m in unanswered_buyer_messages(thread)
    ]
    thread.awaiting_reply_since = min(waiting) if waiting else None


# --- the admin's outbox ------------------------------------------------------------------


def list_outbox(
    *, statuses: Sequence[SendStatus] = (SendStatus.PENDING, SendStatus.FAILED), limit: int = 200
) -> list[Message]:
    """Outbound replies in `statuses`, oldest first (what is stuck shows at the top)."""
    return list(
        db.session.scalars(
            select(Message)
            .where(
                Message.direction == Direction.OUT,
                Message.is_internal_note.is_(False),
                Message.send_status.in_(list(statuses)),
            )
            .order_by(Message.created_at, Message.id)
            .limit(limit)
        )
    )


def describe_status(message: Message) -> str:
    """How a reply's delivery stands, in words for the thread view and the outbox page."""
    status = message.send_status
    if status == SendStatus.PENDING:
        if message.last_send_error:
            return f"queued, retrying ({message.last_send_error})"
        return "sending"
    if status == SendStatus.FAILED:
        return f"failed: {message.last_send_error or 'refused'}"
    if status == SendStatus.SENT:
        return "sent"
    if status == SendStatus.CANCELLED:
        return "cancelled"
    return ""


def retry(message: Message, actor: User | None, *, now: datetime | None = None) -> Message:
    """Send a failed (or backing-off) reply again at the next worker pass (no commit)."""
    now = now or utcnow()
    previous = _update_unsent(
        message,
        now=now,
        action="retried",
        values={"send_status": SendStatus.PENDING, "next_attempt_at": now},
        busy="This reply is being sent right now; look again in a minute.",
    )
    if message.thread is not None and previous == SendStatus.FAILED:
        message.thread.awaiting_reply_since = None
    _record_action("thread.reply_retried", message, actor=actor, previous=previous)
    return message


def cancel(message: Message, actor: User | None, *, now: datetime | None = None) -> Message:
    """Never send this reply (no commit); refused while a sender holds it."""
    previous = _update_unsent(
        message,
        now=now or utcnow(),
        action="cancelled",
        values={"send_status": SendStatus.CANCELLED, "next_attempt_at": None},
        busy="This reply is being sent right now and can no longer be cancelled.",
    )
    if message.thread is not None:
        restore_awaiting_reply(message.thread)
    _record_action("thread.reply_cancelled", message, actor=actor, previous=previous)
    return message


def reopen_after_failure(message: Message, kind: str, reason: str) -> None:
    """A reply that failed for good (refused, bounced) answers nobody: the buyer's clock
    runs again, and the failure is audited with its reason."""
    if message.thread is not None:
        restore_awaiting_reply(message.thread)
    record_event(
        kind,
        actor=None,
        organisation_id=message.thread.organisation_id if message.thread else None,
        target=message,
        details={"message_id": message.message_id, "reason": reason[:500]},
    )


def bounced_replies(cited: Collection[tuple[int, str]]) -> dict[tuple[int, str], list[Message]]:
    """Our sent replies among `cited` (channel id, Message-ID) pairs, which bounces cite:
    one query for a whole batch of bounces, keyed by the pair, oldest reply first."""
    wanted = set(cited)
    if not wanted:
        return {}
    rows = db.session.scalars(
        select(Message)
        .where(
            Message.channel_id.in_(sorted({channel_id for channel_id, _ in wanted})),
            Message.direction == Direction.OUT,
            Message.is_internal_note.is_(False),
            Message.message_id.in_(sorted({message_id for _, message_id in wanted})),
        )
        .order_by(Message.id)
    )
    found: dict[tuple[int, str], list[Message]] = {}
    for message in rows:
        key = (message.channel_id, message.message_id)
        # The two IN lists match a few pairs that are not asked for; keep the asked ones.
        if key in wanted:
            found.setdefault(key, []).append(message)
    return found


def mark_bounced(message: Message, reason: str) -> bool:
    """A sent reply came back undeliverable (no commit): it failed after all, with the
    bounce's reason, and no longer answers the buyer, whose clock runs again. False
    (nothing changed) unless it was sent: a bounce for a reply already failed, or
    cancelled, says nothing new."""
    if message.send_status != SendStatus.SENT:
        return False
    message.send_status = SendStatus.FAILED
    message.last_send_error = f"bounced: {reason}"[:2000]
    message.next_attempt_at = None
    reopen_after_failure(message, "thread.reply_bounced", reason)
    log.warning("Reply %s bounced: %s", message.message_id, reason)
    return True


def _update_unsent(
    message: Message, *, now: datetime, action: str, values: dict[str, object], busy: str
) -> SendStatus:
    """Set `values` on a failed or pending reply; its status before. ReplyError (saying
    it cannot be `action`, or `busy`) for any other reply, or one a sender holds."""
    if message.direction != Direction.OUT or message.send_status not in _UNSENT:
        raise ReplyError(f"Only a failed or pending reply can be {action}.")
    previous = message.send_status
    # Conditional, like a claim: a reply being sent right now is left to its sender.
    result = db.session.execute(
        update(Message)
        .where(
            Message.id == message.id,
            Message.send_status.in_(_UNSENT),
            or_(Message.send_claimed_until.is_(None), Message.send_claimed_until <= now),
        )
        .values(send_claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ReplyError(busy)
    db.session.refresh(message)
    return previous


def _record_action(
    kind: str, message: Message, *, actor: User | None, previous: SendStatus
) -> None:
    record_event(
        kind,
        actor=actor,
        organisation_id=message.thread.organisation_id if message.thread else None,
        target=message,
        details={"message_id": message.message_id, "was": previous.value},
    )
