"""Amazon's response-time metric, defined once (issue 22).

A buyer message *needs an answer* unless it is automatic mail, a bounce, an Amazon
notification, a Seller Central copy, an internal note, quarantined or marked "no
response needed". It is *answered* by the first reply on its thread that was sent
(send_status SENT: a queued or failed reply does not count until it goes out, and a
bounced reply is marked FAILED by the outbox) at or after it; several messages
answered by one reply each count. Answered more than 24 hours later is *late*;
unanswered now is *open*, and *overdue* once 24 hours have passed.

Per thread: its *first response time* runs from its first message needing an answer
to the first reply sent after it (threads whose first such message fell in the
period); its *time to close* from that message to its closing (threads closed in the
period).

Each buyer message keeps its answer (messages.answer_id and answered_at, kept by the
database triggers of migration b7e2c4a9d1f3 exactly as defined above), so a figure
reads one row per message rather than looking for its reply. Each also keeps whether
it needs an answer and whether it is its thread's first that does (needs_answer,
first_need: migration e9c4a2f7b1d5), so no figure looks for marks or earlier messages.

Everything is computed with SQL aggregates, on SQLite and PostgreSQL alike: a figure
is one grouped query for the counts and one for the percentiles (percentile_cont on
PostgreSQL; on SQLite row_number() over the sorted times fetches the two rows around
each percentile, interpolated the same way), whatever the number of groups.

Scope: `organisation_ids` (None: every organisation) and the filters `channel_id`,
`marketplace` and `agent_id`. The agent is the one whose reply answered a message for
the message figures; for what is still open (backlog, open threads, time to close) it
is the thread's assignee, as an open message has no reply yet.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import astuple, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypedDict, Unpack

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.orm import aliased

from portal.extensions import db
from portal.models import (
    Channel,
    Direction,
    Message,
    Organisation,
    SendStatus,
    Thread,
    ThreadStatus,
    User,
)
from portal.sqltypes import UTCDateTime

DAY_SECONDS = 24 * 3600
HOUR = 3600
#: The backlog's buckets by time left until the 24 hours are up.
BACKLOG_BUCKETS = ("overdue", "under_4h", "under_24h", "later")
#: The response-time distribution's buckets: (key, label, upper bound in seconds).
RESPONSE_BUCKETS: tuple[tuple[str, str, int | None], ...] = (
    ("under_1h", "Under 1 h", HOUR),
    ("1_4h", "1–4 h", 4 * HOUR),
    ("4_12h", "4–12 h", 12 * HOUR),
    ("12_24h", "12–24 h", DAY_SECONDS),
    ("24_48h", "24–48 h", 2 * DAY_SECONDS),
    ("over_48h", "Over 48 h", None),
)
#: Before any message: the start of "everything still open".
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class Filters(TypedDict, total=False):
    """The scope's optional filters beside the organisations."""

    channel_id: int | None
    marketplace: str | None
    agent_id: int | None


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass(frozen=True)
class Figures:
    """The metric for one scope over one period; times in seconds. The thread figures
    (first response, time to close) count threads rather than messages."""

    scope: str
    messages: int
    answered_24h: int
    late: int
    open: int
    open_overdue: int
    median_seconds: float | None
    p90_seconds: float | None
    threads: int = 0
    first_response_median_seconds: float | None = None
    first_response_p90_seconds: float | None = None
    closed: int = 0
    close_median_seconds: float | None = None
    close_p90_seconds: float | None = None

    @property
    def answered_24h_pct(self) -> float | None:
        """Share answered within 24 h, one decimal; None without messages."""
        return _pct(self.answered_24h, self.messages)


#: The columns of `flask report` and of /reports.csv, in order. New columns go at the
#: end: scripts read these by position too.
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
    "threads",
    "first_response_median_minutes",
    "first_response_p90_minutes",
    "closed",
    "close_median_minutes",
    "close_p90_minutes",
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
        str(figures.threads),
        _minutes(figures.first_response_median_seconds),
        _minutes(figures.first_response_p90_seconds),
        str(figures.closed),
        _minutes(figures.close_median_seconds),
        _minutes(figures.close_p90_seconds),
    ]


