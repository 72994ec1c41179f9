"""Threads and messages: recording inbound mail, and the support team's actions on threads."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import exists, func, insert, or_, select

from portal.extensions import db
from portal.models import (
    Attachment,
    Channel,
    Direction,
    Mailbox,
    Message,
    Role,
    Tag,
    Thread,
    ThreadStatus,
    User,
    agent_assignments,
)
from portal.services.audit import record_event
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


def stored_uids(
    *, mailbox: Mailbox | None, uidvalidity: int | None, uids: Collection[int]
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
    return set(db.session.scalars(stmt))


def stored_contents(
    *, mailbox: Mailbox | None, keys: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (Message-ID, content hash) pairs of `keys` are already stored for this mailbox.

    One query for a whole batch; the same test as `is_duplicate` with an id and a hash.
    """
    if not keys:
        return set()
    mailbox_id = mailbox.id if mailbox is not None else None
    stmt = select(Message.message_id, Message.content_hash).where(
        Message.mailbox_id == mailbox_id,
        Message.message_id.in_(sorted({message_id for message_id, _ in keys})),
        Message.content_hash.in_(sorted({digest for _, digest in keys})),
    )
    # The two IN lists match a few pairs that are not asked for; keep the asked ones.
    return {(row.message_id, row.content_hash) for row in db.session.execute(stmt)} & set(keys)


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


def _quarantined_values(raw: bytes, reason: str, *, message_id: str, content_hash: str) -> dict:
    return {
        "direction": Direction.IN,
        "message_id": message_id,
        "content_hash": content_hash,
        "raw": raw,
        "size": len(raw),
        "quarantine_reason": reason[:2000],
        "subject": "",
    }


def _new_message(parsed: ParsedMessage, raw: bytes, **fields) -> Message:
    message = Message(**_inbound_values(parsed, raw), **fields)
    message.attachments.extend(Attachment(**values) for values in _attachment_values(parsed))
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
    """Store a routed inbound message in `thread` and update the thread and channel.

    One message at a time (an admin assigning unrouted mail); ingest stores whole
    batches with `InboundBatch`.
    """
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
    _note_inbound(parsed, thread=thread, channel=channel, now=now)
    db.session.flush()
    return message


def _note_inbound(
    parsed: ParsedMessage, *, thread: Thread, channel: Channel, now: datetime
) -> None:
    """What an inbound message changes on its thread and channel."""
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
        **_quarantined_values(raw, reason, message_id=message_id, content_hash=content_hash),
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        uid=uid,
    )
    db.session.add(message)
    db.session.flush()
    log.warning("Quarantined message (%d bytes): %s", len(raw), reason)
    return message


