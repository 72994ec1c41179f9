"""Storing inbound mail: one service for the worker's batches and an admin's decisions alike.

`store_inbound` takes mail already parsed (or rejected by the parser: `Unparsed`)
and decides for each, in order:

1. **dedup**: is it stored already (the same UID of this mailbox under the same
   UIDVALIDITY, or the same Message-ID and content from any mailbox, the fields
   added on the way left out: `parse.content_hash`)? Then nothing is stored. Mail
   earlier in the same call counts as stored.
2. **quarantine**: the parser rejected it: keep the bytes raw, with the reason.
3. **route**: the channel of the first delivery address that names one (or the
   channel an admin chose); none: keep it as unrouted, for an admin to assign.
4. **thread**: the thread it continues (`thread_matching`), else a new one.
5. **record**: the message row, and what it changes on its thread and channel.

One mail is a list of one. A batch takes the same steps with a handful of queries
for all of it (which mail is stored, where each address routes, which threads it
may continue) instead of several per message, and goes in as plain values at the end
(on PostgreSQL one INSERT of unnested arrays per table, on SQLite executemany), since
the ORM's unit of work for every message and attachment was the costliest part of
storing (bench/README.md). Threads and channels stay ORM objects: few per batch, and
changed as mail arrives.

Nothing is committed: the worker commits a batch together with its mailbox
checkpoint, an admin's view commits the decision with its audit event.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, and_, insert, or_, select, text

from ingest.mail.parse import ParsedMessage, synthetic_message_id
from ingest.mail.parse_result import Unparsed
from portal.extensions import db
from portal.models import Attachment, Channel, Direction, Mailbox, Message, Thread, ThreadStatus
from portal.services import outbox
from portal.services.channels import channels_by_address, route_to_channel
from portal.services.thread_matching import (
    MATCH_WINDOW,
    CandidateKeys,
    StoredReference,
    ThreadMatcher,
    candidate_keys,
    normalise_subject,
    sender_of,
)
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    UNROUTED = "unrouted"
    QUARANTINED = "quarantined"


@dataclass
class InboundMail:
    """One mail to store: its bytes, and what the parser made of them."""

    raw: bytes
    parsed: ParsedMessage | Unparsed
    uid: int | None = None
    #: The channel an admin assigned it to; None: routed by its delivery addresses.
    channel: Channel | None = None
    #: The waiting row (unrouted or quarantined) this mail takes the place of: it is
    #: not a duplicate of itself, and unless the mail turns out to be a duplicate of
    #: another row it is deleted, the new row keeping its arrival time.
    replaces: Message | None = None


@dataclass(frozen=True)
class StoreResult:
    outcome: Outcome
    #: The thread it was stored in (STORED), and whether this mail opened it.
    thread: Thread | None = None
    is_new_thread: bool = False
    #: The stored row, for mail that replaced a waiting row (an admin's decision
    #: shows it); None otherwise, so that the worker's rows go in many at a time.
    message: Message | None = None


def quarantine_message_id(digest: str) -> str:
    """The Message-ID a quarantined mail is stored under: its bytes' hash."""
    return f"<{digest[:40]}@quarantine.sellerdesk>"


def store_inbound(
    mails: Sequence[InboundMail],
    *,
    mailbox: Mailbox | None,
    uidvalidity: int | None,
    inbound_domain: str,
    now: datetime,
) -> list[StoreResult]:
    """Store `mails` of `mailbox` in order (dedup, quarantine, route, thread, record; no commit).

    Returns each mail's outcome, in the same order. `now` is the moment the match
    window is counted back from.
    """
    _serialise_by_message_id(mails)
    dedup = _Dedup(mails, mailbox=mailbox, uidvalidity=uidvalidity)
    channels = _route(mails, inbound_domain=inbound_domain)
    matcher = _thread_matcher(
        [(c, m.parsed) for c, m in zip(channels, mails, strict=True) if c is not None], now=now
    )
    bounced = _bounced_replies(mails, channels)
    rows = _Rows(mailbox=mailbox, uidvalidity=uidvalidity)
    decided: list[tuple[StoreResult, _Row | None]] = []
    for mail, channel in zip(mails, channels, strict=True):
        if dedup.is_duplicate(mail):
            decided.append((StoreResult(Outcome.DUPLICATE), None))
        else:
            decided.append(_record(mail, channel, matcher, bounced, rows))
    rows.write()
    return [_with_message(result, row) for result, row in decided]