# --- the query shapes every figure is built from -------------------------------------


def _is_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _seconds_between(later: ColumnElement, earlier: ColumnElement) -> ColumnElement:
    if _is_postgresql():
        return func.extract("epoch", later - earlier)
    # Rounded to the millisecond: julianday's float leaves 3600 s as 3599.99999…, which
    # would put an answer after exactly one hour under one hour.
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)


def _in_scope(stmt: Select, organisation_ids: Sequence[int] | None, filters: Filters) -> Select:
    """`stmt` (which selects from Thread) kept to the organisations, channel and marketplace."""
    if organisation_ids is not None:
        stmt = stmt.where(Thread.organisation_id.in_(list(organisation_ids)))
    if filters.get("channel_id") is not None:
        stmt = stmt.where(Thread.channel_id == filters["channel_id"])
    if filters.get("marketplace") is not None:
        stmt = stmt.join(Channel, Channel.id == Thread.channel_id).where(
            Channel.marketplace == filters["marketplace"]
        )
    return stmt


def _messages_in_scope(
    stmt: Select, organisation_ids: Sequence[int] | None, filters: Filters
) -> Select:
    """`stmt` (which selects from Message) kept to the organisations, channel and
    marketplace through the message's own channel (a stored message keeps its
    thread's), so a period's messages are read per channel from their index without
    going through each of the organisation's threads."""
    if organisation_ids is not None or filters.get("marketplace") is not None:
        channels = select(Channel.id)
        if organisation_ids is not None:
            channels = channels.where(Channel.organisation_id.in_(list(organisation_ids)))
        if filters.get("marketplace") is not None:
            channels = channels.where(Channel.marketplace == filters["marketplace"])
        stmt = stmt.where(Message.channel_id.in_(channels))
    if filters.get("channel_id") is not None:
        stmt = stmt.where(Message.channel_id == filters["channel_id"])
    return stmt


@dataclass
class _Waiting:
    """Rows that wait for an answer since `created_at` (messages, or threads from their
    first message), with the answer each message keeps (`reply_id`, `answered_at`: the
    first reply sent on its thread at or after it, kept by the triggers of migration
    b7e2c4a9d1f3); joined to that reply when its author is wanted."""

    rows: Subquery
    with_author: bool = False
    answer: Any = field(init=False)
    from_: Any = field(init=False)

    def __post_init__(self) -> None:
        self.answer = aliased(Message)
        self.c = self.rows.c
        self.from_ = (
            self.rows.outerjoin(self.answer, self.answer.id == self.c.reply_id)
            if self.with_author
            else self.rows
        )

    @property
    def answered(self) -> ColumnElement:
        return self.c.reply_id.is_not(None)

    @property
    def seconds(self) -> ColumnElement:
        return _seconds_between(self.c.answered_at, self.c.created_at)


def _waiting_columns() -> list[ColumnElement]:
    """What _Waiting reads of each message: its thread, arrival, answer and channel (all
    in the reports' partial indexes, so the rows come from the index alone)."""
    return [
        Message.thread_id.label("thread_id"),
        Message.created_at.label("created_at"),
        Message.answer_id.label("reply_id"),
        Message.answered_at.label("answered_at"),
        Message.channel_id.label("channel_id"),
    ]


def _messages(
    organisation_ids: Sequence[int] | None,
    start: datetime,
    end: datetime,
    filters: Filters,
    *,
    with_author: bool = False,
    unanswered: bool = False,
    with_assignee: bool = False,
) -> _Waiting:
    """Each message needing an answer received in [start, end), with its answer (and
    the answer's author for the agent filter, or when asked; its thread's assignee when
    asked); only those without one when `unanswered`. Read from the partial index of
    the messages needing an answer (ix_messages_needs_answer; first_need's likewise)."""
    stmt = select(*_waiting_columns()).where(
        # The definition above, which each message keeps.
        Message.needs_answer == true(),
        Message.thread_id.is_not(None),
        Message.created_at >= start,
        Message.created_at < end,
    )
    if with_assignee:
        stmt = stmt.add_columns(Thread.assignee_id.label("assignee_id")).join(
            Thread, Thread.id == Message.thread_id
        )
    if unanswered:
        stmt = stmt.where(Message.answer_id.is_(None))
    with_author = with_author or filters.get("agent_id") is not None
    return _Waiting(_messages_in_scope(stmt, organisation_ids, filters).subquery(), with_author)


