"""Offboarding: an admin closes an organisation, and its buyer data goes after a grace period.

Closing (`close_organisation`) at once disables every channel of the organisation (mail
to them is no longer routed into its inbox: it waits as unrouted mail for an admin,
services/channels.py), deletes the Amazon authorisations on file (MWS tokens and SP-API
refresh tokens), revokes open invitations, and signs out and disables its users; a
closed organisation's users cannot sign in (services/users.py). Until `erase_after`
(OFFBOARDING_GRACE_DAYS later) an admin may reopen it: the users and channels closing
turned off come back (the channels awaiting a new authorisation). After it, the
worker (ingest/retention.py) erases all its buyer data in batches with the erasure's
own primitives (services/buyer_data.py), queues its fetched mail for removal from the
source mailboxes, and records when it is done. Every step is audited.

The caller commits, as everywhere in services; the worker after each batch.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select

from portal.extensions import db
from portal.models import (
    Channel,
    ChannelStatus,
    Invitation,
    Message,
    Order,
    Organisation,
    Thread,
    User,
)
from portal.services import buyer_data
from portal.services.audit import record_event
from portal.services.channels import set_channel_status
from portal.services.sessions import end_sessions

log = logging.getLogger(__name__)

#: The reason a closed organisation's channels show.
CLOSED_REASON = "The organisation is closed."

#: Most grace days an admin may give on closing (ten years).
MAX_GRACE_DAYS = 3650


class OffboardingError(ValueError):
    """A closing or reopening the rules refuse; the message says why."""


@dataclass
class Closure:
    """What closing an organisation did."""

    channels_disabled: list[int] = field(default_factory=list)
    authorisations_deleted: int = 0
    invitations_revoked: int = 0
    users_disabled: list[int] = field(default_factory=list)
    sessions_ended: int = 0
    erase_after: datetime | None = None


def close_organisation(
    organisation: Organisation, *, actor: User | None, now: datetime, grace_days: int
) -> Closure:
    """Close `organisation` (see the module's docstring); its data goes after `grace_days`."""
    if organisation.is_closed:
        raise OffboardingError(f"{organisation.name} is already closed.")
    if not 0 <= grace_days <= MAX_GRACE_DAYS:
        raise OffboardingError(f"The grace period is 0 to {MAX_GRACE_DAYS} days.")
    done = Closure(erase_after=now + timedelta(days=grace_days))
    channels = db.session.scalars(
        select(Channel).where(Channel.organisation_id == organisation.id).order_by(Channel.id)
    ).all()
    for channel in channels:
        if channel.status != ChannelStatus.DISABLED:
            set_channel_status(channel, ChannelStatus.DISABLED, reason=CLOSED_REASON, actor=actor)
            done.channels_disabled.append(channel.id)
        if channel.credential is not None:
            record_event(
                "channel.authorisation_deleted",
                actor=actor,
                organisation_id=organisation.id,
                target=channel,
                details={"kind": channel.credential.kind.value, "reason": "organisation closed"},
            )
            channel.credential = None
            done.authorisations_deleted += 1
        channel.is_amazon_authorisation_needed = False
    for invitation in db.session.scalars(
        select(Invitation).where(
            Invitation.organisation_id == organisation.id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    ):
        invitation.revoked_at = now
        done.invitations_revoked += 1
    users = db.session.scalars(
        select(User).where(User.organisation_id == organisation.id).order_by(User.id)
    ).all()
    for user in users:
        done.sessions_ended += end_sessions(user)
        if user.is_active:
            user.is_active = False
            done.users_disabled.append(user.id)
            record_event(
                "user.deactivated",
                actor=actor,
                organisation_id=organisation.id,
                target=user,
                details={"email": user.email, "reason": "organisation closed"},
            )
    organisation.closed_at = now
    organisation.erase_after = done.erase_after
    organisation.data_erased_at = None
    db.session.flush()
    record_event(
        "organisation.closed",
        actor=actor,
        organisation_id=organisation.id,
        target=organisation,
        details={
            **asdict(done),
            "erase_after": done.erase_after.isoformat(),
            "grace_days": grace_days,
        },
    )
    log.info(
        "Organisation %s closed: %d channels disabled, %d authorisations deleted, "
        "%d users disabled; buyer data erased after %s",
        organisation.id,
        len(done.channels_disabled),
        done.authorisations_deleted,
        len(done.users_disabled),
        done.erase_after.isoformat(),
    )
    return done


def _last_closure(organisation: Organisation) -> dict:
    from portal.models import AuditEvent

    event = db.session.scalar(
        select(AuditEvent)
        .where(
            AuditEvent.kind == "organisation.closed", AuditEvent.organisation_id == organisation.id
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    return dict(event.details or {}) if event is not None else {}


def reopen_organisation(organisation: Organisation, *, actor: User | None, now: datetime) -> None:
    """Undo a closing within its grace period: the users and channels closing turned off
    come back (channels await a new Amazon authorisation: it was deleted)."""
    if not organisation.is_closed:
        raise OffboardingError(f"{organisation.name} is not closed.")
    if organisation.data_erased_at is not None or (
        organisation.erase_after is not None and now >= organisation.erase_after
    ):
        raise OffboardingError(
            f"The grace period of {organisation.name} is over: its data is being erased "
            "or is erased, so it cannot be reopened."
        )
    closure = _last_closure(organisation)
    for channel_id in closure.get("channels_disabled", []):
        channel = db.session.get(Channel, channel_id)
        if channel is not None and channel.status == ChannelStatus.DISABLED:
            set_channel_status(channel, ChannelStatus.AWAITING_TOKEN, reason="", actor=actor)
    for user_id in closure.get("users_disabled", []):
        user = db.session.get(User, user_id)
        if user is not None and user.organisation_id == organisation.id and not user.is_active:
            user.is_active = True
            record_event(
                "user.reactivated",
                actor=actor,
                organisation_id=organisation.id,
                target=user,
                details={"email": user.email, "reason": "organisation reopened"},
            )
    organisation.closed_at = None
    organisation.erase_after = None
    db.session.flush()
    record_event(
        "organisation.reopened", actor=actor, organisation_id=organisation.id, target=organisation
    )


# --- the worker's erasure after the grace period ---------------------------------------


def due_for_erasure(*, now: datetime) -> list[Organisation]:
    """Closed organisations whose grace period is over and whose data is not erased yet."""
    return list(
        db.session.scalars(
            select(Organisation)
            .where(
                Organisation.closed_at.is_not(None),
                Organisation.erase_after <= now,
                Organisation.data_erased_at.is_(None),
            )
            .order_by(Organisation.id)
        )
    )


def _unrouted_to_its_addresses(organisation: Organisation, *, limit: int) -> list[int]:
    """Unrouted mail addressed to the organisation's channels (what reached them after
    the closing, which routes nothing there): its buyers' data too."""
    addresses = list(
        db.session.scalars(
            select(Channel.helpdesk_address).where(Channel.organisation_id == organisation.id)
        )
    )
    if not addresses:
        return []
    return list(
        db.session.scalars(
            select(Message.id)
            .where(
                Message.channel_id.is_(None),
                Message.quarantine_reason.is_(None),
                Message.erased_at.is_(None),
                or_(
                    *(
                        func.lower(Message.to_addresses).contains(a.lower(), autoescape=True)
                        for a in addresses
                    )
                ),
            )
            .order_by(Message.id)
            .limit(limit)
        )
    )


def erase_batch(
    organisation: Organisation, *, now: datetime, limit: int = buyer_data.BATCH_SIZE
) -> buyer_data.ErasureCounts:
    """One batch of a closed organisation's buyer data: up to `limit` threads (their
    messages, attachments, drafts, search entries, their fetched mail queued for removal
    at its source), then its messages outside threads, then unrouted mail addressed to
    its channels, then its orders. Nothing erased:
    the organisation is done (`data_erased_at` set, audited). Audited per batch."""
    channel_ids = select(Channel.id).where(Channel.organisation_id == organisation.id)
    thread_ids = list(
        db.session.scalars(
            select(Thread.id)
            .where(Thread.organisation_id == organisation.id, Thread.erased_at.is_(None))
            .order_by(Thread.id)
            .limit(limit)
        )
    )
    counts = buyer_data.ErasureCounts()
    if thread_ids:
        buyer_data.queue_source_removals(Message.thread_id.in_(thread_ids), now=now)
        counts.add(buyer_data.erase_threads(thread_ids, now=now))
    else:
        message_ids = list(
            db.session.scalars(
                select(Message.id)
                .where(Message.channel_id.in_(channel_ids), Message.erased_at.is_(None))
                .order_by(Message.id)
                .limit(limit)
            )
        )
        if not message_ids:
            message_ids = _unrouted_to_its_addresses(organisation, limit=limit)
        if message_ids:
            buyer_data.queue_source_removals(Message.id.in_(message_ids), now=now)
            counts.add(buyer_data.erase_messages(message_ids, now=now))
        else:
            counts.orders = (
                db.session.execute(
                    delete(Order)
                    .where(Order.channel_id.in_(channel_ids))
                    .execution_options(synchronize_session=False)
                ).rowcount
                or 0
            )
    db.session.expire_all()
    if counts.total:
        record_event(
            "organisation.data_erasing",
            actor=None,
            organisation_id=organisation.id,
            target=organisation,
            details=asdict(counts),
        )
        return counts
    organisation.data_erased_at = now
    record_event(
        "organisation.data_erased", actor=None, organisation_id=organisation.id, target=organisation
    )
    log.info("Organisation %s: all its buyer data is erased", organisation.id)
    return counts