def _record(
    mail: InboundMail,
    channel: Channel | None,
    matcher: ThreadMatcher[Thread],
    bounced: _CitedReplies,
    rows: _Rows,
) -> tuple[StoreResult, _Row]:
    """Quarantine, keep unrouted or thread one mail that is not a duplicate."""
    created_at = _take_place_of(mail.replaces)
    parsed = mail.parsed
    if isinstance(parsed, Unparsed):
        row = rows.add_quarantined(mail.raw, parsed, uid=mail.uid, created_at=created_at)
        result = StoreResult(Outcome.QUARANTINED)
    elif channel is None:
        row = rows.add_unrouted(parsed, mail.raw, uid=mail.uid, created_at=created_at)
        result = StoreResult(Outcome.UNROUTED)
    else:
        thread = _bounced_reply_thread(channel, parsed, bounced) or matcher.match(
            channel.id, parsed
        )
        is_new_thread = thread is None
        if thread is None:
            thread = _open_thread(channel, parsed)
        row = rows.add_inbound(
            parsed, mail.raw, uid=mail.uid, channel=channel, thread=thread, created_at=created_at
        )
        matcher.add(channel.id, thread, row.values["message_id"])
        result = StoreResult(Outcome.STORED, thread, is_new_thread)
    row.wants_id = mail.replaces is not None
    return result, row


def _with_message(result: StoreResult, row: _Row | None) -> StoreResult:
    if row is None or not row.wants_id:
        return result
    message = db.session.get(Message, row.id)
    return StoreResult(result.outcome, result.thread, result.is_new_thread, message)


def _take_place_of(waiting: Message | None) -> datetime | None:
    """Delete the waiting row the mail replaces (flushed before the new rows go in);
    the arrival time the new row keeps."""
    if waiting is None:
        return None
    created_at = waiting.created_at
    db.session.delete(waiting)
    return created_at


# --- 1. dedup ----------------------------------------------------------------------------


def _content_key(parsed: ParsedMessage | Unparsed) -> tuple[str, str]:
    """What makes two mails the same mail: (Message-ID, content hash)."""
    if isinstance(parsed, Unparsed):
        return quarantine_message_id(parsed.content_hash), parsed.content_hash
    return parsed.message_id, parsed.content_hash


def _earlier_keys(parsed: ParsedMessage | Unparsed) -> list[tuple[str, str]]:
    """Keys the same mail was stored under by earlier versions, so that a copy fetched
    again (a UIDVALIDITY reset, a second mailbox) is still found: they hashed all its
    bytes (`raw_hash`), fields added on the way included; and a Message-ID written
    without its brackets was replaced by the made-up one until ids were kept as written."""
    old = parsed.raw_hash or parsed.content_hash
    if isinstance(parsed, Unparsed):
        return [(quarantine_message_id(old), old)] if old != parsed.content_hash else []
    keys = []
    if old != parsed.content_hash:
        keys.append((parsed.message_id, old))
    synthetic = parsed.message_id == synthetic_message_id(parsed.content_hash)
    bracketed = parsed.message_id.startswith("<") and parsed.message_id.endswith(">")
    if synthetic or not bracketed:
        keys.append((synthetic_message_id(old), old))
    return [key for key in dict.fromkeys(keys) if key != (parsed.message_id, parsed.content_hash)]


def _serialise_by_message_id(mails: Sequence[InboundMail]) -> None:
    """On PostgreSQL, wait for any other transaction storing mail under the same
    Message-IDs (two mailboxes polled at once, an HTTP delivery beside a poll) before
    looking for what is stored: its rows are then committed and seen, so the same mail
    is not stored twice. Transaction-scoped advisory locks, taken in one order by all."""
    if db.session.get_bind().dialect.name != "postgresql" or not mails:
        return
    keys = sorted({_lock_key(_content_key(m.parsed)[0]) for m in mails})
    db.session.execute(
        text(
            "SELECT pg_advisory_xact_lock(k) FROM "
            "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS wanted"
        ),
        {"keys": keys},
    )