def _first_messages(
    organisation_ids: Sequence[int] | None, start: datetime, end: datetime, filters: Filters
) -> _Waiting:
    """Each thread whose first message needing an answer came in [start, end), from it
    (the message keeps whether it is its thread's first: first_need, kept by the
    triggers of migration e9c4a2f7b1d5, by created_at then id)."""
    stmt = select(*_waiting_columns()).where(
        Message.first_need == true(),
        Message.created_at >= start,
        Message.created_at < end,
    )
    with_author = filters.get("agent_id") is not None
    return _Waiting(_messages_in_scope(stmt, organisation_ids, filters).subquery(), with_author)


def _grouped(stmt: Select, group: ColumnElement | None) -> Select:
    return stmt if group is None else stmt.add_columns(group).group_by(group)


def _key(row: Any, group: ColumnElement | None) -> Hashable:
    return None if group is None else row[-1]


#: The key of the total beside the groups' in `_percentiles(..., with_total=True)`.
_TOTAL = "__total__"
_FRACTIONS = (0.5, 0.9)


def _percentiles(
    seconds: ColumnElement,
    from_: Any,
    where: Sequence[ColumnElement],
    group: ColumnElement | None = None,
    *,
    with_total: bool = False,
) -> dict[Hashable, tuple[float, float]]:
    """Median and 90th percentile of `seconds` per group (one entry, key None, without
    a group), interpolated as percentile_cont does; groups without values are left out.
    `with_total` adds the figures over every row under the key _TOTAL, from the same
    pass over the rows (a report's channels and its total)."""
    with_total = with_total and group is not None
    if _is_postgresql():
        stmt = select(
            func.percentile_cont(0.5).within_group(seconds),
            func.percentile_cont(0.9).within_group(seconds),
        )
        if group is None:
            lo, hi = db.session.execute(stmt.select_from(from_).where(*where)).one()
            return {} if lo is None else {None: (float(lo), float(hi))}
        stmt = stmt.add_columns(group)
        if with_total:
            # GROUPING SETS: a row per group and one over all of them, from one scan.
            stmt = stmt.add_columns(func.grouping(group)).group_by(
                func.grouping_sets(group, tuple_())
            )
        else:
            stmt = stmt.add_columns(literal(0)).group_by(group)
        rows = db.session.execute(stmt.select_from(from_).where(*where))
        return {
            _TOTAL if total else key: (float(lo), float(hi))
            for lo, hi, key, total in rows
            if lo is not None
        }
    partitions = [[] if group is None else [group]] + ([[]] if with_total else [])
    columns = [seconds.label("s"), (group if group is not None else literal(None)).label("g")]
    for at, partition in enumerate(partitions):
        columns += [
            func.row_number().over(partition_by=partition, order_by=seconds).label(f"rn{at}"),
            func.count().over(partition_by=partition).label(f"n{at}"),
        ]
    ranked = select(*columns).select_from(from_).where(*where).subquery()
    # The two rows either side of each percentile's position (n - 1) * fraction.
    near = [
        ranked.c[f"rn{at}"].between(low + 1, low + 2)
        for at in range(len(partitions))
        for low in (cast((ranked.c[f"n{at}"] - 1) * f, Integer) for f in _FRACTIONS)
    ]
    rows = db.session.execute(select(*ranked.c).where(or_(*near)))
    values: dict[Hashable, tuple[int, dict[int, float]]] = {}
    for row in rows:
        found = row._mapping
        for at in range(len(partitions)):
            key = _TOTAL if at else found["g"]
            values.setdefault(key, (found[f"n{at}"], {}))[1][found[f"rn{at}"]] = float(found["s"])
    result = {}
    for key, (n, by_rank) in values.items():
        pair = []
        for fraction in _FRACTIONS:
            position = (n - 1) * fraction
            low = int(position)
            # A row near the other partition's percentile may be kept without being
            # near this one's: only the ranks asked for are read.
            lower = by_rank[low + 1]
            upper = by_rank.get(low + 2, lower)
            pair.append(lower + (upper - lower) * (position - low))
        result[key] = (pair[0], pair[1])
    return result


