"""E-mail alerts to the people who work the threads and own the channels (never to
buyers), queued as system mail (system_mail.py: from MAIL_FROM, links on PUBLIC_URL).

- A thread assigned to someone by another person: at once (`thread_assigned`).
- A thread of someone's, 2 hours before Amazon's 24-hour deadline: once per buyer
  message waiting (`send_deadline_warnings`).
- A daily digest of what waits, for those who ask for it, once a day from DIGEST_HOUR of
  their own time zone (`send_digests`).
- Channel owners: a channel whose forwarding has been silent for 7 days, or whose Amazon
  authorisation was lost; admins: a mailbox that keeps failing. Once each, again only
  after the trouble ended and came back (`send_channel_alerts`, `send_mailbox_alerts`).

Each user chooses theirs on /account (`set_preferences`). Mails name the conversation
(subject, order, marketplace), never a buyer's words. Nothing here commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from portal.extensions import db
from portal.models import (
    Channel,
    ChannelStatus,
    Mailbox,
    OrgRole,
    Role,
    Thread,
    ThreadStatus,
    User,
)
from portal.services.audit import record_event
from portal.services.scoping import scope_to_user
from portal.services.system_mail import SystemMailError, external_url, queue_system_mail
from portal.services.users import local_time

log = logging.getLogger(__name__)

#: Amazon's expectation: an answer within 24 hours of the buyer's message.
RESPONSE_WINDOW = timedelta(hours=24)
DEADLINE_WARNING = timedelta(hours=2)
DUE_SOON = timedelta(hours=4)
SILENT_FOR = timedelta(days=7)
#: A mailbox failing this many polls in a row is reported to the admins.
FAILING_AFTER = 5
#: The digest goes from this hour of the user's morning.
DIGEST_HOUR = 7
DIGEST_LIST = 10
_OPEN = (ThreadStatus.OPEN, ThreadStatus.PENDING)


@dataclass(frozen=True)
class Preferences:
    assigned: bool
    deadline: bool
    digest: bool


def preferences(user: User) -> Preferences:
    return Preferences(user.alert_assigned, user.alert_deadline, user.alert_digest)


def set_preferences(user: User, chosen: Preferences) -> bool:
    """The user's own choice of alerts (audited); False when unchanged."""
    if preferences(user) == chosen:
        return False
    user.alert_assigned, user.alert_deadline, user.alert_digest = (
        chosen.assigned,
        chosen.deadline,
        chosen.digest,
    )
    record_event(
        "user.alerts_changed",
        actor=user,
        organisation_id=user.organisation_id,
        target=user,
        details={"assigned": chosen.assigned, "deadline": chosen.deadline, "digest": chosen.digest},
    )
    db.session.flush()
    return True


def _footer() -> str:
    return (
        "\n\n--\nSellerdesk sends this because of your alert settings. Choose which "
        f"e-mails you get: {external_url('account.index')}#alerts\n"
    )


def _describe(thread: Thread) -> str:
    channel = thread.channel
    lines = [f"  {thread.subject or '(no subject)'}"]
    where = f"Amazon {channel.marketplace}, {channel.organisation.name}"
    if thread.order_id:
        where += f", order {thread.order_id}"
    lines.append(f"  {where}")
    return "\n".join(lines)


def _queue(user: User, *, subject: str, body: str, kind: str, organisation_id=None, now) -> bool:
    try:
        queue_system_mail(
            user.email,
            subject=subject,
            body=body + _footer(),
            kind=kind,
            organisation_id=organisation_id,
            now=now,
        )
    except SystemMailError as exc:  # an address the mail library refuses: skip, say so
        log.warning("Alert %s to user %s not queued: %s", kind, user.id, exc)
        return False
    return True


def threads_assigned(threads: list[Thread], assignee: User, *, actor: User, now: datetime) -> bool:
    """Tell `assignee` that `actor` gave them `threads` (one mail for all), if they want
    to know; nothing when they assigned them to themselves."""
    if assignee.id == actor.id or not assignee.is_active or not assignee.alert_assigned:
        return False
    listed = threads[:DIGEST_LIST]
    parts = [
        f"{_describe(thread)}\n  {external_url('inbox.thread_detail', thread_id=thread.id)}"
        for thread in listed
    ]
    more = len(threads) - len(listed)
    if more:
        parts.append(f"  … and {more} more: {external_url('inbox.index', assignee='me')}")
    if len(threads) == 1:
        subject = f"Assigned to you: {threads[0].subject or 'a conversation'}"
        intro = f"{actor.display_name} assigned you a conversation:"
    else:
        subject = f"{len(threads)} conversations assigned to you"
        intro = f"{actor.display_name} assigned you {len(threads)} conversations:"
    return _queue(
        assignee,
        subject=subject[:200],
        body=intro + "\n\n" + "\n\n".join(parts),
        kind="alert_assigned",
        organisation_id=threads[0].organisation_id,
        now=now,
    )