def _lock_key(message_id: str) -> int:
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:8], "big", signed=True)


class _Dedup:
    """Which mail of a batch is stored already: two queries up front for the whole batch."""

    def __init__(
        self, mails: Sequence[InboundMail], *, mailbox: Mailbox | None, uidvalidity: int | None
    ) -> None:
        # The rows being replaced are the very mail being stored, not earlier copies.
        replaced = [m.replaces.id for m in mails if m.replaces is not None]
        self._uids = stored_uids(
            mailbox=mailbox,
            uidvalidity=uidvalidity,
            uids=[m.uid for m in mails if m.uid is not None],
            except_ids=replaced,
        )
        keys = [_content_key(m.parsed) for m in mails]
        keys += [key for m in mails for key in _earlier_keys(m.parsed)]
        self._contents = stored_contents(keys=keys, except_ids=replaced)

    def is_duplicate(self, mail: InboundMail) -> bool:
        """True when `mail` is stored already; else it counts as stored from now on."""
        if mail.uid is not None and mail.uid in self._uids:
            return True
        key = _content_key(mail.parsed)
        if key in self._contents or any(k in self._contents for k in _earlier_keys(mail.parsed)):
            return True
        self._contents.add(key)
        return False


def stored_uids(
    *,
    mailbox: Mailbox | None,
    uidvalidity: int | None,
    uids: Collection[int],
    except_ids: Collection[int] = (),
) -> set[int]:
    """Which of `uids` (under `uidvalidity`) are already stored for this mailbox: one query."""
    if uidvalidity is None or not uids:
        return set()
    mailbox_id = mailbox.id if mailbox is not None else None
    stmt = select(Message.uid).where(
        Message.mailbox_id == mailbox_id,
        Message.uidvalidity == uidvalidity,
        Message.uid.in_(sorted(set(uids))),
    )
    if except_ids:
        stmt = stmt.where(Message.id.not_in(sorted(except_ids)))
    return set(db.session.scalars(stmt))


def stored_contents(
    *,
    keys: Collection[tuple[str, str]],
    except_ids: Collection[int] = (),
) -> set[tuple[str, str]]:
    """Which (Message-ID, content hash) pairs of `keys` are already stored as inbound mail,
    from any mailbox: the same mail reaching us along two ways (two mailboxes, IMAP and
    HTTP) is one mail. UIDs (`stored_uids`) stay per mailbox."""
    if not keys:
        return set()
    stmt = select(Message.message_id, Message.content_hash).where(
        Message.direction == Direction.IN,
        Message.message_id.in_(sorted({message_id for message_id, _ in keys})),
        Message.content_hash.in_(sorted({digest for _, digest in keys})),
    )
    if except_ids:
        stmt = stmt.where(Message.id.not_in(sorted(except_ids)))
    # The two IN lists match a few pairs that are not asked for; keep the asked ones.
    return {(row.message_id, row.content_hash) for row in db.session.execute(stmt)} & set(keys)


# --- 3. route ----------------------------------------------------------------------------


def _route(mails: Sequence[InboundMail], *, inbound_domain: str) -> list[Channel | None]:
    """Each parsed mail's channel (the admin's choice, else by address): one lookup for all."""
    parsed = [None if isinstance(m.parsed, Unparsed) else m.parsed for m in mails]
    addresses = [
        a
        for m, p in zip(mails, parsed, strict=True)
        if p is not None and m.channel is None
        for a in p.delivery_addresses
    ]
    routes = channels_by_address(addresses, inbound_domain=inbound_domain)

    def channel_of(mail: InboundMail, parsed: ParsedMessage | None) -> Channel | None:
        if parsed is None:
            return None  # quarantined: not routed
        if mail.channel is not None:
            return mail.channel
        return route_to_channel(parsed.delivery_addresses, routes, inbound_domain=inbound_domain)

    return [channel_of(m, p) for m, p in zip(mails, parsed, strict=True)]


# --- 4. thread ---------------------------------------------------------------------------


