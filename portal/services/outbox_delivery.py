"""Sending the outbox's replies: claims and the result of each attempt. These functions commit.

`outbox.queue_reply` adds a reply (its exact MIME bytes included) to the caller's
transaction. Once that is committed, the web request tries `deliver_one` right
away and the worker's `deliver_pending` retries whatever is still pending, with
exponential backoff, until the SMTP server accepts or refuses it for good. System
mail (system_mail.py: resets, invitations) is an outbound message without a thread
and goes the same way; once it is sent its bytes, which hold live links, are dropped.

Unlike the other services, which flush and leave the transaction to their caller,
a claim must be visible to the other senders before anyone talks SMTP, and an
attempt's result must be kept whatever happens next: claiming, releasing and
marking a reply sent or refused each commit their own short transaction. Call
them after the caller's own work is committed, never inside it, since the commit
ends whatever the session holds (leases.py does the same for mailboxes).

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

import logging
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum

from flask import current_app
from sqlalchemy import ColumnElement, or_, select, update

from ingest.mail import compose, smtp
from portal.extensions import db
from portal.models import Direction, Message, SendStatus
from portal.services import sending
from portal.services.mailbox_tokens import MailboxAuthError
from portal.services.outbox import reopen_after_failure
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

#: How long a claim holds: well above one SMTP conversation (each network step
#: times out after SMTP_TIMEOUT), short enough that a crashed sender delays little.
CLAIM_TTL = timedelta(minutes=5)
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
#: The web request's attempt must not keep the agent waiting; the worker retries.
WEB_SEND_TIMEOUT = 10.0
DEFAULT_SEND_TIMEOUT = 30.0


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


# --- the claim ---------------------------------------------------------------------------


def _claimable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """A reply a sender may claim at `now`: pending, due, and no unexpired claim."""
    return (
        Message.direction == Direction.OUT,
        Message.send_status == SendStatus.PENDING,
        or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now),
        or_(Message.send_claimed_until.is_(None), Message.send_claimed_until <= now),
    )


def claim_reply(message_pk: int, now: datetime) -> datetime | None:
    """Claim the reply for this sender and commit; its claim time, or None if taken."""
    claimed_until = now + CLAIM_TTL
    result = db.session.execute(
        update(Message)
        .where(Message.id == message_pk, *_claimable(now))
        .values(send_claimed_until=claimed_until, send_attempts=Message.send_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return claimed_until if result.rowcount == 1 else None


def release_claim(message_pk: int, claimed_until: datetime, **values: object) -> bool:
    """Record the attempt's result if the claim is still ours, and commit."""
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


# --- one attempt -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Attempt:
    """A claimed reply, read out of its row so that no row stays loaded while SMTP talks."""

    pk: int
    claimed_until: datetime
    message_id: str
    attempts: int
    sender: str
    recipients: list[str]
    raw: bytes
    #: A system mail (services/system_mail.py): no thread, its bytes hold live links.
    is_system: bool
    #: Picks the SMTP (services/sending.py): the channel's sending mailbox, or SMTP_URL.
    channel_id: int | None = None


def _deliver(message_pk: int, *, now: datetime | None, timeout: float) -> Outcome:
    claimed_until = claim_reply(message_pk, now or utcnow())
    if claimed_until is None:
        return Outcome.SKIPPED
    attempt = _read_claimed(message_pk, claimed_until)
    try:
        note = _send(attempt, timeout=timeout)
    except smtp.PermanentSendError as exc:
        return _record_refusal(attempt, exc.reason)
    except Exception as exc:  # temporary, a bad SMTP_URL, or a bug: keep it and retry
        return _record_retry(attempt, _retry_reason(exc, attempt), now=now or utcnow())
    _mark_sent(attempt, sent_at=now or utcnow(), note=note)
    return Outcome.SENT


