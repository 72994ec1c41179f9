"""Buyer data kept no longer than needed: the retention pass and the erasure of one buyer.

Amazon's Data Protection Policy (issue 23). Nothing here deletes a thread or a message
row: their content goes and the row stays as a tombstone (erased_at set) holding ids,
times, direction, statuses and flags, so the reports keep their counts, and holding the
dedup keys ingest checks before storing mail (mailbox, UIDVALIDITY and UID; Message-ID
and content hash: services/inbound.py), so erased mail that the mailbox still holds,
or that is delivered again, is not stored again. An erased buyer's fetched mail is
also queued (MailboxRemoval) for the worker to delete from its source mailbox on its
next connection (ingest/pipeline.py). The search documents follow the texts
through the database triggers (models/search.py); the export reads the blanked columns.

Every change here is a bulk UPDATE or DELETE in batches; the caller commits (the worker
after each batch: ingest/retention.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, insert, literal, or_, select, update

from portal.extensions import db
from portal.models import (
    Attachment,
    Channel,
    Direction,
    Draft,
    DraftAttachment,
    MailboxRemoval,
    Message,
    Order,
    Organisation,
    SendStatus,
    Thread,
    ThreadStatus,
    User,
)
from portal.services.audit import record_event
from portal.sqltypes import UTCDateTime

log = logging.getLogger(__name__)

#: Rows per statement: below SQLite's bound on parameters, and short transactions.
BATCH_SIZE = 200

#: What a message keeps of its content once erased.
_BLANK_MESSAGE = {
    "subject": "",
    "from_name": "",
    "from_address": "",
    "to_addresses": "",
    "cc_addresses": "",
    "references": "",
    "in_reply_to": None,
    "order_id": None,
    "text_body": "",
    "html_body": None,
    "visible_text": "",
    "snippet": "",
    "raw": None,
    "body_cut": False,  # nothing left to be the start of
    "last_send_error": None,
}

_BLANK_THREAD = {
    "subject": "",
    "normalized_subject": "",
    "buyer_name": "",
    "buyer_address": "",
    "order_id": None,
}


class BuyerDataError(ValueError):
    """Input the erasure refuses; the message is shown beside the field."""


@dataclass
class ErasureCounts:
    """How many rows lost their buyer data."""

    threads: int = 0
    messages: int = 0
    attachments: int = 0
    orders: int = 0
    drafts: int = 0

    def add(self, other: ErasureCounts) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    @property
    def total(self) -> int:
        return sum(asdict(self).values())


@dataclass
class RetentionCounts:
    """What one retention pass removed: raw mail and attachments, then whole texts."""

    raw_messages: int = 0
    attachments: int = 0
    erased: ErasureCounts = field(default_factory=ErasureCounts)

    def as_details(self) -> dict[str, int]:
        return {
            "raw_messages": self.raw_messages,
            "attachments": self.attachments + self.erased.attachments,
            "threads": self.erased.threads,
            "messages": self.erased.messages,
            "drafts": self.erased.drafts,
        }

    @property
    def total(self) -> int:
        return self.raw_messages + self.attachments + self.erased.total


# --- the primitives ----------------------------------------------------------------------


def _delete_attachments(message_ids: Sequence[int]) -> int:
    if not message_ids:
        return 0
    result = db.session.execute(
        delete(Attachment)
        .where(Attachment.message_id.in_(message_ids))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def erase_messages(message_ids: Sequence[int], *, now: datetime) -> ErasureCounts:
    """Blank the content of these messages and delete their attachments."""
    counts = ErasureCounts()
    if not message_ids:
        return counts
    counts.attachments = _delete_attachments(message_ids)
    result = db.session.execute(
        update(Message)
        .where(Message.id.in_(message_ids))
        .values(**_BLANK_MESSAGE, erased_at=now)
        .execution_options(synchronize_session=False)
    )
    counts.messages = result.rowcount or 0
    return counts


def erase_threads(thread_ids: Sequence[int], *, now: datetime) -> ErasureCounts:
    """Tombstone these threads: every message blanked, drafts deleted, buyer fields emptied."""
    counts = ErasureCounts()
    if not thread_ids:
        return counts
    message_ids = db.session.scalars(
        select(Message.id).where(Message.thread_id.in_(thread_ids), Message.erased_at.is_(None))
    ).all()
    for start in range(0, len(message_ids), BATCH_SIZE):
        counts.add(erase_messages(message_ids[start : start + BATCH_SIZE], now=now))
    draft_ids = select(Draft.id).where(Draft.thread_id.in_(thread_ids))
    db.session.execute(
        delete(DraftAttachment)
        .where(DraftAttachment.draft_id.in_(draft_ids))
        .execution_options(synchronize_session=False)
    )
    counts.drafts = (
        db.session.execute(
            delete(Draft)
            .where(Draft.thread_id.in_(thread_ids))
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
    counts.threads = (
        db.session.execute(
            update(Thread)
            .where(Thread.id.in_(thread_ids))
            .values(**_BLANK_THREAD, erased_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
    return counts


# --- retention ---------------------------------------------------------------------------


def _closed_before(cutoff: datetime):
    return (
        Thread.status == ThreadStatus.CLOSED,
        Thread.closed_at.is_not(None),
        Thread.closed_at <= cutoff,
    )


def drop_raw_mail(*, now: datetime, days: int, limit: int = BATCH_SIZE) -> RetentionCounts:
    """One batch: the raw mail and attachments of threads closed at least `days` ago.

    Replies still waiting in the outbox keep theirs. Returns what went (nothing: done)."""
    counts = RetentionCounts()
    has_attachments = exists().where(Attachment.message_id == Message.id)
    message_ids = db.session.scalars(
        select(Message.id)
        .join(Thread, Message.thread_id == Thread.id)
        .where(
            *_closed_before(now - timedelta(days=days)),
            or_(Message.send_status.is_(None), Message.send_status != SendStatus.PENDING),
            or_(Message.raw.is_not(None), has_attachments),
        )
        .order_by(Message.id)
        .limit(limit)
    ).all()
    if not message_ids:
        return counts
    counts.attachments = _delete_attachments(message_ids)
    counts.raw_messages = (
        db.session.execute(
            update(Message)
            .where(Message.id.in_(message_ids), Message.raw.is_not(None))
            .values(raw=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
    return counts


def erase_closed_threads(*, now: datetime, days: int, limit: int = BATCH_SIZE) -> ErasureCounts:
    """One batch: tombstone the threads closed at least `days` ago (texts and all)."""
    thread_ids = db.session.scalars(
        select(Thread.id)
        .where(
            *_closed_before(now - timedelta(days=days)),
            # A tombstone the buyer wrote to again, and closed again, has content again.
            or_(
                Thread.erased_at.is_(None),
                exists().where(Message.thread_id == Thread.id, Message.erased_at.is_(None)),
            ),
        )
        .order_by(Thread.id)
        .limit(limit)
    ).all()
    return erase_threads(thread_ids, now=now)


def record_retention_run(counts: RetentionCounts, *, raw_days: int, text_days: int) -> None:
    """Audit a retention pass that removed something (counts only, no content)."""
    record_event(
        "retention.run",
        actor=None,
        details={**counts.as_details(), "raw_days": raw_days, "text_days": text_days},
    )


# --- erasure of one buyer ----------------------------------------------------------------


def clean_buyer_address(raw: str | None) -> str:
    """The address as stored threads compare it (trimmed, lower case); refuses non-addresses."""
    value = (raw or "").strip().lower()
    if not value or "@" not in value or any(c.isspace() for c in value) or len(value) > 254:
        raise BuyerDataError("Enter the buyer's e-mail address or Amazon relay alias.")
    return value


def address_digest(address: str) -> str:
    """What the audit keeps of an erased buyer's address: its SHA-256, so an operator
    can tell whether an address was erased without the log holding it in clear."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