def _thread_matcher(
    routed: list[tuple[Channel, ParsedMessage]], *, now: datetime
) -> ThreadMatcher[Thread]:
    """A matcher holding every stored message and thread the routed mail may continue."""
    channel_ids = sorted({channel.id for channel, _ in routed})
    keys = candidate_keys(parsed for _, parsed in routed)
    references = _stored_references(channel_ids, keys.references)
    threads = _candidate_threads(
        channel_ids, keys, {ref.thread_id for ref in references}, cutoff=now - MATCH_WINDOW
    )
    return ThreadMatcher(threads=threads, references=references, now=now)


def _stored_references(channel_ids: list[int], message_ids: list[str]) -> list[StoredReference]:
    """The threaded messages of these channels with one of these Message-IDs."""
    if not channel_ids or not message_ids:
        return []
    rows = db.session.execute(
        select(Message.channel_id, Message.message_id, Message.id, Message.thread_id).where(
            Message.channel_id.in_(channel_ids),
            Message.message_id.in_(message_ids),
            Message.thread_id.is_not(None),
            # An erased message still counts for dedup, but a reply to it starts afresh
            # rather than bringing content back into a tombstone (services/buyer_data.py).
            Message.erased_at.is_(None),
        )
    )
    return [StoredReference(*row) for row in rows]


def _candidate_threads(
    channel_ids: list[int], keys: CandidateKeys, thread_ids: set[int], *, cutoff: datetime
) -> list[Thread]:
    """The threads the references name, and those of the senders that a key may match."""
    # The Amazon key: alias + order (at any age), or alias alone for a recent pre-sale
    # thread; or a recent thread of the same sender and subject.
    recent = []
    if keys.subjects:
        recent.append(Thread.normalized_subject.in_(keys.subjects))
    if keys.presale_aliases:
        recent.append(Thread.order_id.is_(None) & Thread.buyer_address.in_(keys.presale_aliases))
    by_key = []
    if keys.orders:
        by_key.append(Thread.order_id.in_(keys.orders))
    if recent:
        by_key.append(and_(Thread.last_message_at >= cutoff, or_(*recent)))
    wanted = []
    if channel_ids and keys.senders and by_key:
        wanted.append(
            Thread.channel_id.in_(channel_ids)
            & Thread.buyer_address.in_(keys.senders)
            & or_(*by_key)
            # A tombstone's emptied keys ("" sender and subject) must not match mail.
            & Thread.erased_at.is_(None)
        )
    if thread_ids:
        wanted.append(Thread.id.in_(sorted(thread_ids)))
    if not wanted:
        return []
    return list(db.session.scalars(select(Thread).where(or_(*wanted))))


#: Our sent replies that the bounces of a batch cite, by (channel id, Message-ID).
_CitedReplies = dict[tuple[int, str], list[Message]]


def _bounced_replies(mails: Sequence[InboundMail], channels: list[Channel | None]) -> _CitedReplies:
    """The sent replies any bounce of the batch cites on its channel: one query for all,
    made before any mail is recorded (a query per bounce also flushed the threads opened
    before it, one flush each)."""
    return outbox.bounced_replies(
        {
            (channel.id, message_id)
            for mail, channel in zip(mails, channels, strict=True)
            if channel is not None
            and isinstance(mail.parsed, ParsedMessage)
            and mail.parsed.bounce is not None
            for message_id in mail.parsed.bounce.cited_ids
        }
    )


def _bounced_reply_thread(
    channel: Channel, parsed: ParsedMessage, bounced: _CitedReplies
) -> Thread | None:
    """For a bounce of our replies on this channel: each one is marked failed, and the
    bounce joins the thread of the first, where the agent sees why it failed."""
    if parsed.bounce is None or not parsed.bounce.cited_ids:
        return None
    replies = sorted(
        (
            reply
            for message_id in dict.fromkeys(parsed.bounce.cited_ids)
            for reply in bounced.get((channel.id, message_id), ())
        ),
        key=lambda reply: reply.id,
    )
    for reply in replies:
        outbox.mark_bounced(reply, parsed.bounce.reason)
    return replies[0].thread if replies else None


