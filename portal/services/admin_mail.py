"""Mail that needs an admin's decision: unrouted messages and quarantined ones.

Assigning an unrouted message to a channel, or parsing a quarantined one again with
the current parser, stores it through the service that stores all inbound mail
(`inbound.store_inbound`): the same de-duplication, routing, thread matching and
recording as ingestion, so it joins or opens the right thread and counts as the
channel's first message. The waiting row is replaced by the row stored (same
mailbox, UID, bytes and arrival time, so de-duplication still recognises the mail);
the audit event names both ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.exc import StaleDataError

from ingest.mail.parse import ParsedMessage
from ingest.mail.parse_result import Unparsed, parse_inbound
from portal.extensions import db
from portal.models import Channel, Direction, Message, Organisation, User
from portal.services.audit import record_event
from portal.services.inbound import InboundMail, Outcome, StoreResult, store_inbound
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

MAX_REASON = 2000


class MailActionError(ValueError):
    """An action on waiting mail that cannot be done; the message is shown to the admin."""


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


def _raw_of(message: Message) -> bytes:
    if message.raw is None:
        raise MailActionError("The original bytes of this message were not kept.")
    return message.raw


def _store_in_place_of(
    message: Message,
    parsed: ParsedMessage,
    *,
    channel: Channel | None,
    inbound_domain: str,
    now: datetime,
) -> StoreResult:
    """Store `parsed` as ingestion would, replacing the waiting `message` (no commit).

    A duplicate of mail stored meanwhile leaves `message` as it is.
    """
    mail = InboundMail(_raw_of(message), parsed, message.uid, channel=channel, replaces=message)
    try:
        (result,) = store_inbound(
            [mail],
            mailbox=message.mailbox,
            uidvalidity=message.uidvalidity,
            inbound_domain=inbound_domain,
            now=now,
        )
    except StaleDataError:  # the waiting row was gone when it was to be replaced
        raise MailActionError("Someone else has just dealt with this message.") from None
    return result


def assign_to_channel(
    message: Message,
    channel: Channel,
    *,
    actor: User | None,
    max_attachment_bytes: int,
    time_limit: float | None = None,
    now: datetime | None = None,
) -> Message:
    """Route an unrouted (or discarded) message to `channel` and thread it (no commit).

    Returns the stored message, which replaces the unrouted row.
    """
    if not is_waiting(message) or message.quarantine_reason is not None:
        raise MailActionError("Only an unrouted message can be assigned to a channel.")
    parsed = parse_inbound(
        _raw_of(message), max_attachment_bytes=max_attachment_bytes, time_limit=time_limit
    )
    if isinstance(parsed, Unparsed):
        raise MailActionError(f"The current parser cannot read this message: {parsed.reason}")
    former_id, was_discarded = message.id, message.discarded_reason is not None
    # The admin chose the channel: no address is routed, so no inbound domain is needed.
    result = _store_in_place_of(
        message, parsed, channel=channel, inbound_domain="", now=now or utcnow()
    )
    if result.outcome == Outcome.DUPLICATE:
        raise MailActionError("The same message is already stored.")
    stored = result.message
    assert stored is not None  # noqa: S101 (type narrowing: a replacing row is returned)
    record_event(
        "message.assigned",
        actor=actor,
        organisation_id=channel.organisation_id,
        target=stored,
        details={
            "former_message_id": former_id,
            "channel_id": channel.id,
            "thread_id": stored.thread_id,
            "new_thread": result.is_new_thread,
            "message_id": stored.message_id,
            "was_discarded": was_discarded,
        },
    )
    log.info(
        "Unrouted message %s assigned to channel %s (thread %s)",
        former_id,
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
    #: STORED (threaded on a channel), UNROUTED, DUPLICATE or QUARANTINED (failed again).
    outcome: Outcome
    message: Message
    reason: str | None = None


def retry_parsing(
    message: Message,
    *,
    actor: User | None,
    inbound_domain: str,
    max_attachment_bytes: int,
    time_limit: float | None = None,
    now: datetime | None = None,
) -> ReparseResult:
    """Parse a quarantined message again with the current parser (no commit).

    On success it is stored as freshly ingested mail: threaded on its channel, or
    kept as unrouted when no channel matches, or discarded as a duplicate of mail
    stored since. On failure it stays quarantined with the new reason. `time_limit`
    bounds the parse as INGEST_PARSE_SECONDS bounds the worker's, so a mail that ran
    away in the worker cannot hold up the admin's request either.
    """
    if not is_waiting(message) or message.quarantine_reason is None:
        raise MailActionError("Only a quarantined message can be parsed again.")
    previous = message.quarantine_reason
    parsed = parse_inbound(
        _raw_of(message), max_attachment_bytes=max_attachment_bytes, time_limit=time_limit
    )
    if isinstance(parsed, Unparsed):
        return _still_quarantined(message, parsed.reason, previous=previous, actor=actor)
    former_id = message.id
    result = _store_in_place_of(
        message, parsed, channel=None, inbound_domain=inbound_domain, now=now or utcnow()
    )
    if result.outcome == Outcome.DUPLICATE:
        return _discard_as_duplicate(message, previous=previous, actor=actor)
    stored = result.message
    assert stored is not None  # noqa: S101 (type narrowing: a replacing row is returned)
    _record_reparsed(result, stored, parsed, former_id=former_id, previous=previous, actor=actor)
    log.info("Quarantined message %s parsed again: %s", former_id, result.outcome.value)
    return ReparseResult(outcome=result.outcome, message=stored)


def _record_reparsed(
    result: StoreResult,
    stored: Message,
    parsed: ParsedMessage,
    *,
    former_id: int,
    previous: str,
    actor: User | None,
) -> None:
    """Audit a quarantined message that parsed and was stored (threaded or unrouted)."""
    details: dict[str, object] = {
        "outcome": result.outcome.value,
        "former_message_id": former_id,
        "previous_reason": previous[:500],
        "message_id": parsed.message_id,
    }
    if result.outcome == Outcome.STORED:
        details.update(
            channel_id=stored.channel_id,
            thread_id=stored.thread_id,
            new_thread=result.is_new_thread,
        )
    record_event(
        "message.reparsed",
        actor=actor,
        organisation_id=result.thread.organisation_id if result.thread is not None else None,
        target=stored,
        details=details,
    )


def _still_quarantined(
    message: Message, reason: str, *, previous: str, actor: User | None
) -> ReparseResult:
    """The parser failed again: the row stays quarantined, with the new reason."""
    message.quarantine_reason = reason[:MAX_REASON]
    db.session.flush()
    record_event(
        "message.reparse_failed",
        actor=actor,
        target=message,
        details={"reason": reason[:500], "previous_reason": previous[:500]},
    )
    return ReparseResult(outcome=Outcome.QUARANTINED, message=message, reason=reason)


def _discard_as_duplicate(message: Message, *, previous: str, actor: User | None) -> ReparseResult:
    """The same mail was stored meanwhile: the quarantined copy is set aside, not deleted."""
    reason = "duplicate: the same message is already stored"
    message.discarded_reason = reason
    db.session.flush()
    record_event(
        "message.reparsed",
        actor=actor,
        target=message,
        details={"outcome": "duplicate", "previous_reason": previous[:500]},
    )
    return ReparseResult(outcome=Outcome.DUPLICATE, message=message, reason=reason)