@dataclass(frozen=True)
class BuyerData:
    """What an erasure of one buyer would touch in one organisation."""

    address: str
    thread_ids: list[int]
    #: Messages from that address in the organisation's other threads.
    stray_message_ids: list[int]
    messages: int

    @property
    def is_empty(self) -> bool:
        return not self.thread_ids and not self.stray_message_ids


def _unassigned_message_ids(address: str) -> list[int]:
    """Mail of `address` that reached no organisation: unrouted mail from it, and
    quarantined mail (which has no parsed sender) whose raw bytes name it."""
    ids = list(
        db.session.scalars(
            select(Message.id).where(
                Message.channel_id.is_(None),
                Message.quarantine_reason.is_(None),
                func.lower(Message.from_address) == address,
                Message.erased_at.is_(None),
            )
        )
    )
    needle = address.encode()
    last_id = 0
    while True:
        rows = db.session.execute(
            select(Message.id, Message.raw)
            .where(
                Message.channel_id.is_(None),
                Message.quarantine_reason.is_not(None),
                Message.erased_at.is_(None),
                Message.raw.is_not(None),
                Message.id > last_id,
            )
            .order_by(Message.id)
            .limit(BATCH_SIZE)
        ).all()
        ids += [row.id for row in rows if needle in row.raw.lower()]
        if len(rows) < BATCH_SIZE:
            return sorted(ids)
        last_id = rows[-1].id