def _open_thread(channel: Channel, parsed: ParsedMessage) -> Thread:
    """A new conversation on `channel`, described by its first message."""
    thread = Thread(
        channel=channel,
        organisation_id=channel.organisation_id,
        subject=parsed.subject,
        normalized_subject=normalise_subject(parsed.subject),
        buyer_name=parsed.buyer_name[:200],
        buyer_address=sender_of(parsed)[:254],
        order_id=parsed.order_id,
        status=ThreadStatus.CLOSED if parsed.is_automatic else ThreadStatus.OPEN,
        # Amazon's automatic mail opens a closed thread: its retention counts from now.
        closed_at=utcnow() if parsed.is_automatic else None,
    )
    db.session.add(thread)
    return thread


# --- 5. record ---------------------------------------------------------------------------


def _note_inbound(
    parsed: ParsedMessage, *, thread: Thread, channel: Channel, now: datetime
) -> None:
    """What an inbound message changes on its thread and channel."""
    received = parsed.sent_at if parsed.sent_at and parsed.sent_at < now else now
    # Set even when nothing else on the thread changes (an older or automatic message):
    # its snippet may, and the live inbox watches this column.
    thread.updated_at = now
    if thread.last_message_at is None or received > thread.last_message_at:
        thread.last_message_at = received
    if not parsed.is_automatic:
        # A buyer wrote: the conversation needs an answer, even if it was closed.
        thread.status = ThreadStatus.OPEN
        thread.closed_at = None
        thread.snoozed_until = None
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


def _inbound_values(parsed: ParsedMessage, raw: bytes) -> dict:
    """The column values of a stored inbound message."""
    return {
        "direction": Direction.IN,
        "message_id": parsed.message_id[:998],
        "in_reply_to": parsed.in_reply_to[:998] if parsed.in_reply_to else None,
        "references": " ".join(parsed.references),
        "subject": parsed.subject,
        "from_name": parsed.from_name[:200],
        "from_address": parsed.from_address[:254],
        "to_addresses": ", ".join(parsed.to_addresses),
        "cc_addresses": ", ".join(parsed.cc_addresses),
        "order_id": parsed.order_id,
        "text_body": parsed.text,
        "html_body": parsed.html,
        "visible_text": parsed.buyer_text or parsed.visible_text,
        "body_cut": parsed.body_cut,
        "snippet": parsed.snippet[:300],
        "content_hash": parsed.content_hash,
        "raw": raw,
        "size": len(raw),
        "is_autoreply": parsed.is_autoreply,
        "is_bounce": parsed.is_bounce,
        "is_amazon_notification": parsed.is_amazon_notification,
        "is_seller_central_copy": parsed.is_seller_central_copy,
        "sent_at": parsed.sent_at,
    }


def _attachment_values(parsed: ParsedMessage) -> list[dict]:
    return [
        {
            "filename": att.filename,
            "content_type": att.content_type[:255],
            "size": att.size,
            "content_id": att.content_id[:255] if att.content_id else None,
            "is_inline": att.is_inline,
            "is_skipped": att.is_skipped,
            "data": att.data,
        }
        for att in parsed.attachments
    ]


@dataclass
class _Row:
    """A message row waiting to be written, with its attachments' values."""

    values: dict
    thread: Thread | None
    attachments: list[dict]
    #: Write it alone and keep its id (`id`), for a caller that shows the row.
    wants_id: bool = False
    id: int | None = None


