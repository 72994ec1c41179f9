"""The figures of the seller dashboard (/dashboard) and the admin dashboard (/admin).

Each channel's setup, forwarding and Amazon authorisation at a glance with its
7-day volume, the threads whose 24-hour answer is overdue or due soon, and per
mailbox what ingestion stored and how its polls went. Counts are SQL aggregates
grouped by UTC hour or day; the 24-hour response rate comes from services/reports.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, Select, case, func, select, union_all
from sqlalchemy.orm import joinedload, load_only, selectinload

from portal.extensions import db
from portal.models import (
    Channel,
    Direction,
    Mailbox,
    MailboxPollHour,
    Message,
    Organisation,
    Thread,
    ThreadStatus,
    User,
)
from portal.services.channels import is_silent
from portal.services.scoping import scope_to_user
from portal.services.spapi import is_spapi_credential
from portal.services.threads import RESPONSE_WINDOW

#: The guided setup of a channel (channels/detail.html): authorise the developer, hand
#: over the token (both done by one Amazon authorisation), forwarding, approved sender.
SETUP_STEPS = 4
#: Days of volume on each channel's sparkline, today included.
VOLUME_DAYS = 7
#: "Due soon": the 24 hours run out within this time (as the navigation's count).
DUE_SOON = timedelta(hours=4)
#: Hours on the admin dashboard's hourly chart, the current one included.
ACTIVITY_HOURS = 24
#: Days on the admin dashboard's daily chart, today included.
ACTIVITY_DAYS = 7


def _bucket(column: ColumnElement, unit: str) -> ColumnElement:
    """The UTC hour ("2026-12-06 03") or day ("2026-12-06") of a timestamp, as text."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(column, "YYYY-MM-DD HH24" if unit == "hour" else "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d %H" if unit == "hour" else "%Y-%m-%d", column)


def _day_key(day: date) -> str:
    return day.isoformat()


def _hour_key(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%d %H")


def setup_steps_done(channel: Channel) -> int:
    """How many of the SETUP_STEPS a channel has done, counted as its setup page shows them."""
    connected = channel.credential is not None
    forwarding = channel.first_message_at is not None or channel.forwarding_confirmed_at is not None
    approved = channel.approved_sender_confirmed_at is not None
    return 2 * connected + forwarding + approved


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


@dataclass(frozen=True)
class ChannelOverview:
    """One channel on the seller dashboard."""

    channel: Channel
    steps_done: int
    #: Mail for the channel has arrived: Amazon forwards it.
    is_forwarding_verified: bool
    #: Active, yet nothing arrived for a week: for how many whole days (else None).
    silent_days: int | None
    #: "amazon" (SP-API authorisation), "mws" (an MWS token) or "none".
    authorisation: str
    #: Inbound messages per UTC day, oldest first, VOLUME_DAYS of them.
    volume: list[DayCount]

    @property
    def volume_total(self) -> int:
        return sum(day.count for day in self.volume)


def channel_overview(*, organisation_ids: Sequence[int], now: datetime) -> list[ChannelOverview]:
    """Every channel of the organisations, by marketplace, with its state and 7-day volume."""
    channels = db.session.scalars(
        select(Channel)
        .where(Channel.organisation_id.in_(list(organisation_ids)))
        .options(selectinload(Channel.credential))
        .order_by(Channel.organisation_id, Channel.marketplace, Channel.id)
    ).all()
    days = [now.date() - timedelta(days=n) for n in range(VOLUME_DAYS - 1, -1, -1)]
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=now.tzinfo)
    day = _bucket(Message.created_at, "day")
    counts: dict[tuple[int, str], int] = {}
    if channels:
        rows = db.session.execute(
            select(Message.channel_id, day, func.count())
            .where(
                Message.channel_id.in_([channel.id for channel in channels]),
                Message.direction == Direction.IN,
                Message.created_at >= since,
            )
            .group_by(Message.channel_id, day)
        ).all()
        counts = {(channel_id, key): n for channel_id, key, n in rows}
    overview = []
    for channel in channels:
        silent_since = channel.last_message_at or channel.created_at
        if channel.credential is None:
            authorisation = "none"
        elif is_spapi_credential(channel.credential):
            authorisation = "amazon"
        else:
            authorisation = "mws"
        overview.append(
            ChannelOverview(
                channel=channel,
                steps_done=setup_steps_done(channel),
                is_forwarding_verified=channel.first_message_at is not None,
                silent_days=(now - silent_since).days if is_silent(channel, now=now) else None,
                authorisation=authorisation,
                volume=[DayCount(d, counts.get((channel.id, _day_key(d)), 0)) for d in days],
            )
        )
    return overview


@dataclass(frozen=True)
class AnswersDue:
    """Threads waiting for an answer whose 24 hours ran out, or run out within DUE_SOON;
    most urgent first, at most `limit` of each, with the full counts."""

    overdue: list[Thread]
    overdue_count: int
    soon: list[Thread]
    soon_count: int


