"""Amazon's response-time metric, defined once (issue 22).

A buyer message *needs an answer* unless it is automatic mail, a bounce, an Amazon
notification, a Seller Central copy, an internal note, quarantined or marked "no
response needed". It is *answered* by the first reply on its thread that was sent
(send_status SENT: a queued or failed reply does not count until it goes out, and a
bounced reply is marked FAILED by the outbox) at or after it; several messages
answered by one reply each count. Answered more than 24 hours later is *late*;
unanswered now is *open*, and *overdue* once 24 hours have passed.

Everything is computed with SQL aggregates, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.orm import aliased

from portal.extensions import db
from portal.models import (
    Channel,
    Direction,
    Message,
    NoResponseMark,
    Organisation,
    SendStatus,
    Thread,
    ThreadStatus,
    User,
)
from portal.sqltypes import UTCDateTime

DAY_SECONDS = 24 * 3600
#: The backlog's buckets by time left until the 24 hours are up.
BACKLOG_BUCKETS = ("overdue", "under_4h", "under_24h", "later")
#: Before any message: the start of "everything still open".
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Figures:
    """The metric for one scope over one period; times in seconds."""

    scope: str
    messages: int
    answered_24h: int
    late: int
    open: int
    open_overdue: int
    median_seconds: float | None
    p90_seconds: float | None

    @property
    def answered_24h_pct(self) -> float | None:
        """Share answered within 24 h, one decimal; None without messages."""
        return round(100 * self.answered_24h / self.messages, 1) if self.messages else None


#: The columns of `flask report` and of /reports.csv, in order.
REPORT_COLUMNS = (
    "scope",
    "messages",
    "answered_24h",
    "answered_24h_pct",
    "late",
    "open",
    "open_overdue",
    "median_response_minutes",
    "p90_response_minutes",
)


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.1f}"


def report_row(figures: Figures) -> list[str]:
    """The REPORT_COLUMNS of one Figures as text (empty where there is nothing to show)."""
    pct = figures.answered_24h_pct
    return [
        figures.scope,
        str(figures.messages),
        str(figures.answered_24h),
        "" if pct is None else f"{pct:.1f}",
        str(figures.late),
        str(figures.open),
        str(figures.open_overdue),
        _minutes(figures.median_seconds),
        _minutes(figures.p90_seconds),
    ]


def _seconds_between(later: ColumnElement, earlier: ColumnElement) -> ColumnElement:
    if db.session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _needing_answer(
    *,
    organisation_ids: Sequence[int] | None,
    start: datetime,
    end: datetime,
    channel_id: int | None,
    marketplace: str | None,
):
    """A subquery: each message needing an answer in the period, with its first sent reply."""
    reply = aliased(Message)
    first_reply = (
        select(reply.id)
        .where(
            reply.thread_id == Message.thread_id,
            reply.direction == Direction.OUT,
            reply.is_internal_note.is_(False),
            reply.send_status == SendStatus.SENT,
            reply.sent_at.is_not(None),
            reply.sent_at >= Message.created_at,
        )
        .order_by(reply.sent_at, reply.id)
        .limit(1)
        .correlate(Message)
        .scalar_subquery()
    )
    marked = select(NoResponseMark.message_id).where(NoResponseMark.message_id == Message.id)
    stmt = (
        select(
            Message.id.label("message_id"),
            Message.created_at.label("created_at"),
            Thread.channel_id.label("channel_id"),
            first_reply.label("reply_id"),
        )
        .join(Thread, Thread.id == Message.thread_id)
        .where(
            Message.direction == Direction.IN,
            Message.is_internal_note.is_(False),
            Message.is_autoreply.is_(False),
            Message.is_bounce.is_(False),
            Message.is_amazon_notification.is_(False),
            Message.is_seller_central_copy.is_(False),
            Message.quarantine_reason.is_(None),
            Message.created_at >= start,
            Message.created_at < end,
            ~marked.exists(),
        )
    )
    if organisation_ids is not None:
        stmt = stmt.where(Thread.organisation_id.in_(list(organisation_ids)))
    if channel_id is not None:
        stmt = stmt.where(Thread.channel_id == channel_id)
    if marketplace is not None:
        stmt = stmt.join(Channel, Channel.id == Thread.channel_id).where(
            Channel.marketplace == marketplace
        )
    return stmt.subquery()


def _percentiles(
    seconds: ColumnElement, from_: object, where: Sequence[ColumnElement], count: int
) -> tuple[float | None, float | None]:
    """Median and 90th percentile of `seconds`, interpolated as percentile_cont does."""
    if count == 0:
        return None, None
    if db.session.get_bind().dialect.name == "postgresql":
        row = db.session.execute(
            select(
                func.percentile_cont(0.5).within_group(seconds),
                func.percentile_cont(0.9).within_group(seconds),
            )
            .select_from(from_)
            .where(*where)
        ).one()
        return float(row[0]), float(row[1])
    results = []
    for fraction in (0.5, 0.9):
        position = (count - 1) * fraction
        low = int(position)
        values = db.session.scalars(
            select(seconds).select_from(from_).where(*where).order_by(seconds).offset(low).limit(2)
        ).all()
        upper = values[1] if len(values) > 1 else values[0]
        results.append(float(values[0] + (upper - values[0]) * (position - low)))
    return results[0], results[1]


def response_figures(
    *,
    scope: str,
    organisation_ids: Sequence[int] | None,
    start: datetime,
    end: datetime,
    now: datetime,
    channel_id: int | None = None,
    marketplace: str | None = None,
    agent_id: int | None = None,
) -> Figures:
    """The metric for messages received in [start, end) within the scope.

    `organisation_ids` None means every organisation (admins); `agent_id` keeps the
    messages that agent's reply answered.
    """
    base = _needing_answer(
        organisation_ids=organisation_ids,
        start=start,
        end=end,
        channel_id=channel_id,
        marketplace=marketplace,
    )
    answer = aliased(Message)
    from_ = base.outerjoin(answer, answer.id == base.c.reply_id)
    where: list[ColumnElement] = []
    if agent_id is not None:
        where.append(answer.author_id == agent_id)
    seconds = _seconds_between(answer.sent_at, base.c.created_at)
    waited = _seconds_between(literal(now, UTCDateTime), base.c.created_at)
    answered = base.c.reply_id.is_not(None)
    row = db.session.execute(
        select(
            func.count(),
            func.sum(case((and_(answered, seconds <= DAY_SECONDS), 1), else_=0)),
            func.sum(case((and_(answered, seconds > DAY_SECONDS), 1), else_=0)),
            func.sum(case((~answered, 1), else_=0)),
            func.sum(case((and_(~answered, waited > DAY_SECONDS), 1), else_=0)),
        )
        .select_from(from_)
        .where(*where)
    ).one()
    messages, within, late, open_, overdue = (int(value or 0) for value in row)
    median, p90 = _percentiles(seconds, from_, [*where, answered], within + late)
    return Figures(scope, messages, within, late, open_, overdue, median, p90)


def channel_report(
    *, organisation_ids: Sequence[int], start: datetime, end: datetime, now: datetime
) -> list[Figures]:
    """One Figures per channel of the organisations, then the total. A channel's scope is
    its marketplace, with its organisation's name in front when there are several."""
    channels = db.session.execute(
        select(Channel.id, Channel.marketplace, Organisation.name)
        .join(Organisation, Organisation.id == Channel.organisation_id)
        .where(Channel.organisation_id.in_(list(organisation_ids)))
        .order_by(Organisation.name, Channel.marketplace, Channel.id)
    ).all()
    several = len(set(organisation_ids)) > 1
    rows = [
        response_figures(
            scope=f"{name} {marketplace}" if several else marketplace,
            organisation_ids=organisation_ids,
            start=start,
            end=end,
            now=now,
            channel_id=channel_id,
        )
        for channel_id, marketplace, name in channels
    ]
    rows.append(
        response_figures(
            scope="total", organisation_ids=organisation_ids, start=start, end=end, now=now
        )
    )
    return rows