class InboundBatch:
    """The messages of one ingest batch, written together by `write()`.

    The same rows `record_inbound_message`, `record_unrouted_message` and
    `record_quarantined_message` add one by one, as multi-row INSERTs of plain values:
    the ORM's unit of work for each message and attachment was a third of the ingest
    process's time (bench/README.md). Threads and channels stay ORM objects (few per
    batch, and changed as mail arrives); the session writes them first.
    """

    def __init__(self, *, mailbox: Mailbox | None, uidvalidity: int | None) -> None:
        self._source = {"mailbox_id": mailbox.id if mailbox else None, "uidvalidity": uidvalidity}
        #: (column values, thread or None, attachments' column values), in arrival order
        self._pending: list[tuple[dict, Thread | None, list[dict]]] = []

    def add_inbound(
        self,
        parsed: ParsedMessage,
        raw: bytes,
        *,
        uid: int | None,
        channel: Channel,
        thread: Thread,
    ) -> str:
        """Record routed mail in `thread` (see record_inbound_message); its stored Message-ID."""
        values = {
            **_inbound_values(parsed, raw),
            "uid": uid,
            "channel_id": channel.id,
            "delivered_to": channel.helpdesk_address,
        }
        self._pending.append((values, thread, _attachment_values(parsed)))
        _note_inbound(parsed, thread=thread, channel=channel, now=utcnow())
        return values["message_id"]

    def add_unrouted(self, parsed: ParsedMessage, raw: bytes, *, uid: int | None) -> None:
        values = {**_inbound_values(parsed, raw), "uid": uid, "delivered_to": ""}
        self._pending.append((values, None, _attachment_values(parsed)))
        log.info("Unrouted message %s to %s", parsed.message_id, parsed.delivery_addresses[:3])

    def add_quarantined(
        self, raw: bytes, reason: str, *, uid: int | None, message_id: str, content_hash: str
    ) -> None:
        values = _quarantined_values(raw, reason, message_id=message_id, content_hash=content_hash)
        self._pending.append(({**values, "uid": uid}, None, []))
        log.warning("Quarantined message (%d bytes): %s", len(raw), reason)

    def write(self) -> None:
        """INSERT everything added (no commit); new threads get their ids first."""
        if not self._pending:
            return
        db.session.flush()
        # One executemany wants the same columns in every row: the others get their defaults.
        columns = set(self._source).union(*(values for values, _, _ in self._pending))
        blank = {name: _MESSAGE_DEFAULTS.get(name) for name in columns | {"thread_id"}}
        messages, attachments = Message.__table__, Attachment.__table__
        run: list[dict] = []  # rows without attachments, in a row: one executemany
        found: list[dict] = []
        for values, thread, files in self._pending:
            row = {**blank, **values, **self._source, "thread_id": thread.id if thread else None}
            if not files:
                run.append(row)
                continue
            # Attachments need their message's id. Asked for one row at a time, since
            # SQLite cannot return the ids of a multi-row INSERT in order, and ids must
            # follow arrival order (they order the messages stored at the same moment).
            if run:
                db.session.execute(insert(messages), run)
                run = []
            message_id = db.session.scalar(insert(messages).returning(messages.c.id), row)
            found += ({**values, "message_id": message_id} for values in files)
        if run:
            db.session.execute(insert(messages), run)
        if found:
            db.session.execute(insert(attachments), found)
        self._pending.clear()


#: Column defaults of messages, for the columns one kind of row sets and another not.
_MESSAGE_DEFAULTS = {
    column.name: column.default.arg
    for column in Message.__table__.columns
    if column.default is not None and column.default.is_scalar
}


# --- the support team's actions on a thread -------------------------------------------

#: Amazon's response-time metric: 24 hours, weekends and holidays included.
RESPONSE_WINDOW = timedelta(hours=24)
_ASIN_RE = re.compile(r"\bASIN\s*[:：]?\s*([A-Z0-9]{10})\b")


class ThreadActionError(ValueError):
    """An action on a thread that breaks a rule; the message is shown to the user."""


def response_deadline(thread: Thread) -> datetime | None:
    """When the answer is due: 24 h after the oldest unanswered buyer message."""
    if thread.awaiting_reply_since is None or thread.status == ThreadStatus.CLOSED:
        return None
    return thread.awaiting_reply_since + RESPONSE_WINDOW


def asins_in(text: str) -> list[str]:
    """ASINs named in Amazon's item lines, in order, without repeats."""
    return list(dict.fromkeys(_ASIN_RE.findall(text or "")))


def set_thread_status(thread: Thread, status: ThreadStatus, *, actor: User) -> bool:
    """Open, set pending or close a thread; returns False when nothing changed."""
    if thread.status == status:
        return False
    previous = thread.status
    thread.status = status
    record_event(
        "thread.status_changed",
        actor=actor,
        organisation_id=thread.organisation_id,
        target=thread,
        details={"from": previous.value, "to": status.value},
    )
    db.session.flush()
    return True