def _read_claimed(message_pk: int, claimed_until: datetime) -> _Attempt:
    message = db.session.get(Message, message_pk)
    assert message is not None  # noqa: S101 (type narrowing: the claim just matched it)
    attempt = _Attempt(
        pk=message_pk,
        claimed_until=claimed_until,
        message_id=message.message_id,
        attempts=message.send_attempts,
        sender=message.from_address,
        recipients=[message.to_addresses],
        raw=message.raw or b"",
        is_system=message.thread_id is None,
        channel_id=message.channel_id,
    )
    # End the read transaction: nothing may hold a database lock during the SMTP talk.
    db.session.commit()
    return attempt


def _send(attempt: _Attempt, *, timeout: float) -> str:
    try:
        transport = sending.transport_for(attempt.channel_id, current_app.config, now=utcnow())
    except MailboxAuthError as exc:
        # The sending mailbox's OAuth sign-in failed: retried like a server that is down.
        raise smtp.TemporarySendError(f"sending mailbox: {exc}") from exc
    return smtp.send_raw(
        transport,
        sender=attempt.sender,
        recipients=attempt.recipients,
        raw=attempt.raw,
        message_id=attempt.message_id,
        timeout=timeout,
    )


def _retry_reason(exc: Exception, attempt: _Attempt) -> str:
    """What the outbox shows for an attempt that may succeed later. Call it in the
    `except` block, so that a bug's traceback is logged with it."""
    if isinstance(exc, smtp.TemporarySendError):
        return exc.reason
    if isinstance(exc, compose.MailError):
        return f"SMTP_URL: {exc}"
    log.exception("Unexpected error sending reply %s", attempt.message_id)
    return f"{type(exc).__name__}: {exc}"


def _record_retry(attempt: _Attempt, reason: str, *, now: datetime) -> Outcome:
    next_at = now + retry_delay(attempt.attempts)
    release_claim(
        attempt.pk, attempt.claimed_until, last_send_error=reason[:2000], next_attempt_at=next_at
    )
    log.warning(
        "Reply %s not sent (attempt %d, next at %s): %s",
        attempt.message_id,
        attempt.attempts,
        next_at,
        reason,
    )
    return Outcome.RETRYING


def _record_refusal(attempt: _Attempt, reason: str) -> Outcome:
    if not release_claim(
        attempt.pk,
        attempt.claimed_until,
        send_status=SendStatus.FAILED,
        last_send_error=reason[:2000],
        next_attempt_at=None,
    ):
        return Outcome.SKIPPED
    message = db.session.get(Message, attempt.pk)
    assert message is not None  # noqa: S101 (type narrowing: the update just matched it)
    db.session.refresh(message)
    reopen_after_failure(message, "thread.reply_failed", reason)
    db.session.commit()
    log.warning("Reply %s refused by the SMTP server: %s", message.message_id, reason)
    return Outcome.FAILED


def _mark_sent(attempt: _Attempt, *, sent_at: datetime, note: str) -> None:
    # The mail is out: mark it sent whether or not our claim ran out meanwhile.
    values: dict[str, object] = {}
    if attempt.is_system:
        # Its reset or invitation link works for a while yet: whoever reads the
        # database must not find it there.
        values["raw"] = None
    db.session.execute(
        update(Message)
        .where(Message.id == attempt.pk)
        .values(
            send_status=SendStatus.SENT,
            sent_at=sent_at,
            send_claimed_until=None,
            next_attempt_at=None,
            last_send_error=None,
            **values,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    log.info("Reply %s sent (%s)", attempt.message_id, note)


# --- the callers -------------------------------------------------------------------------


def deliver_one(
    message_id: int, *, timeout: float = WEB_SEND_TIMEOUT, now: datetime | None = None
) -> bool:
    """Try to send one queued reply now (by its database id); True when it went out.

    For the web request right after its commit: never raises, a failure leaves the
    reply pending for the worker.
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
        .where(*_claimable(due_at))
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
