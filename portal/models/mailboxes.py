"""Mailboxes that ingestion reads, with their checkpoint, health and lease."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.sqltypes import UTCDateTime, utcnow


class Mailbox(db.Model):
    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    #: Where to read: `imap://user@host:port/FOLDER`, `imaps://…` or `maildir:PATH`,
    #: without the password, which is kept encrypted beside it.
    source_url: Mapped[str] = mapped_column(String(500))
    password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: Move processed mail here instead of only flagging it \Seen (IMAP only).
    processed_folder: Mapped[str | None] = mapped_column(String(200))
    is_enabled: Mapped[bool] = mapped_column(default=True)

    # Checkpoint: everything up to last_uid under this UIDVALIDITY is committed.
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)

    # Health, shown to admins.
    last_poll_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_poll_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_poll_summary: Mapped[str] = mapped_column(String(200), default="")
    #: Messages fetched by the last poll, and those still waiting on the server after it.
    last_fetched: Mapped[int] = mapped_column(default=0)
    backlog: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    #: When the admins were mailed that it keeps failing; cleared by a success.
    failure_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Lease: only the worker named here may process this mailbox until it expires.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # HTTP ingress (`http-ingress://…` mailboxes, services/http_ingress.py): the SHA-256
    # of the path token providers post to, the signing key (encrypted with TOKEN_KEY),
    # and when the last delivery was stored.
    ingress_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    signing_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_delivery_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: SES mailboxes: the SNS topic they take mail from, pinned by the first verified
    #: message (normally the subscription's confirmation). SNS's signature proves only
    #: that SNS sent a message, and anyone who learns the path token can subscribe a
    #: topic of their own; messages from any other topic are refused. Cleared by an
    #: admin (`mailboxes unpin-topic`) to move to a new topic.
    sns_topic_arn: Mapped[str | None] = mapped_column(String(500))

    # OAuth2 (XOAUTH2): set by "Connect Microsoft 365" / "Connect Google"; then IMAP (and
    # SMTP) log in with an access token instead of the password. Tokens under TOKEN_KEY.
    oauth_provider: Mapped[str | None] = mapped_column(String(20))
    oauth_refresh_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    oauth_access_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    oauth_access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the provider refused the stored grant (reconnect needed); cleared by a refresh.
    oauth_refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Where this mailbox's account sends mail, for the channels it sends for
    #: (SendingMailbox): `smtp+starttls://user@host:587`, no password (it
    #: uses the mailbox's password, or XOAUTH2 when connected).
    smtp_url: Mapped[str | None] = mapped_column(String(500))

    def __repr__(self) -> str:
        return f"<Mailbox {self.id} {self.name!r}>"


class InboundReplay(db.Model):
    """A signed HTTP delivery already taken (its signature, Mailgun token or SNS
    MessageId), kept for the freshness window so that a replay is refused by every
    gunicorn worker; written in the transaction that stores the delivered mail."""

    __tablename__ = "inbound_replays"
    __table_args__ = (UniqueConstraint("mailbox_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class MailboxOAuthState(db.Model):
    """A started "Connect …" of a mailbox: its `state` works once, in the sign-in that began it.

    The PKCE verifier is not stored: it is derived from the state and SECRET_KEY.
    """

    __tablename__ = "mailbox_oauth_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_session_id: Mapped[int] = mapped_column(
        ForeignKey("user_sessions.id", ondelete="CASCADE"), index=True
    )
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20))
    #: SHA-256 (hex) of the state sent to the provider.
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SendingMailbox(db.Model):
    """This channel's replies go out through this mailbox's SMTP (no row: SMTP_URL)."""

    __tablename__ = "sending_mailboxes"

    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )


class MailboxRemoval(db.Model):
    """Mail erased here that its source mailbox still holds, for the worker to remove
    there on its next connection (services/buyer_data.py, ingest/pipeline.py).

    Only the keys that find it again: the UID under its UIDVALIDITY (IMAP), and the
    Message-ID and content hash (a Maildir file, a processed folder, a reset UIDVALIDITY).
    The row goes once the mailbox no longer holds the mail.
    """

    __tablename__ = "mailbox_removals"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[str] = mapped_column(String(998))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<MailboxRemoval {self.id} mailbox={self.mailbox_id} uid={self.uid}>"


class MailboxPollHour(db.Model):
    """One mailbox's polls in one UTC hour, written by the worker after each poll.

    Mailbox rows keep only the latest outcome; the admin dashboard charts failures
    over the last 7 days from these. Rows older than POLL_HOURS_KEPT are pruned as
    new ones are written.
    """

    __tablename__ = "mailbox_poll_hours"

    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True
    )
    #: The start of the UTC hour.
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    polls: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