class _Rows:
    """The message rows of one `store_inbound` call, written together by `write()`."""

    def __init__(self, *, mailbox: Mailbox | None, uidvalidity: int | None) -> None:
        self._source = {"mailbox_id": mailbox.id if mailbox else None, "uidvalidity": uidvalidity}
        self._pending: list[_Row] = []

    def _add(self, values: dict, thread: Thread | None, attachments: list[dict]) -> _Row:
        row = _Row(values, thread, attachments)
        self._pending.append(row)
        return row

    def add_inbound(
        self,
        parsed: ParsedMessage,
        raw: bytes,
        *,
        uid: int | None,
        channel: Channel,
        thread: Thread,
        created_at: datetime | None,
    ) -> _Row:
        """Routed mail in `thread`; updates the thread and the channel as it arrives."""
        values = {
            **_inbound_values(parsed, raw),
            "uid": uid,
            "channel_id": channel.id,
            "delivered_to": channel.helpdesk_address,
            **_arrival(created_at),
        }
        _note_inbound(parsed, thread=thread, channel=channel, now=utcnow())
        return self._add(values, thread, _attachment_values(parsed))

    def add_unrouted(
        self, parsed: ParsedMessage, raw: bytes, *, uid: int | None, created_at: datetime | None
    ) -> _Row:
        """Mail that matches no channel, kept for an admin to assign."""
        values = {**_inbound_values(parsed, raw), "uid": uid, "delivered_to": ""}
        log.info("Unrouted message %s to %s", parsed.message_id, parsed.delivery_addresses[:3])
        return self._add({**values, **_arrival(created_at)}, None, _attachment_values(parsed))

    def add_quarantined(
        self, raw: bytes, unparsed: Unparsed, *, uid: int | None, created_at: datetime | None
    ) -> _Row:
        """Mail the parser could not handle, kept raw with the reason."""
        values = {
            "direction": Direction.IN,
            "message_id": quarantine_message_id(unparsed.content_hash),
            "content_hash": unparsed.content_hash,
            "raw": raw,
            "size": len(raw),
            "quarantine_reason": unparsed.reason[:2000],
            "subject": "",
            "uid": uid,
            **_arrival(created_at),
        }
        log.warning("Quarantined message (%d bytes): %s", len(raw), unparsed.reason)
        return self._add(values, None, [])

    def write(self) -> None:
        """INSERT every row added (no commit); new threads (and deletions) are flushed first."""
        if not self._pending:
            return
        db.session.flush()
        # One executemany wants the same columns in every row: the others get their defaults.
        columns = set(self._source).union(*(row.values for row in self._pending))
        blank = {name: _MESSAGE_DEFAULTS.get(name) for name in columns | {"thread_id"}}
        if "created_at" in columns:
            blank["created_at"] = utcnow()
        messages, attachments = Message.__table__, Attachment.__table__
        rows = [
            (
                row,
                {
                    **blank,
                    **row.values,
                    **self._source,
                    "thread_id": row.thread.id if row.thread else None,
                },
            )
            for row in self._pending
        ]
        files: list[dict] = []
        postgresql = db.session.get_bind().dialect.name == "postgresql"
        if postgresql:
            # One INSERT for the whole batch: the search document's trigger runs once
            # per statement and so updates each thread once, not once per message
            # (migration d8f3b6a1c4e9). The ids are drawn first, in arrival order, so
            # that the attachments can go in one statement too.
            for (row, values), row_id in zip(rows, _new_ids(messages, len(rows)), strict=True):
                row.id = values["id"] = row_id
                files += ({**att, "message_id": row_id} for att in row.attachments)
            _insert_unnested(messages, [values for _, values in rows])
        else:
            _reckon_needs_answer([values for _, values in rows])
            run: list[dict] = []  # rows without attachments, in a row: one executemany
            for row, values in rows:
                if not row.attachments and not row.wants_id:
                    run.append(values)
                    continue
                # Attachments need their message's id. Asked for one row at a time,
                # since SQLite cannot return the ids of a multi-row INSERT in order, and
                # ids must follow arrival order (they order the messages stored at the
                # same moment).
                if run:
                    db.session.execute(insert(messages), run)
                    run = []
                row.id = db.session.scalar(insert(messages).returning(messages.c.id), values)
                files += ({**att, "message_id": row.id} for att in row.attachments)
            if run:
                db.session.execute(insert(messages), run)
        if files and postgresql:
            _insert_unnested(attachments, files)
        elif files:
            db.session.execute(insert(attachments), files)
        self._pending.clear()


def _new_ids(table: Table, count: int) -> list[int]:
    """`count` ids from the table's sequence, ascending (PostgreSQL)."""
    return sorted(
        db.session.scalars(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": count},
        )
    )