@dataclass(frozen=True)
class _Counts:
    messages: int = 0
    answered_24h: int = 0
    late: int = 0
    open: int = 0
    open_overdue: int = 0


def _count_columns(
    waiting: _Waiting, now: datetime, within: ColumnElement | None = None
) -> list[ColumnElement]:
    """The five _Counts as aggregates over `waiting`, of its rows meeting `within` only
    when given (several periods from one pass)."""
    seconds = waiting.seconds
    waited = _seconds_between(literal(now, UTCDateTime), waiting.c.created_at)
    answered = waiting.answered
    conditions = [
        None,
        and_(answered, seconds <= DAY_SECONDS),
        and_(answered, seconds > DAY_SECONDS),
        ~answered,
        and_(~answered, waited > DAY_SECONDS),
    ]
    if within is None:
        return [func.count()] + [func.sum(case((c, 1), else_=0)) for c in conditions[1:]]
    return [
        func.sum(case((within if c is None else and_(within, c), 1), else_=0)) for c in conditions
    ]


def _message_counts(
    waiting: _Waiting, where: Sequence[ColumnElement], now: datetime, group: ColumnElement | None
) -> dict[Hashable, _Counts]:
    stmt = select(*_count_columns(waiting, now))
    rows = db.session.execute(_grouped(stmt, group).select_from(waiting.from_).where(*where))
    return {
        _key(row, group): _Counts(*(int(value or 0) for value in row[:5])) for row in rows if row[0]
    }


def _agent_where(waiting: _Waiting, filters: Filters) -> list[ColumnElement]:
    agent_id = filters.get("agent_id")
    return [] if agent_id is None else [waiting.answer.author_id == agent_id]


def _closed_threads(
    organisation_ids: Sequence[int] | None, start: datetime, end: datetime, filters: Filters
) -> Subquery:
    """Threads closed in [start, end), with when their first message needing an answer
    came (the one message of the thread that keeps first_need)."""
    stmt = (
        select(
            Thread.channel_id.label("channel_id"),
            Thread.closed_at.label("closed_at"),
            Message.created_at.label("opened_at"),
        )
        .select_from(Thread)
        .join(Message, Message.thread_id == Thread.id)
        .where(
            Message.first_need == true(),
            Thread.status == ThreadStatus.CLOSED,
            Thread.closed_at >= start,
            Thread.closed_at < end,
        )
    )
    if filters.get("agent_id") is not None:
        stmt = stmt.where(Thread.assignee_id == filters["agent_id"])
    return _in_scope(stmt, organisation_ids, filters).subquery()


def _counted(from_: Any, where: Sequence[ColumnElement], group: ColumnElement | None) -> dict:
    stmt = _grouped(select(func.count()), group).select_from(from_).where(*where)
    return {_key(row, group): int(row[0]) for row in db.session.execute(stmt)}


_NO_TIMES = (None, None)


