"""Conversations: threads, their messages (inbound and outbound) and attachments."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from portal.extensions import db
from portal.sqltypes import UTCDateTime, str_enum, utcnow

if TYPE_CHECKING:
    from portal.models.channels import Channel
    from portal.models.mailboxes import Mailbox
    from portal.models.users import User


class ThreadStatus(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    CLOSED = "closed"


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


class SendStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Tags on threads, per organisation.
thread_tags = Table(
    "thread_tags",
    db.metadata,
    Column("thread_id", ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Tag(db.Model):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(40))

    def __repr__(self) -> str:
        return f"<Tag {self.id} {self.name!r}>"


#: Joins a thread's tag names in threads.tag_names (the triggers of migration
#: c3d9a5f1e7b2); str.split() treats it as whitespace, so clean_tag_name
#: (services/threads.py) never lets it into a name.
TAG_NAMES_SEPARATOR = "\x1f"


class Thread(db.Model):
    __tablename__ = "threads"
    __table_args__ = (
        Index("ix_threads_org_activity", "organisation_id", "last_message_at", "id"),
        # The inbox's default order (newest activity first) and its keyset pagination.
        Index("ix_threads_activity", "last_message_at", "id"),
        Index("ix_threads_status_activity", "status", "last_message_at", "id"),
        # The inbox's urgent sort with a status filter: waiting threads by deadline,
        # the others by id (portal.services.inbox.paging.urgent_ids).
        Index("ix_threads_status_awaiting", "status", "awaiting_reply_since", "id"),
        Index("ix_threads_channel_buyer", "channel_id", "buyer_address", "order_id"),
        # The live inbox's change check: the newest change among an organisation's
        # threads (portal.services.inbox.live), and among all for admins.
        Index("ix_threads_org_updated", "organisation_id", "updated_at"),
        Index("ix_threads_updated", "updated_at"),
        # An organisation's open threads, and those waiting for an answer by deadline,
        # from the index alone: the dashboard's counts per organisation
        # (services/organisations.py) and its answers due (services/dashboard.py).
        Index(
            "ix_threads_org_status_awaiting", "organisation_id", "status", "awaiting_reply_since"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="RESTRICT"))
    # Copied from the channel so every tenant-scoped query is one indexed filter.
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    subject: Mapped[str] = mapped_column(Text, default="")
    normalized_subject: Mapped[str] = mapped_column(String(500), default="")
    buyer_name: Mapped[str] = mapped_column(String(200), default="")
    #: The buyer's relay alias (…@marketplace.amazon.<tld>) or plain sender address.
    buyer_address: Mapped[str] = mapped_column(String(254), default="")
    order_id: Mapped[str | None] = mapped_column(String(40), index=True)
    status: Mapped[ThreadStatus] = mapped_column(
        str_enum(ThreadStatus, 16), default=ThreadStatus.OPEN, index=True
    )
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the row last changed (any ORM UPDATE; ingest sets it for every message it
    #: stores): what the live inbox watches (portal.services.inbox.live).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    #: Oldest buyer message not yet answered: the 24-hour clock runs from here.
    awaiting_reply_since: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    #: The awaiting_reply_since whose coming deadline the assignee was warned of: one
    #: warning per buyer message waiting (portal/services/alerts.py).
    deadline_alerted_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When someone other than the assignee last gave them the thread: their browser
    #: notification (portal/services/notifications.py). None after assigning oneself.
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A pending thread's snooze: the worker opens it again then (or the buyer, earlier).
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    #: When the thread was last closed (None while open or pending): the retention of
    #: its buyer data counts from here (portal/services/retention.py).
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    #: When its buyer data was erased (retention or a buyer's erasure): a tombstone
    #: keeping ids, times and statuses for the reports, no content.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # For the inbox's rows, kept by database triggers (migration c3d9a5f1e7b2) and never
    # written here: the newest snippet of a message that is not an internal note, and
    # the tags' names joined by U+001F. Deferred: nothing else reads them.
    snippet: Mapped[str | None] = deferred(mapped_column(String(300)))
    tag_names: Mapped[str | None] = deferred(mapped_column(Text))

    channel: Mapped[Channel] = relationship()
    assignee: Mapped[User | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=thread_tags, order_by="Tag.name")
    messages: Mapped[list[Message]] = relationship(
        back_populates="thread", order_by="(Message.created_at, Message.id)"
    )

    def __repr__(self) -> str:
        return f"<Thread {self.id} {self.subject!r}>"


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        # The same mail seen twice in one mailbox (UID under the same UIDVALIDITY).
        UniqueConstraint("mailbox_id", "uidvalidity", "uid"),
        # The same bytes delivered twice; different mail sharing a Message-ID differs here.
        UniqueConstraint("mailbox_id", "message_id", "content_hash"),
        Index("ix_messages_message_id", "message_id"),
        # Threading looks up In-Reply-To/References within one channel; without this,
        # SQLite scans the channel's messages through the channel_id index instead.
        Index("ix_messages_channel_message_id", "channel_id", "message_id"),
        # What each mailbox stored per hour and day (the admin dashboard, the health page).
        Index("ix_messages_mailbox_created", "mailbox_id", "created_at"),
        # A channel's buyer messages per day (the seller dashboard's 7-day volume), read
        # from the index alone.
        Index("ix_messages_channel_created", "channel_id", "direction", "created_at"),
        # The reports' periods (portal/services/reports.py): a range, not every message.
        Index("ix_messages_created_at", "created_at"),
        # The reports (and the backlog): the messages needing an answer, and each
        # thread's first of them, by channel and arrival with their thread and answer,
        # read from the index alone (the flag in it too: else SQLite reads it from the
        # table); the closed threads' first messages by thread. Partial: SQLite uses
        # one only when the query repeats its WHERE term, as reports.py's `== true()`
        # does.
        Index(
            "ix_messages_needs_answer",
            "channel_id",
            "created_at",
            "thread_id",
            "answer_id",
            "answered_at",
            "needs_answer",
            sqlite_where=text("needs_answer = 1"),
            postgresql_where=text("needs_answer"),
        ),
        Index(
            "ix_messages_first_need",
            "channel_id",
            "created_at",
            "thread_id",
            "answer_id",
            "answered_at",
            "first_need",
            sqlite_where=text("first_need = 1"),
            postgresql_where=text("first_need"),
        ),
        Index(
            "ix_messages_thread_first_need",
            "thread_id",
            "created_at",
            "first_need",
            sqlite_where=text("first_need = 1"),
            postgresql_where=text("first_need"),
        ),
        # A thread's messages in order; it also holds what the trigger that keeps
        # threads.snippet reads, which through the table means walking past the bodies.
        Index(
            "ix_messages_thread_snippet",
            "thread_id",
            "created_at",
            "id",
            "is_internal_note",
            "snippet",
        ),
    )

    # needs_answer and first_need have server defaults; not fetched back on INSERT.
    __mapper_args__ = {"eager_defaults": False}

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    #: None while unrouted or quarantined; once stored on a thread, the thread's channel
    #: (the reports read a period's messages per channel through this column).
    channel_id: Mapped[int | None] = mapped_column(
        ForeignKey("channels.id", ondelete="RESTRICT"), index=True
    )
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id", ondelete="SET NULL"))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    direction: Mapped[Direction] = mapped_column(str_enum(Direction, 8))

    message_id: Mapped[str] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    from_address: Mapped[str] = mapped_column(String(254), default="")
    to_addresses: Mapped[str] = mapped_column(Text, default="")
    cc_addresses: Mapped[str] = mapped_column(Text, default="")
    #: The helpdesk address the mail was delivered to, as routed.
    delivered_to: Mapped[str] = mapped_column(String(254), default="")
    order_id: Mapped[str | None] = mapped_column(String(40))
    text_body: Mapped[str] = deferred(mapped_column(Text, default=""))
    html_body: Mapped[str | None] = deferred(mapped_column(Text))
    #: Text with quoted history removed, for the thread view.
    visible_text: Mapped[str] = deferred(mapped_column(Text, default=""))
    snippet: Mapped[str] = mapped_column(String(300), default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    #: The message exactly as received or sent, so nothing is lost to a parser bug.
    raw: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    size: Mapped[int] = mapped_column(Integer, default=0)
    #: Whether the parser kept only the start of its text or HTML body (MAX_BODY_CHARS
    #: in ingest/mail/parse.py); the whole of it is in `raw` while that is kept. Only a
    #: server default, as for needs_answer below.
    body_cut: Mapped[bool] = mapped_column(server_default=false())

    is_autoreply: Mapped[bool] = mapped_column(default=False)
    is_bounce: Mapped[bool] = mapped_column(default=False)
    is_amazon_notification: Mapped[bool] = mapped_column(default=False)
    is_seller_central_copy: Mapped[bool] = mapped_column(default=False)
    is_internal_note: Mapped[bool] = mapped_column(default=False)
    #: Set when the parser could not handle the mail; it is kept raw for an admin.
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    #: Set when an admin discards an unrouted message (kept, flagged).
    discarded_reason: Mapped[str | None] = mapped_column(Text)

    # Outbound delivery (outbox); None for inbound mail.
    send_status: Mapped[SendStatus | None] = mapped_column(str_enum(SendStatus, 16), index=True)
    send_attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set while one sender holds the reply (a lease), so two senders never both send it.
    send_claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_send_error: Mapped[str | None] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    #: When the mail says it was sent (Date header) or we sent it.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When we stored it.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: A buyer message's answer: the first reply sent on its thread at or after it
    #: (portal/services/reports.py defines it), and when that reply went out. Kept by
    #: database triggers (migration b7e2c4a9d1f3) through every send, bounce, insert,
    #: move and deletion; None while unanswered, and on replies. (No foreign key: see
    #: the migration; the triggers keep it pointing at a reply of the same thread.)
    answer_id: Mapped[int | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Whether it needs an answer (portal/services/reports.py defines it: a buyer
    #: message, not automatic mail, a bounce, a notification, a Seller Central copy,
    #: an internal note, quarantined or marked "no response needed"), and whether it is
    #: the first such message of its thread (by created_at, then id). Kept by database
    #: triggers (migration e9c4a2f7b1d5) through every insert, flag change, move,
    #: re-dating, deletion and no-response mark; the application never writes them.
    #: Only a server default: an INSERT leaves them out, so it also works on an older
    #: schema (tests that migrate down insert messages), and eager_defaults off keeps
    #: them out of its RETURNING too; they load when read.
    needs_answer: Mapped[bool] = mapped_column(server_default=false())
    first_need: Mapped[bool] = mapped_column(server_default=false())
    #: When its content was erased: the row stays as a tombstone whose dedup keys
    #: (mailbox, UIDVALIDITY and UID; Message-ID and content hash) keep ingest from
    #: storing the same mail again.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    thread: Mapped[Thread | None] = relationship(back_populates="messages")
    channel: Mapped[Channel | None] = relationship()
    mailbox: Mapped[Mailbox | None] = relationship()
    author: Mapped[User | None] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="Attachment.id"
    )

    @property
    def is_unrouted(self) -> bool:
        return (
            self.direction == Direction.IN
            and self.channel_id is None
            and self.quarantine_reason is None
        )

    def __repr__(self) -> str:
        return f"<Message {self.id} {self.direction} {self.message_id}>"


class NoResponseMark(db.Model):
    """A buyer message marked "no response needed": Sellerdesk's 24-hour clock stops for
    it (Amazon's only when the seller marks it in Seller Central too); reports count
    these rows, so who and when are kept."""

    __tablename__ = "no_response_marks"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), index=True)
    marked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    marked_by: Mapped[User | None] = relationship()


class Attachment(db.Model):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255), default="")
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer, default=0)
    #: Content-ID for inline parts referenced as cid: from the HTML body.
    content_id: Mapped[str | None] = mapped_column(String(255))
    is_inline: Mapped[bool] = mapped_column(default=False)
    #: Over the size limit: recorded but its bytes not kept.
    is_skipped: Mapped[bool] = mapped_column(default=False)
    data: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))

    message: Mapped[Message] = relationship(back_populates="attachments")


class CannedReply(db.Model):
    """A reusable answer with placeholders; global when `organisation_id` is None."""

    __tablename__ = "canned_replies"
    __table_args__ = (UniqueConstraint("organisation_id", "title"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<CannedReply {self.id} {self.title!r}>"