@dataclass(frozen=True)
class Day:
    """One day's messages needing an answer and how many were answered within 24 h."""

    day: date
    messages: int
    answered_24h: int

    @property
    def answered_24h_pct(self) -> float | None:
        return round(100 * self.answered_24h / self.messages, 1) if self.messages else None


def messages_per_day(
    *, organisation_ids: Sequence[int] | None, start: datetime, end: datetime
) -> list[Day]:
    """Every UTC day from start to end (empty days included), by the messages' arrival."""
    base = _needing_answer(
        organisation_ids=organisation_ids,
        start=start,
        end=end,
        channel_id=None,
        marketplace=None,
    )
    answer = aliased(Message)
    seconds = _seconds_between(answer.sent_at, base.c.created_at)
    day = func.date(base.c.created_at)
    rows = db.session.execute(
        select(
            day,
            func.count(),
            func.sum(
                case((and_(base.c.reply_id.is_not(None), seconds <= DAY_SECONDS), 1), else_=0)
            ),
        )
        .select_from(base.outerjoin(answer, answer.id == base.c.reply_id))
        .group_by(day)
    ).all()
    # SQLite's date() gives text, PostgreSQL's a date.
    found = {date.fromisoformat(str(value)[:10]): (n, int(w or 0)) for value, n, w in rows}
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [
        Day(day, *found.get(day, (0, 0)))
        for day in (first + timedelta(days=i) for i in range((last - first).days + 1))
    ]