def send_deadline_warnings(*, now: datetime) -> int:
    """Warn assignees of their threads 2 hours before Amazon's deadline; the count sent."""
    start = now - RESPONSE_WINDOW  # waiting since before this: already late
    threads = db.session.scalars(
        select(Thread)
        .join(User, User.id == Thread.assignee_id)
        .where(
            Thread.status.in_(_OPEN),
            Thread.awaiting_reply_since.is_not(None),
            Thread.awaiting_reply_since > start,
            Thread.awaiting_reply_since <= now - (RESPONSE_WINDOW - DEADLINE_WARNING),
            or_(
                Thread.deadline_alerted_for.is_(None),
                Thread.deadline_alerted_for != Thread.awaiting_reply_since,
            ),
            User.is_active.is_(True),
            User.alert_deadline.is_(True),
        )
        .order_by(Thread.awaiting_reply_since)
    ).all()
    sent = 0
    for thread in threads:
        thread.deadline_alerted_for = thread.awaiting_reply_since
        deadline = thread.awaiting_reply_since + RESPONSE_WINDOW
        minutes = max(1, round((deadline - now).total_seconds() / 60))
        body = (
            f"A buyer has waited for an answer since "
            f"{thread.awaiting_reply_since:%d %b %Y, %H:%M} UTC; Amazon expects one within "
            f"24 hours, so by {deadline:%d %b %Y, %H:%M} UTC (in {minutes} minutes):\n\n"
            f"{_describe(thread)}\n\n"
            f"Answer it: {external_url('inbox.thread_detail', thread_id=thread.id)}"
        )
        sent += _queue(
            thread.assignee,
            subject=f"Due in {minutes} minutes: {thread.subject or 'a conversation'}"[:200],
            body=body,
            kind="alert_deadline",
            organisation_id=thread.organisation_id,
            now=now,
        )
    db.session.flush()
    return sent


def send_digests(*, now: datetime) -> int:
    """The daily digest for each user who asked for it and whose morning has come."""
    users = db.session.scalars(
        select(User).where(User.is_active.is_(True), User.alert_digest.is_(True))
    ).all()
    sent = 0
    for user in users:
        local = local_time(user, now)
        if local.hour < DIGEST_HOUR or user.digest_sent_on == local.date():
            continue
        user.digest_sent_on = local.date()
        sent += _queue(
            user,
            subject=f"Sellerdesk: what waits on {local:%d %b %Y}",
            body=_digest_body(user, now),
            kind="alert_digest",
            now=now,
        )
    db.session.flush()
    return sent


def _digest_body(user: User, now: datetime) -> str:
    visible = scope_to_user(
        select(Thread).where(Thread.status.in_(_OPEN)), Thread.organisation_id, user
    ).subquery()
    waiting = visible.c.awaiting_reply_since

    def count(*where) -> int:
        return db.session.scalar(select(func.count()).select_from(visible).where(*where)) or 0

    overdue = waiting <= now - RESPONSE_WINDOW
    figures = [
        ("Assigned to you, open", count(visible.c.assignee_id == user.id)),
        ("Unassigned, open", count(visible.c.assignee_id.is_(None))),
        ("Past Amazon's 24 hours", count(overdue)),
        (
            "Due within 4 hours",
            count(waiting > now - RESPONSE_WINDOW, waiting <= now - (RESPONSE_WINDOW - DUE_SOON)),
        ),
    ]
    lines = [f"  {label}: {number}" for label, number in figures]
    late = db.session.execute(
        select(visible.c.id, visible.c.subject).where(overdue).order_by(waiting).limit(DIGEST_LIST)
    ).all()
    body = "What waits in the threads you work:\n\n" + "\n".join(lines)
    if late:
        body += "\n\nThe longest waiting past the deadline:\n" + "\n".join(
            f"  - {subject or '(no subject)'}: "
            f"{external_url('inbox.thread_detail', thread_id=thread_id)}"
            for thread_id, subject in late
        )
    return body + f"\n\nThe inbox: {external_url('inbox.index')}"


def _owners(organisation_id: int) -> list[User]:
    return list(
        db.session.scalars(
            select(User).where(
                User.organisation_id == organisation_id,
                User.role == Role.SELLER,
                User.org_role == OrgRole.OWNER,
                User.is_active.is_(True),
            )
        )
    )