def find_buyer_data(
    organisation: Organisation, address: str, *, include_unassigned: bool = False
) -> BuyerData:
    """The threads of `address` in `organisation` not erased yet, and the count of their
    messages (the confirmation page's numbers). With `include_unassigned` (an admin's
    or the command line's erasure: that mail is theirs to see), the buyer's unrouted
    and quarantined mail too, which belongs to no organisation."""
    address = clean_buyer_address(address)
    thread_ids = list(
        db.session.scalars(
            select(Thread.id)
            .where(
                Thread.organisation_id == organisation.id,
                func.lower(Thread.buyer_address) == address,
                Thread.erased_at.is_(None),
            )
            .order_by(Thread.id)
        )
    )
    channel_ids = select(Channel.id).where(Channel.organisation_id == organisation.id)
    stray = list(
        db.session.scalars(
            select(Message.id)
            .where(
                Message.channel_id.in_(channel_ids),
                func.lower(Message.from_address) == address,
                Message.erased_at.is_(None),
                or_(Message.thread_id.is_(None), Message.thread_id.not_in(thread_ids)),
            )
            .order_by(Message.id)
        )
    )
    if include_unassigned:
        stray = sorted(set(stray) | set(_unassigned_message_ids(address)))
    in_threads = 0
    if thread_ids:
        in_threads = db.session.scalar(
            select(func.count(Message.id)).where(
                Message.thread_id.in_(thread_ids), Message.erased_at.is_(None)
            )
        )
    return BuyerData(
        address=address,
        thread_ids=thread_ids,
        stray_message_ids=stray,
        messages=(in_threads or 0) + len(stray),
    )


def buyer_order_keys(found: BuyerData) -> list[tuple[int, str]]:
    """The (channel id, order ID) pairs the buyer's threads and messages name, sorted."""
    keys: set[tuple[int, str]] = set()
    for start in range(0, len(found.thread_ids), BATCH_SIZE):
        keys.update(
            (row[0], row[1])
            for row in db.session.execute(
                select(Thread.channel_id, Thread.order_id).where(
                    Thread.id.in_(found.thread_ids[start : start + BATCH_SIZE]),
                    Thread.order_id.is_not(None),
                )
            )
        )
    for start in range(0, len(found.stray_message_ids), BATCH_SIZE):
        keys.update(
            (row[0], row[1])
            for row in db.session.execute(
                select(Message.channel_id, Message.order_id).where(
                    Message.id.in_(found.stray_message_ids[start : start + BATCH_SIZE]),
                    Message.channel_id.is_not(None),
                    Message.order_id.is_not(None),
                )
            )
        )
    return sorted(keys)


_REMOVAL_COLUMNS = ("mailbox_id", "uidvalidity", "uid", "message_id", "content_hash", "created_at")