def _figures(
    organisation_ids: Sequence[int] | None,
    start: datetime,
    end: datetime,
    now: datetime,
    filters: Filters,
    *,
    per_channel: bool,
    with_threads: bool = True,
) -> tuple[dict[Hashable, Figures], Figures]:
    """Figures per channel (when asked) and in total; the scope names are left empty.
    Counts add up, so the total's come from the channels'; percentiles do not. Without
    `with_threads`, the thread figures are left at nothing (the dashboard's rate)."""
    messages = _messages(organisation_ids, start, end, filters)
    where = _agent_where(messages, filters)
    # (seconds, from, where, channel) of each figure with percentiles, and its counts.
    timed = [(messages.seconds, messages.from_, [*where, messages.answered], messages.c.channel_id)]
    counted = {"counts": lambda g: _message_counts(messages, where, now, g(messages.c.channel_id))}
    if with_threads:
        threads = _first_messages(organisation_ids, start, end, filters)
        closed = _closed_threads(organisation_ids, start, end, filters)
        thread_where = _agent_where(threads, filters)
        close_seconds = _seconds_between(closed.c.closed_at, closed.c.opened_at)
        timed += [
            (
                threads.seconds,
                threads.from_,
                [*thread_where, threads.answered],
                threads.c.channel_id,
            ),
            (close_seconds, closed, [], closed.c.channel_id),
        ]
        counted["threads"] = lambda g: _counted(
            threads.from_, thread_where, g(threads.c.channel_id)
        )
        counted["closed"] = lambda g: _counted(closed, [], g(closed.c.channel_id))

    def query(grouped: bool) -> dict:
        def g(col: ColumnElement) -> ColumnElement | None:
            return col if grouped else None

        parts = {name: count(g) for name, count in counted.items()}
        # Per channel, the total's percentiles come from the same pass.
        parts["times"] = [
            _percentiles(seconds, from_, w, g(col), with_total=grouped)
            for seconds, from_, w, col in timed
        ]
        return parts

    per = query(True) if per_channel else None
    whole = query(False) if per is None else _total_of(per)

    def assemble(parts: dict, key: Hashable) -> Figures:
        counts = parts["counts"].get(key, _Counts())
        times = [found.get(key, _NO_TIMES) for found in parts["times"]]
        (median, p90), (first_median, first_p90), (close_median, close_p90) = (
            times + [_NO_TIMES, _NO_TIMES]
        )[:3]
        return Figures(
            "",
            counts.messages,
            counts.answered_24h,
            counts.late,
            counts.open,
            counts.open_overdue,
            median,
            p90,
            threads=parts.get("threads", {}).get(key, 0),
            first_response_median_seconds=first_median,
            first_response_p90_seconds=first_p90,
            closed=parts.get("closed", {}).get(key, 0),
            close_median_seconds=close_median,
            close_p90_seconds=close_p90,
        )

    channels = {}
    if per is not None:
        keys = set().union(*(per[name] for name in counted))
        channels = {key: assemble(per, key) for key in keys}
    return channels, assemble(whole, None)


def _total_of(per: dict) -> dict:
    """The total's parts from the channels' counts, and the percentiles found beside
    theirs (key _TOTAL)."""
    counts = [astuple(c) for c in per["counts"].values()]
    whole = {
        name: {None: sum(found.values())}
        for name, found in per.items()
        if name in ("threads", "closed")
    }
    whole["counts"] = {None: _Counts(*map(sum, zip(*counts, strict=True)))} if counts else {}
    whole["times"] = [{None: found[_TOTAL]} if _TOTAL in found else {} for found in per["times"]]
    return whole


def response_figures(
    *,
    scope: str,
    organisation_ids: Sequence[int] | None,
    start: datetime,
    end: datetime,
    now: datetime,
    **filters: Unpack[Filters],
) -> Figures:
    """The metric for messages received in [start, end) within the scope.

    `organisation_ids` None means every organisation (admins); `agent_id` keeps the
    messages that agent's reply answered.
    """
    _, total = _figures(organisation_ids, start, end, now, filters, per_channel=False)
    return replace(total, scope=scope)


def report_channels(
    *, organisation_ids: Sequence[int], **filters: Unpack[Filters]
) -> list[tuple[int, str, str]]:
    """(id, name, marketplace) of the organisations' channels that the filters keep. A
    channel's name is its marketplace, with its organisation's name in front when there
    are several organisations."""
    stmt = (
        select(Channel.id, Channel.marketplace, Organisation.name)
        .join(Organisation, Organisation.id == Channel.organisation_id)
        .where(Channel.organisation_id.in_(list(organisation_ids)))
        .order_by(Organisation.name, Channel.marketplace, Channel.id)
    )
    if filters.get("channel_id") is not None:
        stmt = stmt.where(Channel.id == filters["channel_id"])
    if filters.get("marketplace") is not None:
        stmt = stmt.where(Channel.marketplace == filters["marketplace"])
    several = len(set(organisation_ids)) > 1
    return [
        (channel_id, f"{name} {marketplace}" if several else marketplace, marketplace)
        for channel_id, marketplace, name in db.session.execute(stmt)
    ]