def send_channel_alerts(*, now: datetime) -> int:
    """Mail a channel's owners once when its forwarding has been silent for 7 days or its
    Amazon authorisation was lost; an alert is armed again once the trouble ends."""
    sent = 0
    channels = db.session.scalars(
        select(Channel).where(Channel.status != ChannelStatus.DISABLED).order_by(Channel.id)
    ).all()
    for channel in channels:
        last = channel.last_message_at or channel.created_at
        silent = channel.status == ChannelStatus.ACTIVE and last <= now - SILENT_FOR
        if not silent:
            channel.silence_alerted_at = None
        elif channel.silence_alerted_at is None:
            channel.silence_alerted_at = now
            days = (now - last).days
            sent += _alert_owners(
                channel,
                subject=f"No buyer mail for {days} days on Amazon {channel.marketplace}",
                body=(
                    f"Sellerdesk has received no buyer message for Amazon "
                    f"{channel.marketplace} ({channel.helpdesk_address}) for {days} days. "
                    "If Amazon still forwards your buyer messages, check the forwarding "
                    "address in Seller Central (Settings, Notification Preferences) and the "
                    f"channel's setup: {external_url('channels.detail', channel_id=channel.id)}"
                ),
                kind="alert_channel_silent",
                now=now,
            )
        if not channel.is_amazon_authorisation_needed:
            channel.authorisation_alerted_at = None
        elif channel.authorisation_alerted_at is None:
            channel.authorisation_alerted_at = now
            sent += _alert_owners(
                channel,
                subject=f"Amazon authorisation needed for Amazon {channel.marketplace}",
                body=(
                    f"Amazon refused Sellerdesk's authorisation for Amazon "
                    f"{channel.marketplace}, so order details are no longer updated. "
                    "Authorise with Amazon again on the channel's page: "
                    f"{external_url('channels.detail', channel_id=channel.id)}"
                ),
                kind="alert_authorisation_lost",
                now=now,
            )
    db.session.flush()
    return sent


def _alert_owners(channel: Channel, *, subject: str, body: str, kind: str, now) -> int:
    owners = _owners(channel.organisation_id)
    for owner in owners:
        _queue(
            owner,
            subject=subject,
            body=body,
            kind=kind,
            organisation_id=channel.organisation_id,
            now=now,
        )
    record_event(
        f"channel.{kind.removeprefix('alert_')}_alerted",
        actor=None,
        organisation_id=channel.organisation_id,
        target=channel,
        details={"owners": len(owners)},
    )
    return len(owners)


def send_mailbox_alerts(*, now: datetime) -> int:
    """Mail the admins once when a mailbox has failed FAILING_AFTER polls in a row."""
    sent = 0
    for mailbox in db.session.scalars(select(Mailbox).order_by(Mailbox.id)).all():
        if mailbox.consecutive_failures == 0:
            mailbox.failure_alerted_at = None
            continue
        if mailbox.consecutive_failures < FAILING_AFTER:
            continue
        sent += _alert_mailbox(
            mailbox,
            intro=(
                f"The mailbox {mailbox.name!r} has failed {mailbox.consecutive_failures} "
                "polls in a row"
            ),
            error=mailbox.last_error or "not recorded",
            now=now,
        )
    db.session.flush()
    return sent


def mailbox_authorisation_refused(mailbox: Mailbox, *, error: str, now: datetime) -> int:
    """Mail the admins at once (once, until a poll succeeds again) when the provider
    refused an OAuth mailbox's stored authorisation: no retry can mend that."""
    return _alert_mailbox(
        mailbox,
        intro=f"The provider refused the sign-in of the mailbox {mailbox.name!r}",
        error=error,
        now=now,
    )


def _alert_mailbox(mailbox: Mailbox, *, intro: str, error: str, now: datetime) -> int:
    if mailbox.failure_alerted_at is not None or not mailbox.is_enabled:
        return 0
    admins = db.session.scalars(
        select(User).where(User.role == Role.ADMIN, User.is_active.is_(True))
    ).all()
    mailbox.failure_alerted_at = now
    body = (
        f"{intro}, so buyer mail it holds is not reaching Sellerdesk. The last error:\n\n"
        f"  {error[:500]}\n\n"
        f"The ingestion health page: {external_url('admin.health')}"
    )
    sent = 0
    for admin in admins:
        sent += _queue(
            admin,
            subject=f"Mailbox {mailbox.name} keeps failing",
            body=body,
            kind="alert_mailbox_failing",
            now=now,
        )
    record_event(
        "mailbox.failing_alerted",
        actor=None,
        target=mailbox,
        details={"failures": mailbox.consecutive_failures, "admins": len(admins)},
    )
    return sent


def send_due_alerts(*, now: datetime) -> dict[str, int]:
    """Every periodic alert (the worker's alerts job); counts by kind."""
    return {
        "deadline": send_deadline_warnings(now=now),
        "digest": send_digests(now=now),
        "channel": send_channel_alerts(now=now),
        "mailbox": send_mailbox_alerts(now=now),
    }
