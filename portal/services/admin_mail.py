"""Mail that needs an admin's decision: unrouted messages and quarantined ones.

Assigning an unrouted message, or re-parsing a quarantined one with the current
parser, stores it exactly as ingestion would have: the same parser, the same
thread matching (`ingest.matching.find_thread`) and the same recording service
(`threads.record_inbound_message`), so it joins or opens the right thread and
counts as the channel's first message. The waiting row is replaced by the row
that recording creates (same mailbox, UID, Message-ID, bytes and arrival time, so
de-duplication still recognises the mail); the audit event names both ids.

The parser and the matcher live in `ingest`; they are imported inside `_parse` and
`_find_thread` so that importing this service (or the admin views) never loads
the pipeline, and `ingest` keeps importing services rather than the reverse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.exc import StaleDataError

from portal.extensions import db
from portal.models import Channel, Direction, Mailbox, Message, Organisation, Thread, User
from portal.services import threads as thread_service
from portal.services.audit import record_event
from portal.services.channels import find_channel_for_addresses
from portal.sqltypes import utcnow

if TYPE_CHECKING:
    from ingest.parse import ParsedMessage

log = logging.getLogger(__name__)

MAX_REASON = 2000


class MailActionError(ValueError):
    """An action on waiting mail that cannot be done; the message is shown to the admin."""


# --- the parser and the matcher, from ingest ---------------------------------------------


def _parse(raw: bytes, *, max_attachment_bytes: int) -> ParsedMessage:
    from ingest.parse import parse_message

    return parse_message(raw, max_attachment_bytes=max_attachment_bytes)


def _failure_reason(exc: Exception) -> str:
    # Worded as ingestion words it (ingest.pipeline.ingest_raw).
    from ingest.parse import UnparseableMessage

    return str(exc) if isinstance(exc, UnparseableMessage) else f"{type(exc).__name__}: {exc}"


def _find_thread(channel: Channel, parsed: ParsedMessage, *, now: datetime) -> Thread | None:
    from ingest.matching import find_thread

    return find_thread(channel, parsed, now=now)


# --- listing -----------------------------------------------------------------------------


def _waiting():
    return select(Message).where(Message.direction == Direction.IN, Message.channel_id.is_(None))


def list_unrouted(*, discarded: bool = False, limit: int = 200) -> tuple[list[Message], int]:
    """Unrouted messages, newest first (or the discarded ones), and how many there are."""
    if discarded:
        stmt = _waiting().where(Message.discarded_reason.is_not(None))
    else:
        stmt = _waiting().where(
            Message.quarantine_reason.is_(None), Message.discarded_reason.is_(None)
        )
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.session.scalars(
        stmt.options(joinedload(Message.mailbox))
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    ).all()
    return list(rows), total


def list_quarantined(*, limit: int = 200) -> tuple[list[Message], int]:
    """Quarantined messages not discarded, newest first, and how many there are."""
    stmt = _waiting().where(
        Message.quarantine_reason.is_not(None), Message.discarded_reason.is_(None)
    )
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.session.scalars(
        stmt.options(joinedload(Message.mailbox))
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    ).all()
    return list(rows), total


def is_waiting(message: Message) -> bool:
    """Inbound mail on no channel: unrouted, quarantined or discarded."""
    return message.direction == Direction.IN and message.channel_id is None


def channel_choices() -> list[tuple[int, str]]:
    """Every channel, as (id, "Organisation · UK · address"), for the assign form."""
    rows = db.session.execute(
        select(Channel.id, Organisation.name, Channel.marketplace, Channel.helpdesk_address)
        .join(Channel.organisation)
        .order_by(func.lower(Organisation.name), Channel.marketplace)
    ).all()
    return [(cid, f"{org} · {code} · {address}") for cid, org, code, address in rows]


# --- storing it as ingestion would -------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    """What identifies the mail in its mailbox; carried over to the replacing row."""

    former_id: int
    raw: bytes
    mailbox: Mailbox | None
    uidvalidity: int | None
    uid: int | None
    created_at: datetime


def _take(message: Message) -> _Origin:
    """Remove the waiting row, keeping what the replacing row needs (no commit)."""
    raw = message.raw
    if raw is None:
        raise MailActionError("The original bytes of this message were not kept.")
    origin = _Origin(
        former_id=message.id,
        raw=raw,
        mailbox=message.mailbox,
        uidvalidity=message.uidvalidity,
        uid=message.uid,
        created_at=message.created_at,
    )
    db.session.delete(message)
    try:
        # Now, so the replacing row may take its UID and Message-ID.
        db.session.flush()
    except StaleDataError:
        raise MailActionError("Someone else has just dealt with this message.") from None
    return origin


def _record_routed(
    parsed: ParsedMessage, origin: _Origin, channel: Channel, *, now: datetime
) -> tuple[Message, bool]:
    """Thread and store the mail on `channel`, exactly as `ingest_raw` does."""
    thread = _find_thread(channel, parsed, now=now)
    is_new_thread = thread is None
    if thread is None:
        thread = thread_service.create_thread(channel, parsed)
    message = thread_service.record_inbound_message(
        parsed,
        origin.raw,
        channel=channel,
        thread=thread,
        mailbox=origin.mailbox,
        uidvalidity=origin.uidvalidity,
        uid=origin.uid,
        delivered_to=channel.helpdesk_address,
    )
    message.created_at = origin.created_at  # when it reached us, not when it was decided
    db.session.flush()
    return message, is_new_thread


def assign_to_channel(
    message: Message,
    channel: Channel,
    *,
    actor: User | None,
    max_attachment_bytes: int,
    now: datetime | None = None,
) -> Message:
    """Route an unrouted (or discarded) message to `channel` and thread it (no commit).

    Returns the stored message, which replaces the unrouted row.
    """
    if not is_waiting(message) or message.quarantine_reason is not None:
        raise MailActionError("Only an unrouted message can be assigned to a channel.")
    if message.raw is None:
        raise MailActionError("The original bytes of this message were not kept.")
    now = now or utcnow()
    try:
        parsed = _parse(message.raw, max_attachment_bytes=max_attachment_bytes)
    except Exception as exc:
        raise MailActionError(
            f"The current parser cannot read this message: {_failure_reason(exc)}"
        ) from None
    was_discarded = message.discarded_reason is not None
    origin = _take(message)
    stored, is_new_thread = _record_routed(parsed, origin, channel, now=now)
    record_event(
        "message.assigned",
        actor=actor,
        organisation_id=channel.organisation_id,
        target=stored,
        details={
            "former_message_id": origin.former_id,
            "channel_id": channel.id,
            "thread_id": stored.thread_id,
            "new_thread": is_new_thread,
            "message_id": stored.message_id,
            "was_discarded": was_discarded,
        },
    )
    log.info(
        "Unrouted message %s assigned to channel %s (thread %s)",
        origin.former_id,
        channel.id,
        stored.thread_id,
    )
    return stored


def discard_message(message: Message, reason: str, *, actor: User | None) -> Message:
    """Set an unrouted or quarantined message aside with a reason; the row is kept."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise MailActionError("Say why the message is discarded.")
    if not is_waiting(message):
        raise MailActionError("Only unrouted or quarantined mail can be discarded.")
    if message.discarded_reason is not None:
        raise MailActionError("This message is already discarded.")
    message.discarded_reason = reason[:MAX_REASON]
    db.session.flush()
    record_event(
        "message.discarded",
        actor=actor,
        target=message,
        details={
            "reason": reason[:500],
            "message_id": message.message_id,
            "from": message.from_address,
            "quarantined": message.quarantine_reason is not None,
        },
    )
    return message