def assignable_users(thread: Thread) -> list[User]:
    """Who may be assigned: active agents of the thread's organisation, and admins."""
    agents = select(agent_assignments.c.user_id).where(
        agent_assignments.c.organisation_id == thread.organisation_id
    )
    stmt = (
        select(User)
        .where(
            User.is_active.is_(True),
            or_(User.role == Role.ADMIN, (User.role == Role.AGENT) & User.id.in_(agents)),
        )
        .order_by(func.lower(User.name), User.email)
    )
    return list(db.session.scalars(stmt))


def assign_thread(thread: Thread, assignee: User | None, *, actor: User) -> bool:
    """Give the thread to `assignee` (None: unassign); only people who may see it."""
    if assignee is not None and assignee not in assignable_users(thread):
        raise ThreadActionError(f"{assignee.display_name} does not work for this seller.")
    if thread.assignee_id == (assignee.id if assignee else None):
        return False
    previous = thread.assignee_id
    thread.assignee = assignee
    record_event(
        "thread.assigned",
        actor=actor,
        organisation_id=thread.organisation_id,
        target=thread,
        details={"from": previous, "to": assignee.id if assignee else None},
    )
    db.session.flush()
    return True


def clean_tag_name(raw: str) -> str:
    name = " ".join((raw or "").split()).lower()
    if not name:
        raise ThreadActionError("Enter a tag.")
    if len(name) > 40:
        raise ThreadActionError("A tag has at most 40 characters.")
    return name


def add_tag(thread: Thread, name: str, *, actor: User) -> Tag:
    """Tag the thread, creating the organisation's tag on first use."""
    name = clean_tag_name(name)
    tag = db.session.scalar(
        select(Tag).where(Tag.organisation_id == thread.organisation_id, Tag.name == name)
    )
    if tag is None:
        tag = Tag(organisation_id=thread.organisation_id, name=name)
        db.session.add(tag)
    if tag not in thread.tags:
        thread.tags.append(tag)
        record_event(
            "thread.tagged",
            actor=actor,
            organisation_id=thread.organisation_id,
            target=thread,
            details={"tag": name},
        )
    db.session.flush()
    return tag


def remove_tag(thread: Thread, tag: Tag, *, actor: User) -> None:
    if tag in thread.tags:
        thread.tags.remove(tag)
        record_event(
            "thread.untagged",
            actor=actor,
            organisation_id=thread.organisation_id,
            target=thread,
            details={"tag": tag.name},
        )
        db.session.flush()


def add_internal_note(thread: Thread, text: str, *, actor: User) -> Message:
    """A note for the team, shown in the thread and never e-mailed."""
    text = (text or "").strip()
    if not text:
        raise ThreadActionError("Write the note first.")
    digest = hashlib.sha256(f"{thread.id}:{actor.id}:{utcnow().isoformat()}:{text}".encode())
    note = Message(
        thread=thread,
        channel_id=thread.channel_id,
        direction=Direction.OUT,
        is_internal_note=True,
        message_id=f"<note-{digest.hexdigest()[:32]}@sellerdesk.invalid>",
        content_hash=digest.hexdigest(),
        subject="",
        from_name=actor.display_name[:200],
        from_address=actor.email,
        text_body=text,
        visible_text=text,
        snippet=" ".join(text.split())[:300],
        author_id=actor.id,
    )
    db.session.add(note)
    record_event(
        "thread.note_added",
        actor=actor,
        organisation_id=thread.organisation_id,
        target=thread,
        details={"length": len(text)},
    )
    db.session.flush()
    return note


def other_threads_of_buyer(thread: Thread, *, limit: int = 10) -> list[Thread]:
    """The same buyer's other conversations on this channel, newest first."""
    if not thread.buyer_address:
        return []
    stmt = (
        select(Thread)
        .where(
            Thread.channel_id == thread.channel_id,
            Thread.buyer_address == thread.buyer_address,
            Thread.id != thread.id,
        )
        .order_by(Thread.last_message_at.desc())
        .limit(limit)
    )
    return list(db.session.scalars(stmt))