def channel_report(
    *,
    organisation_ids: Sequence[int],
    start: datetime,
    end: datetime,
    now: datetime,
    with_threads: bool = True,
    **filters: Unpack[Filters],
) -> list[Figures]:
    """One Figures per channel of the organisations (those the filters keep, named as
    report_channels names them), then the total; `with_threads` False leaves the thread
    figures out (nothing counted)."""
    by_channel, total = _figures(
        organisation_ids, start, end, now, filters, per_channel=True, with_threads=with_threads
    )
    empty = Figures("", 0, 0, 0, 0, 0, None, None)
    rows = [
        replace(by_channel.get(channel_id, empty), scope=name)
        for channel_id, name, _ in report_channels(organisation_ids=organisation_ids, **filters)
    ]
    rows.append(replace(total, scope="total"))
    return rows


@dataclass(frozen=True)
class Day:
    """One day's messages needing an answer and how many were answered within 24 h."""

    day: date
    messages: int
    answered_24h: int

    @property
    def answered_24h_pct(self) -> float | None:
        return _pct(self.answered_24h, self.messages)


def messages_per_day(
    *,
    organisation_ids: Sequence[int] | None,
    start: datetime,
    end: datetime,
    **filters: Unpack[Filters],
) -> list[Day]:
    """Every UTC day from start to end (empty days included), by the messages' arrival."""
    messages = _messages(organisation_ids, start, end, filters)
    counts = _message_counts(
        messages, _agent_where(messages, filters), end, func.date(messages.c.created_at)
    )
    # SQLite's date() gives text, PostgreSQL's a date.
    found = {date.fromisoformat(str(key)[:10]): c for key, c in counts.items()}
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return [
        Day(day, found[day].messages, found[day].answered_24h) if day in found else Day(day, 0, 0)
        for day in days
    ]


def response_distribution(
    *,
    organisation_ids: Sequence[int] | None,
    start: datetime,
    end: datetime,
    **filters: Unpack[Filters],
) -> list[tuple[str, str, int]]:
    """Messages received in [start, end) and answered, by response time: one
    (key, label, count) per RESPONSE_BUCKETS entry, empty ones included."""
    messages = _messages(organisation_ids, start, end, filters)
    seconds = messages.seconds
    bucket = case(
        *((seconds < bound, key) for key, _, bound in RESPONSE_BUCKETS if bound is not None),
        else_=RESPONSE_BUCKETS[-1][0],
    )
    counts = _counted(messages.from_, [*_agent_where(messages, filters), messages.answered], bucket)
    return [(key, label, counts.get(key, 0)) for key, label, _ in RESPONSE_BUCKETS]


@dataclass(frozen=True)
class AgentFigures:
    """One agent's replies in the period and the messages their replies answered."""

    name: str
    replies: int
    answered: int
    answered_24h: int
    median_seconds: float | None
    p90_seconds: float | None

    @property
    def answered_24h_pct(self) -> float | None:
        return _pct(self.answered_24h, self.answered)


def agent_report(
    *,
    organisation_ids: Sequence[int] | None,
    start: datetime,
    end: datetime,
    **filters: Unpack[Filters],
) -> list[AgentFigures]:
    """Per agent: replies sent in [start, end), and the messages received then that
    their reply answered (how many within 24 h, median and p90); most replies first."""
    replies = select(Message.author_id).where(
        Message.direction == Direction.OUT,
        Message.is_internal_note.is_(False),
        Message.send_status == SendStatus.SENT,
        Message.author_id.is_not(None),
        Message.thread_id.is_not(None),
        Message.sent_at >= start,
        Message.sent_at < end,
    )
    if filters.get("agent_id") is not None:
        replies = replies.where(Message.author_id == filters["agent_id"])
    replies = _messages_in_scope(replies, organisation_ids, filters).subquery()
    sent = _counted(replies, [], replies.c.author_id)

    messages = _messages(organisation_ids, start, end, filters, with_author=True)
    author = messages.answer.author_id
    where = [*_agent_where(messages, filters), messages.answered, author.is_not(None)]
    counts = _message_counts(messages, where, end, author)
    times = _percentiles(messages.seconds, messages.from_, where, author)
    ids = set(sent) | set(counts)
    names = {
        user_id: name or email
        for user_id, name, email in db.session.execute(
            select(User.id, User.name, User.email).where(User.id.in_(ids))
        )
    }
    rows = [
        AgentFigures(
            names[user_id],
            sent.get(user_id, 0),
            counts.get(user_id, _Counts()).messages,
            counts.get(user_id, _Counts()).answered_24h,
            *times.get(user_id, _NO_TIMES),
        )
        for user_id in ids
    ]
    return sorted(rows, key=lambda row: (-row.replies, row.name))