@dataclass(frozen=True)
class ReparseResult:
    #: "stored" (threaded on a channel), "unrouted", "duplicate" or "quarantined" (failed again).
    outcome: str
    message: Message
    reason: str | None = None


def retry_parsing(
    message: Message,
    *,
    actor: User | None,
    inbound_domain: str,
    max_attachment_bytes: int,
    now: datetime | None = None,
) -> ReparseResult:
    """Parse a quarantined message again with the current parser (no commit).

    On success it is routed and threaded like freshly ingested mail (or kept as
    unrouted when no channel matches); on failure it stays quarantined with the new
    reason.
    """
    if not is_waiting(message) or message.quarantine_reason is None:
        raise MailActionError("Only a quarantined message can be parsed again.")
    if message.raw is None:
        raise MailActionError("The original bytes of this message were not kept.")
    now = now or utcnow()
    previous = message.quarantine_reason
    try:
        parsed = _parse(message.raw, max_attachment_bytes=max_attachment_bytes)
    except Exception as exc:  # any parser failure, as in ingestion
        reason = _failure_reason(exc)
        message.quarantine_reason = reason[:MAX_REASON]
        db.session.flush()
        record_event(
            "message.reparse_failed",
            actor=actor,
            target=message,
            details={"reason": reason[:500], "previous_reason": previous[:500]},
        )
        return ReparseResult(outcome="quarantined", message=message, reason=reason)

    mailbox = message.mailbox
    if thread_service.is_duplicate(
        mailbox=mailbox, message_id=parsed.message_id, content_hash=parsed.content_hash
    ):
        reason = "duplicate: the same message is already stored"
        message.discarded_reason = reason
        db.session.flush()
        record_event(
            "message.reparsed",
            actor=actor,
            target=message,
            details={"outcome": "duplicate", "previous_reason": previous[:500]},
        )
        return ReparseResult(outcome="duplicate", message=message, reason=reason)

    channel = find_channel_for_addresses(parsed.delivery_addresses, inbound_domain=inbound_domain)
    origin = _take(message)
    details: dict[str, object] = {
        "former_message_id": origin.former_id,
        "previous_reason": previous[:500],
        "message_id": parsed.message_id,
    }
    if channel is None:
        stored = thread_service.record_unrouted_message(
            parsed,
            origin.raw,
            mailbox=origin.mailbox,
            uidvalidity=origin.uidvalidity,
            uid=origin.uid,
        )
        stored.created_at = origin.created_at
        db.session.flush()
        outcome = "unrouted"
    else:
        stored, is_new_thread = _record_routed(parsed, origin, channel, now=now)
        outcome = "stored"
        details.update(channel_id=channel.id, thread_id=stored.thread_id, new_thread=is_new_thread)
    record_event(
        "message.reparsed",
        actor=actor,
        organisation_id=channel.organisation_id if channel is not None else None,
        target=stored,
        details={"outcome": outcome, **details},
    )
    log.info("Quarantined message %s parsed again: %s", origin.former_id, outcome)
    return ReparseResult(outcome=outcome, message=stored)
