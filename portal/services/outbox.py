"""The outbox: replies are stored as pending messages first and sent after the commit.

`queue_reply` adds the reply (its exact MIME bytes included) to the caller's
transaction. Once that is committed, the web request tries `deliver_one` right
away and the worker's `deliver_pending` retries whatever is still pending, with
exponential backoff, until the SMTP server accepts or refuses it for good.

Exactly one sender per message: a sender first *claims* the message with one
conditional UPDATE (pending, due, and no unexpired claim) that sets
`send_claimed_until`, and commits it, before talking SMTP. The UPDATE is atomic
on SQLite (writers are serialised) and on PostgreSQL (a concurrent UPDATE of the
same row waits, then re-checks the condition and finds the claim), so two workers,
or the web request and a worker, never both send it. A sender that dies holding a
claim only delays the message until the claim expires (CLAIM_TTL).

The window that remains: the SMTP server accepted the message (250 after DATA),
and the process died, or the database went away, before the "sent" mark was
committed; or the server's 250 was lost on the wire. The claim then expires and
the message is sent a second time. The copy is byte-for-byte the same (the stored
`raw`), with the same Message-ID, so it is recognisable as a duplicate: Amazon and
mail clients collapse mail with a Message-ID they already have, an outbox: folder
overwrites the same file, and anyone comparing can match it to the one stored row.
Closing it fully would need the server to de-duplicate for us; SMTP has no such verb.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum

from flask import current_app
from sqlalchemy import or_, select, update

from ingest.mail import compose, smtp
from portal.extensions import db
from portal.models import (
    Attachment,
    ChannelStatus,
    Direction,
    Message,
    SendStatus,
    Thread,
    User,
)
from portal.services.audit import record_event
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

#: Amazon refuses messages whose attachments total more than this.
MAX_ATTACHMENTS_BYTES = 10 * 1024 * 1024
#: How long a claim holds: well above one SMTP conversation (each network step
#: times out after SMTP_TIMEOUT), short enough that a crashed sender delays little.
CLAIM_TTL = timedelta(minutes=5)
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
#: The web request's attempt must not keep the agent waiting; the worker retries.
WEB_SEND_TIMEOUT = 10.0
DEFAULT_SEND_TIMEOUT = 30.0


class ReplyError(ValueError):
    """A reply that cannot be queued, or an outbox action not allowed; shown to the user."""


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    RETRYING = "retrying"
    SKIPPED = "skipped"  # someone else holds it, or it is no longer pending or due


@dataclass
class OutboxSummary:
    sent: int = 0
    failed: int = 0
    retrying: int = 0

    def count(self, outcome: Outcome) -> None:
        if outcome != Outcome.SKIPPED:
            setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def line(self) -> str:
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


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
    body = (body or "").replace("\r\n", "\n").strip("\n")
    if not body.strip():
        raise ReplyError("Write a reply before sending.")
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
    if reply_to is None:
        reply_to = default_reply_to(thread)
    elif reply_to.thread_id != thread.id:
        raise ReplyError("The message answered is not part of this conversation.")
    elif not is_answerable(reply_to, thread):
        raise ReplyError(
            "Only a message from the buyer can be answered, not a note or one of our replies."
        )
    if subject is None:
        # Stored subjects come from buyers' mail: fold them rather than refuse to answer.
        subject = compose.reply_subject(
            compose.clean_subject(reply_to.subject if reply_to else thread.subject)
        )
    try:
        built = compose.build_reply(
            from_address=channel.helpdesk_address,
            to_address=thread.buyer_address,
            from_name=channel.organisation.name,
            subject=subject,
            body=body,
            in_reply_to=reply_to.message_id if reply_to else None,
            references=compose.build_references(
                reply_to.references if reply_to else "", reply_to.message_id if reply_to else None
            ),
            attachments=attachments,
            now=now,
        )
    except compose.MailError as exc:
        raise ReplyError(str(exc)) from None

    message = Message(
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
    )
    for filename, content_type, data in built.attachments:
        message.attachments.append(
            Attachment(filename=filename, content_type=content_type, size=len(data), data=data)
        )
    db.session.add(message)
    # Answered: Amazon's 24-hour clock stops with our reply (even while it is queued).
    thread.awaiting_reply_since = None
    if thread.last_message_at is None or now > thread.last_message_at:
        thread.last_message_at = now
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


def _restore_awaiting_reply(thread: Thread) -> None:
    """After a reply is cancelled or refused: the buyer's clock runs again from the
    oldest buyer message that no sent or still pending reply came after."""
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
    waiting = [
        min(m.sent_at or m.created_at, m.created_at)
        for m in thread.messages
        if _is_buyer_message(m) and (answered_at is None or m.created_at > answered_at)
    ]
    thread.awaiting_reply_since = min(waiting) if waiting else None


# --- sending ---------------------------------------------------------------------------


def _claim(message_pk: int, now: datetime) -> datetime | None:
    """Claim the message for this sender (committed); its claim time, or None if taken."""
    claimed_until = now + CLAIM_TTL
    result = db.session.execute(
        update(Message)
        .where(
            Message.id == message_pk,
            Message.direction == Direction.OUT,
            Message.send_status == SendStatus.PENDING,
            or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now),
            or_(Message.send_claimed_until.is_(None), Message.send_claimed_until <= now),
        )
        .values(send_claimed_until=claimed_until, send_attempts=Message.send_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return claimed_until if result.rowcount == 1 else None


def _release(message_pk: int, claimed_until: datetime, **values: object) -> bool:
    """Record the attempt's result if the claim is still ours (committed)."""
    result = db.session.execute(
        update(Message)
        .where(Message.id == message_pk, Message.send_claimed_until == claimed_until)
        .values(send_claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def retry_delay(attempts: int) -> timedelta:
    """Wait before attempt `attempts + 1`: 30 s, 1 min, 2 min, … at most an hour."""
    return min(RETRY_BASE * (2 ** min(max(attempts - 1, 0), 12)), RETRY_MAX)


def _deliver(message_pk: int, *, now: datetime | None, timeout: float) -> Outcome:
    claimed_at = now or utcnow()
    claimed_until = _claim(message_pk, claimed_at)
    if claimed_until is None:
        return Outcome.SKIPPED
    message = db.session.get(Message, message_pk)
    assert message is not None  # noqa: S101 (type narrowing: the claim just matched it)
    raw, sender, recipients = message.raw or b"", message.from_address, [message.to_addresses]
    message_id, attempts = message.message_id, message.send_attempts
    # End the read transaction: nothing may hold a database lock during the SMTP talk.
    db.session.commit()
    try:
        transport = smtp.parse_smtp_url(current_app.config["SMTP_URL"])
        note = smtp.send_raw(
            transport,
            sender=sender,
            recipients=recipients,
            raw=raw,
            message_id=message_id,
            timeout=timeout,
        )
    except smtp.PermanentSendError as exc:
        return _record_refusal(message_pk, claimed_until, exc.reason)
    except Exception as exc:  # temporary, a bad SMTP_URL, or a bug: keep it and retry
        if isinstance(exc, smtp.TemporarySendError):
            reason = exc.reason
        elif isinstance(exc, compose.MailError):
            reason = f"SMTP_URL: {exc}"
        else:
            log.exception("Unexpected error sending reply %s", message_id)
            reason = f"{type(exc).__name__}: {exc}"
        next_at = (now or utcnow()) + retry_delay(attempts)
        _release(message_pk, claimed_until, last_send_error=reason[:2000], next_attempt_at=next_at)
        log.warning(
            "Reply %s not sent (attempt %d, next at %s): %s", message_id, attempts, next_at, reason
        )
        return Outcome.RETRYING
    sent_at = now or utcnow()
    # The mail is out: mark it sent whether or not our claim ran out meanwhile.
    db.session.execute(
        update(Message)
        .where(Message.id == message_pk)
        .values(
            send_status=SendStatus.SENT,
            sent_at=sent_at,
            send_claimed_until=None,
            next_attempt_at=None,
            last_send_error=None,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    log.info("Reply %s sent (%s)", message_id, note)
    return Outcome.SENT


def _record_refusal(message_pk: int, claimed_until: datetime, reason: str) -> Outcome:
    if not _release(
        message_pk,
        claimed_until,
        send_status=SendStatus.FAILED,
        last_send_error=reason[:2000],
        next_attempt_at=None,
    ):
        return Outcome.SKIPPED
    message = db.session.get(Message, message_pk)
    assert message is not None  # noqa: S101 (type narrowing: the update just matched it)
    db.session.refresh(message)
    if message.thread is not None:
        _restore_awaiting_reply(message.thread)
    record_event(
        "thread.reply_failed",
        actor=None,
        organisation_id=message.thread.organisation_id if message.thread else None,
        target=message,
        details={"message_id": message.message_id, "reason": reason[:500]},
    )
    db.session.commit()
    log.warning("Reply %s refused by the SMTP server: %s", message.message_id, reason)
    return Outcome.FAILED


def deliver_one(
    message_id: int, *, timeout: float = WEB_SEND_TIMEOUT, now: datetime | None = None
) -> bool:
    """Try to send one queued reply now (by its database id); True when it went out.

    For the web request right after its commit: never raises, a failure leaves the
    reply pending for the worker. Commits its own small transactions.
    """
    try:
        return _deliver(message_id, now=now, timeout=timeout) == Outcome.SENT
    except Exception:
        db.session.rollback()
        log.exception("Sending reply %s right away failed; the worker will retry", message_id)
        return False


def deliver_pending(
    *, limit: int = 50, now: datetime | None = None, timeout: float | None = None
) -> OutboxSummary:
    """One worker pass: send every due pending reply (up to `limit`), oldest first."""
    if timeout is None:
        timeout = float(current_app.config.get("SMTP_TIMEOUT", DEFAULT_SEND_TIMEOUT))
    due_at = now or utcnow()
    pks = db.session.scalars(
        select(Message.id)
        .where(
            Message.direction == Direction.OUT,
            Message.send_status == SendStatus.PENDING,
            or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= due_at),
            or_(Message.send_claimed_until.is_(None), Message.send_claimed_until <= due_at),
        )
        .order_by(Message.next_attempt_at, Message.id)
        .limit(limit)
    ).all()
    db.session.commit()
    summary = OutboxSummary()
    for pk in pks:
        try:
            summary.count(_deliver(pk, now=now, timeout=timeout))
        except Exception:  # one broken row must not stop the others
            db.session.rollback()
            log.exception("Delivering reply %s failed", pk)
            summary.retrying += 1
    return summary


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
    if message.direction != Direction.OUT or message.send_status not in (
        SendStatus.FAILED,
        SendStatus.PENDING,
    ):
        raise ReplyError("Only a failed or pending reply can be retried.")
    now = now or utcnow()
    previous = message.send_status
    # Conditional, like a claim: a reply being sent right now is left to its sender.
    result = db.session.execute(
        update(Message)
        .where(
            Message.id == message.id,
            Message.send_status.in_([SendStatus.FAILED, SendStatus.PENDING]),
            or_(Message.send_claimed_until.is_(None), Message.send_claimed_until <= now),
        )
        .values(send_status=SendStatus.PENDING, next_attempt_at=now, send_claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ReplyError("This reply is being sent right now; look again in a minute.")
    db.session.refresh(message)
    if message.thread is not None and previous == SendStatus.FAILED:
        message.thread.awaiting_reply_since = None
    record_event(
        "thread.reply_retried",
        actor=actor,
        organisation_id=message.thread.organisation_id if message.thread else None,
        target=message,
        details={"message_id": message.message_id, "was": previous.value},
    )
    return message


def cancel(message: Message, actor: User | None, *, now: datetime | None = None) -> Message:
    """Never send this reply (no commit); refused while a sender holds it."""
    if message.direction != Direction.OUT or message.send_status not in (
        SendStatus.FAILED,
        SendStatus.PENDING,
    ):
        raise ReplyError("Only a failed or pending reply can be cancelled.")
    now = now or utcnow()
    previous = message.send_status
    result = db.session.execute(
        update(Message)
        .where(
            Message.id == message.id,
            Message.send_status.in_([SendStatus.FAILED, SendStatus.PENDING]),
            or_(Message.send_claimed_until.is_(None), Message.send_claimed_until <= now),
        )
        .values(send_status=SendStatus.CANCELLED, next_attempt_at=None, send_claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ReplyError("This reply is being sent right now and can no longer be cancelled.")
    db.session.refresh(message)
    if message.thread is not None:
        _restore_awaiting_reply(message.thread)
    record_event(
        "thread.reply_cancelled",
        actor=actor,
        organisation_id=message.thread.organisation_id if message.thread else None,
        target=message,
        details={"message_id": message.message_id, "was": previous.value},
    )
    return message