def answers_due(user: User, *, now: datetime, limit: int = 10) -> AnswersDue:
    """The overdue and soon-due threads `user` may see (as the navigation counts them)."""
    overdue_from = now - RESPONSE_WINDOW
    soon_from = now + DUE_SOON - RESPONSE_WINDOW
    by_urgency = (Thread.awaiting_reply_since, Thread.id)

    def most_urgent(*where: ColumnElement[bool]) -> Select:
        # The ids of each list from the deadline index alone, sorted and cut there: with
        # the threads joined, the database read every waiting thread's row before
        # cutting (figures: bench/README.md, "Latest reports figures").
        ids = scope_to_user(
            select(Thread.id)
            .where(
                Thread.status.in_([ThreadStatus.OPEN, ThreadStatus.PENDING]),
                Thread.awaiting_reply_since.is_not(None),
                *where,
            )
            .order_by(*by_urgency)
            .limit(limit),
            Thread.organisation_id,
            user,
        ).subquery()
        return select(ids.c.id)

    counted = scope_to_user(
        select(
            # SUM(CASE …) rather than COUNT(*) FILTER, as the navigation's counts.
            func.sum(case((Thread.awaiting_reply_since <= overdue_from, 1), else_=0)),
            func.sum(case((Thread.awaiting_reply_since > overdue_from, 1), else_=0)),
        ).where(
            Thread.status.in_([ThreadStatus.OPEN, ThreadStatus.PENDING]),
            Thread.awaiting_reply_since <= soon_from,
        ),
        Thread.organisation_id,
        user,
    )
    overdue_count, soon_count = db.session.execute(counted).one()
    listed = union_all(
        most_urgent(Thread.awaiting_reply_since <= overdue_from),
        most_urgent(
            Thread.awaiting_reply_since > overdue_from, Thread.awaiting_reply_since <= soon_from
        ),
    )
    # Both lists' threads in one load, with only what they show (subject, deadline,
    # marketplace, organisation) joined; split again by deadline.
    threads = db.session.scalars(
        select(Thread)
        .where(Thread.id.in_(listed))
        .options(
            load_only(Thread.subject, Thread.status, Thread.awaiting_reply_since),
            joinedload(Thread.channel, innerjoin=True)
            .load_only(Channel.marketplace)
            .joinedload(Channel.organisation, innerjoin=True)
            .load_only(Organisation.name),
        )
        .order_by(*by_urgency)
    ).all()
    overdue = [t for t in threads if t.awaiting_reply_since <= overdue_from]
    soon = [t for t in threads if t.awaiting_reply_since > overdue_from]
    return AnswersDue(overdue, overdue_count or 0, soon, soon_count or 0)


@dataclass(frozen=True)
class Activity:
    """One hour or day of a mailbox: messages stored, polls, and polls that failed."""

    start: datetime
    messages: int
    polls: int
    failures: int


@dataclass(frozen=True)
class MailboxActivity:
    mailbox: Mailbox
    #: ACTIVITY_HOURS hours, oldest first, the current (partial) hour last.
    hours: list[Activity]
    #: ACTIVITY_DAYS UTC days, oldest first, today (partial) last.
    days: list[Activity]


def mailbox_activity(*, now: datetime) -> list[MailboxActivity]:
    """Per mailbox (enabled first, then by name), its hourly and daily activity."""
    hour_now = now.replace(minute=0, second=0, microsecond=0)
    hours = [hour_now - timedelta(hours=n) for n in range(ACTIVITY_HOURS - 1, -1, -1)]
    day_starts = [
        hour_now.replace(hour=0) - timedelta(days=n) for n in range(ACTIVITY_DAYS - 1, -1, -1)
    ]
    since = min(hours[0], day_starts[0])
    mailboxes = db.session.scalars(
        select(Mailbox).order_by(Mailbox.is_enabled.desc(), Mailbox.name)
    ).all()
    if not mailboxes:
        return []
    hour = _bucket(Message.created_at, "hour")
    messages = {
        (mailbox_id, key): n
        for mailbox_id, key, n in db.session.execute(
            # By id, not "IS NOT NULL": one range of (mailbox_id, created_at) per mailbox.
            select(Message.mailbox_id, hour, func.count())
            .where(
                Message.mailbox_id.in_([mailbox.id for mailbox in mailboxes]),
                Message.created_at >= since,
            )
            .group_by(Message.mailbox_id, hour)
        )
    }
    polls = {
        (mailbox_id, _hour_key(start)): (n, failed)
        for mailbox_id, start, n, failed in db.session.execute(
            select(
                MailboxPollHour.mailbox_id,
                MailboxPollHour.hour,
                MailboxPollHour.polls,
                MailboxPollHour.failures,
            ).where(MailboxPollHour.hour >= since)
        )
    }
    result = []
    for mailbox in mailboxes:

        def in_hour(start: datetime, mailbox_id: int = mailbox.id) -> Activity:
            key = _hour_key(start)
            n, failed = polls.get((mailbox_id, key), (0, 0))
            return Activity(start, messages.get((mailbox_id, key), 0), n, failed)

        def in_day(start: datetime) -> Activity:
            parts = [in_hour(start + timedelta(hours=h)) for h in range(24)]
            return Activity(
                start,
                sum(p.messages for p in parts),
                sum(p.polls for p in parts),
                sum(p.failures for p in parts),
            )

        result.append(
            MailboxActivity(
                mailbox, [in_hour(start) for start in hours], [in_day(d) for d in day_starts]
            )
        )
    return result