def queue_source_removals(where, *, now: datetime) -> int:
    """Note the fetched mail matching `where` (not erased yet) for removal from its
    source mailbox by the worker (ingest/pipeline.py); returns how many."""
    query = select(
        Message.mailbox_id,
        Message.uidvalidity,
        Message.uid,
        Message.message_id,
        Message.content_hash,
        literal(now, UTCDateTime()),
    ).where(
        where,
        Message.mailbox_id.is_not(None),
        Message.direction == Direction.IN,
        Message.erased_at.is_(None),
    )
    # Counted by RETURNING: rowcount of INSERT … SELECT is -1 with psycopg.
    stmt = insert(MailboxRemoval).from_select(_REMOVAL_COLUMNS, query)
    return len(db.session.scalars(stmt.returning(MailboxRemoval.id)).all())


def pending_source_removals(mailbox_id: int) -> list[MailboxRemoval]:
    """The erased mail the worker has still to remove from this mailbox."""
    return list(
        db.session.scalars(
            select(MailboxRemoval)
            .where(MailboxRemoval.mailbox_id == mailbox_id)
            .order_by(MailboxRemoval.id)
        )
    )


def source_removals_done(removals: Sequence[MailboxRemoval]) -> None:
    """Forget removals the mailbox has carried out (the caller commits)."""
    ids = [removal.id for removal in removals]
    for start in range(0, len(ids), BATCH_SIZE):
        db.session.execute(
            delete(MailboxRemoval)
            .where(MailboxRemoval.id.in_(ids[start : start + BATCH_SIZE]))
            .execution_options(synchronize_session=False)
        )


def erase_buyer(
    organisation: Organisation,
    address: str,
    *,
    actor: User | None,
    now: datetime,
    include_unassigned: bool = False,
) -> ErasureCounts:
    """Erase everything `organisation` holds about the buyer at `address`: messages,
    attachments, raw mail, drafts and search entries of their threads (left as
    tombstones), their messages elsewhere (with `include_unassigned`, their unrouted
    and quarantined mail too: `find_buyer_data`), and their orders; the mail is also
    queued for removal from the mailboxes it was fetched from. Audited with the
    address's digest only. Raises BuyerDataError when nothing matches."""
    found = find_buyer_data(organisation, address, include_unassigned=include_unassigned)
    if found.is_empty:
        raise BuyerDataError("Nothing is stored about this buyer in this organisation.")
    order_keys = buyer_order_keys(found)
    removals = 0
    for start in range(0, len(found.thread_ids), BATCH_SIZE):
        chunk = found.thread_ids[start : start + BATCH_SIZE]
        removals += queue_source_removals(Message.thread_id.in_(chunk), now=now)
    for start in range(0, len(found.stray_message_ids), BATCH_SIZE):
        chunk = found.stray_message_ids[start : start + BATCH_SIZE]
        removals += queue_source_removals(Message.id.in_(chunk), now=now)
    counts = ErasureCounts()
    for start in range(0, len(found.thread_ids), BATCH_SIZE):
        counts.add(erase_threads(found.thread_ids[start : start + BATCH_SIZE], now=now))
    for start in range(0, len(found.stray_message_ids), BATCH_SIZE):
        counts.add(erase_messages(found.stray_message_ids[start : start + BATCH_SIZE], now=now))
    for channel_id, order_id in order_keys:
        counts.orders += (
            db.session.execute(
                delete(Order)
                .where(Order.channel_id == channel_id, Order.order_id == order_id)
                .execution_options(synchronize_session=False)
            ).rowcount
            or 0
        )
    # The bulk statements went around the session: drop what it holds of those rows.
    db.session.expire_all()
    record_event(
        "buyer.erased",
        actor=actor,
        organisation_id=organisation.id,
        target=organisation,
        details={
            "address_sha256": address_digest(found.address),
            **asdict(counts),
            "source_removals": removals,
        },
    )
    log.info(
        "Buyer erased in organisation %s: %d threads, %d messages, %d attachments, %d orders",
        organisation.id,
        counts.threads,
        counts.messages,
        counts.attachments,
        counts.orders,
    )
    return counts