def replies_per_agent(
    *, organisation_ids: Sequence[int] | None, start: datetime, end: datetime
) -> list[tuple[str, int]]:
    """Sent replies in [start, end) per author (name, else e-mail), most first."""
    stmt = (
        select(User.name, User.email, func.count(Message.id))
        .join(Message, Message.author_id == User.id)
        .join(Thread, Thread.id == Message.thread_id)
        .where(
            Message.direction == Direction.OUT,
            Message.is_internal_note.is_(False),
            Message.send_status == SendStatus.SENT,
            Message.sent_at >= start,
            Message.sent_at < end,
        )
        .group_by(User.id, User.name, User.email)
        .order_by(func.count(Message.id).desc(), User.email)
    )
    if organisation_ids is not None:
        stmt = stmt.where(Thread.organisation_id.in_(list(organisation_ids)))
    return [(name or email, n) for name, email, n in db.session.execute(stmt)]


def open_threads_per_assignee(
    *, organisation_ids: Sequence[int] | None
) -> list[tuple[str | None, int]]:
    """Open threads now per assignee (None: unassigned), most first."""
    stmt = (
        select(User.name, User.email, func.count(Thread.id))
        .select_from(Thread)
        .outerjoin(User, User.id == Thread.assignee_id)
        .where(Thread.status == ThreadStatus.OPEN)
        .group_by(User.id, User.name, User.email)
        .order_by(func.count(Thread.id).desc(), User.email)
    )
    if organisation_ids is not None:
        stmt = stmt.where(Thread.organisation_id.in_(list(organisation_ids)))
    return [(name or email, n) for name, email, n in db.session.execute(stmt)]


def backlog(*, organisation_ids: Sequence[int] | None, now: datetime) -> dict[str, int]:
    """Messages needing an answer and still open now, by time left of their 24 hours."""
    base = _needing_answer(
        organisation_ids=organisation_ids,
        start=_EPOCH,
        end=now,
        channel_id=None,
        marketplace=None,
    )
    waited = _seconds_between(literal(now, UTCDateTime), base.c.created_at)
    bucket = case(
        (waited >= DAY_SECONDS, "overdue"),
        (waited > DAY_SECONDS - 4 * 3600, "under_4h"),
        (waited >= 0, "under_24h"),
        else_="later",
    )
    rows = db.session.execute(
        select(bucket, func.count()).where(base.c.reply_id.is_(None)).group_by(bucket)
    ).all()
    counts = dict.fromkeys(BACKLOG_BUCKETS, 0)
    counts.update({name: n for name, n in rows})
    return counts


#: Amazon's expectation: at least this share of messages answered within 24 hours.
AMAZON_TARGET_PCT = 90.0
#: The periods Amazon shows the metric for, in days.
AMAZON_PERIODS = (7, 30, 90)


def response_rates(*, organisation_id: int, now: datetime) -> list[tuple[str, list[Figures]]]:
    """Per channel and in total: the figures for each of AMAZON_PERIODS up to now."""
    by_period = [
        channel_report(
            organisation_ids=[organisation_id], start=now - timedelta(days=days), end=now, now=now
        )
        for days in AMAZON_PERIODS
    ]
    return [(rows[0].scope, list(rows)) for rows in zip(*by_period, strict=True)]
