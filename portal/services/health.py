"""Ingestion health for admins: per-mailbox poll figures and the "ingestion stalled" check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Direction, Mailbox, Message, SendStatus
from portal.services.mailbox_config import is_from_environment, is_unverified
from portal.services.mailboxes import polled
from portal.sqltypes import utcnow

#: Ingestion counts as stalled when no enabled mailbox succeeded for this many poll intervals.
STALE_POLLS = 3
RECENT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class MailboxHealth:
    mailbox: Mailbox
    #: The MAIL_SOURCE mailbox: configured by the environment, not in the portal.
    is_from_environment: bool
    #: Messages stored from this mailbox in the last 24 hours (by when we stored them).
    fetched_24h: int
    #: The worker holding the mailbox's lease right now, or None when it is free.
    lease_holder: str | None

    @property
    def is_failing(self) -> bool:
        return self.mailbox.consecutive_failures > 0

    @property
    def is_unverified(self) -> bool:
        """TLS without certificate checks (`?verify=0`): anyone on the path can read it."""
        return is_unverified(self.mailbox)


@dataclass(frozen=True)
class Staleness:
    """Ingestion is stalled: nothing succeeded since `last_success_at` (None: never)."""

    last_success_at: datetime | None
    threshold: timedelta
    has_enabled_mailbox: bool


@dataclass(frozen=True)
class Attention:
    """Mail waiting for an admin's decision, for the health page."""

    unrouted: int
    quarantined: int
    outbox_pending: int
    outbox_failed: int


def list_mailbox_health(*, now: datetime | None = None) -> list[MailboxHealth]:
    """Every mailbox (enabled first, then by name) with its poll figures."""
    now = now or utcnow()
    counts = dict(
        db.session.execute(
            select(Message.mailbox_id, func.count())
            .where(Message.mailbox_id.is_not(None), Message.created_at >= now - RECENT_WINDOW)
            .group_by(Message.mailbox_id)
        ).all()
    )
    mailboxes = db.session.scalars(
        select(Mailbox).order_by(Mailbox.is_enabled.desc(), Mailbox.name)
    ).all()
    return [
        MailboxHealth(
            mailbox=mailbox,
            is_from_environment=is_from_environment(mailbox),
            fetched_24h=counts.get(mailbox.id, 0),
            lease_holder=(
                mailbox.lease_owner
                if mailbox.lease_owner
                and mailbox.lease_expires_at is not None
                and mailbox.lease_expires_at > now
                else None
            ),
        )
        for mailbox in mailboxes
    ]


def ingestion_staleness(*, poll_seconds: int, now: datetime | None = None) -> Staleness | None:
    """None while some enabled mailbox polled successfully within STALE_POLLS intervals."""
    now = now or utcnow()
    threshold = timedelta(seconds=poll_seconds) * STALE_POLLS
    enabled, last_success = db.session.execute(
        select(func.count(Mailbox.id), func.max(Mailbox.last_success_at)).where(
            Mailbox.is_enabled, polled()
        )
    ).one()
    if last_success is not None and now - last_success <= threshold:
        return None
    return Staleness(
        last_success_at=last_success, threshold=threshold, has_enabled_mailbox=enabled > 0
    )


def attention_counts() -> Attention:
    """How many unrouted and quarantined messages and stuck replies there are."""
    inbound = select(func.count(Message.id)).where(
        Message.direction == Direction.IN,
        Message.channel_id.is_(None),
        Message.discarded_reason.is_(None),
    )
    outbox = dict(
        db.session.execute(
            select(Message.send_status, func.count(Message.id))
            .where(
                Message.direction == Direction.OUT,
                Message.send_status.in_([SendStatus.PENDING, SendStatus.FAILED]),
            )
            .group_by(Message.send_status)
        ).all()
    )
    return Attention(
        unrouted=db.session.scalar(inbound.where(Message.quarantine_reason.is_(None))) or 0,
        quarantined=db.session.scalar(inbound.where(Message.quarantine_reason.is_not(None))) or 0,
        outbox_pending=outbox.get(SendStatus.PENDING, 0),
        outbox_failed=outbox.get(SendStatus.FAILED, 0),
    )