def replies_per_agent(
    *,
    organisation_ids: Sequence[int] | None,
    start: datetime,
    end: datetime,
    **filters: Unpack[Filters],
) -> list[tuple[str, int]]:
    """Sent replies in [start, end) per author (name, else e-mail), most first."""
    rows = agent_report(organisation_ids=organisation_ids, start=start, end=end, **filters)
    return [(row.name, row.replies) for row in rows if row.replies]


def open_threads_per_assignee(
    *, organisation_ids: Sequence[int] | None, **filters: Unpack[Filters]
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
    if filters.get("agent_id") is not None:
        stmt = stmt.where(Thread.assignee_id == filters["agent_id"])
    stmt = _in_scope(stmt, organisation_ids, filters)
    return [(name or email, n) for name, email, n in db.session.execute(stmt)]


def backlog(
    *, organisation_ids: Sequence[int] | None, now: datetime, **filters: Unpack[Filters]
) -> dict[str, int]:
    """Messages needing an answer and still open now, by time left of their 24 hours
    (the agent filter: threads assigned to them)."""
    messages = _messages(
        organisation_ids,
        _EPOCH,
        now,
        filters,
        unanswered=True,
        with_assignee=filters.get("agent_id") is not None,
    )
    waited = _seconds_between(literal(now, UTCDateTime), messages.c.created_at)
    bucket = case(
        (waited >= DAY_SECONDS, "overdue"),
        (waited > DAY_SECONDS - 4 * HOUR, "under_4h"),
        (waited >= 0, "under_24h"),
        else_="later",
    )
    where = [~messages.answered]
    if filters.get("agent_id") is not None:
        where.append(messages.c.assignee_id == filters["agent_id"])
    counts = dict.fromkeys(BACKLOG_BUCKETS, 0)
    counts.update(_counted(messages.from_, where, bucket))
    return counts


#: Amazon's expectation: at least this share of messages answered within 24 hours.
AMAZON_TARGET_PCT = 90.0
#: The periods Amazon shows the metric for, in days.
AMAZON_PERIODS = (7, 30, 90)


def response_rates(*, organisation_id: int, now: datetime) -> list[tuple[str, list[Figures]]]:
    """Per channel and in total: the counts for each of AMAZON_PERIODS up to now (the
    dashboard's rate; no percentiles), from one pass over the longest period's messages
    rather than one report per period."""
    waiting = _messages([organisation_id], now - timedelta(days=max(AMAZON_PERIODS)), now, {})
    columns = [
        column
        for days in AMAZON_PERIODS
        for column in _count_columns(
            waiting, now, waiting.c.created_at >= now - timedelta(days=days)
        )
    ]
    channel = waiting.c.channel_id
    stmt = select(*columns, channel).select_from(waiting.from_).group_by(channel)
    width = len(_Counts.__dataclass_fields__)
    per_channel = {
        row[-1]: [
            _Counts(*(int(value or 0) for value in row[at : at + width]))
            for at in range(0, width * len(AMAZON_PERIODS), width)
        ]
        for row in db.session.execute(stmt)
    }
    empty = [_Counts()] * len(AMAZON_PERIODS)

    def figures(scope: str, counts: list[_Counts]) -> tuple[str, list[Figures]]:
        return scope, [Figures(scope, *astuple(c), None, None) for c in counts]

    rows = [
        figures(name, per_channel.get(channel_id, empty))
        for channel_id, name, _ in report_channels(organisation_ids=[organisation_id])
    ]
    totals = [
        _Counts(*map(sum, zip(*(astuple(c[period]) for c in per_channel.values()), strict=True)))
        if per_channel
        else _Counts()
        for period in range(len(AMAZON_PERIODS))
    ]
    rows.append(figures("total", totals))
    return rows