def _insert_unnested(table: Table, rows: list[dict]) -> None:
    """INSERT the rows (the same keys in each) as one statement on PostgreSQL: one array
    per column, unnested. SQLAlchemy's multi-row VALUES spells every row's values as
    placeholders, thousands for a batch, and psycopg parsed that text again for every
    statement (each batch's text differs): on a large poll that was the poll process's
    largest cost after waiting for the server. This text stays the same whatever the
    batch. The columns' own conversions (enums to their values, aware times to UTC)
    are applied here, as SQLAlchemy would.

    The arrays go in PostgreSQL's binary format (`_BinaryArray`): in the text format
    psycopg spells a bytea as hex and then escapes every element of the array with a
    regular expression, which for a batch of mail cost more than the INSERT itself and
    held each raw mail twice over as text."""
    dialect = db.session.get_bind().dialect
    # What SQLAlchemy's INSERT would add: the columns' Python-side defaults.
    defaults = {
        column.name: column.default.arg if column.default.is_scalar else column.default.arg(None)
        for column in table.columns
        if column.default is not None and column.name not in rows[0]
    }
    if defaults:
        rows = [{**defaults, **row} for row in rows]
    names = list(rows[0])
    params: dict[str, list] = {}
    arrays = []
    for n, name in enumerate(names):
        column = table.c[name]
        process = column.type.bind_processor(dialect)
        values = [row[name] for row in rows]
        params[f"c{n}"] = _BinaryArray(
            values if process is None else [process(value) for value in values]
        )
        arrays.append(f"CAST(:c{n} AS {column.type.compile(dialect=dialect)}[])")
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in names)
    statement = (
        f"INSERT INTO {quote(table.name)} ({columns})"  # noqa: S608 (the table's own names; values are parameters)
        f" SELECT * FROM unnest({', '.join(arrays)})"
    )
    _BinaryArray.register(db.session.connection().connection.driver_connection)
    db.session.execute(text(statement), params)


class _BinaryArray(list):
    """A list psycopg sends as an array in PostgreSQL's binary format: a list's default
    is the text format, and a statement's `%s` takes each value's default."""

    @classmethod
    def register(cls, connection) -> None:
        """Teach the psycopg `connection` (its own adapters, no other) to send these."""
        from psycopg.types.array import ListBinaryDumper  # PostgreSQL only

        connection.adapters.register_dumper(cls, ListBinaryDumper)


#: The flags that make an inbound message need no answer (migration e9c4a2f7b1d5).
_NO_ANSWER_FLAGS = (
    "is_internal_note",
    "is_autoreply",
    "is_bounce",
    "is_amazon_notification",
    "is_seller_central_copy",
)


def _reckon_needs_answer(rows: list[dict]) -> None:
    """Sets needs_answer and first_need in the rows about to be inserted, in order, on
    SQLite. Its trigger can only set them by updating the row once inserted, which
    rewrites the whole row, raw mail included (migration b8d4f6a2c1e7); given right,
    they are left alone. Given wrong (a row dated before its thread's earlier
    messages, say), the trigger still corrects them: this is a reckoning, not the
    definition. A new message has no "no response needed" mark yet."""
    for values in rows:
        values["needs_answer"] = (
            values.get("direction") == Direction.IN
            and values.get("quarantine_reason") is None
            and not any(values.get(flag) for flag in _NO_ANSWER_FLAGS)
        )
        values["first_need"] = False
    threads = {values["thread_id"] for values in rows if values["needs_answer"]} - {None}
    if not threads:
        return
    # A thread that has a message needing an answer has its first among them.
    has_first = set(
        db.session.scalars(
            select(Message.thread_id).where(Message.thread_id.in_(threads), Message.first_need)
        )
    )
    for values in rows:
        thread_id = values["thread_id"]
        if values["needs_answer"] and thread_id is not None and thread_id not in has_first:
            values["first_need"] = True
            has_first.add(thread_id)


def _arrival(created_at: datetime | None) -> dict:
    # A replacing row keeps the waiting row's arrival time: when it reached us, not
    # when an admin decided. Other rows take the column's default.
    return {} if created_at is None else {"created_at": created_at}


#: Column defaults of messages, for the columns one kind of row sets and another not.
_MESSAGE_DEFAULTS = {
    column.name: column.default.arg
    for column in Message.__table__.columns
    if column.default is not None and column.default.is_scalar
} | {"body_cut": False}  # only a server default (see the model): quarantined mail is not cut
