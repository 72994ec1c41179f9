"""The response-time metric (services/reports.py) against hand-built scenarios whose
numbers are worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import (
    Direction,
    Message,
    NoResponseMark,
    Role,
    SendStatus,
    Thread,
    ThreadStatus,
)
from portal.services import reports

FRIDAY = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
START = FRIDAY - timedelta(days=1)
NOW = FRIDAY + timedelta(days=10)
_ids = count(1)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def inbound(thread: Thread, at: datetime, **flags) -> Message:
    n = next(_ids)
    message = Message(
        thread=thread,
        channel=thread.channel,
        direction=Direction.IN,
        message_id=f"<in{n}@example.com>",
        content_hash=f"in{n}",
        created_at=at,
        **flags,
    )
    db.session.add(message)
    return message


def reply(thread: Thread, at: datetime, status=SendStatus.SENT, sent_at=..., author=None):
    n = next(_ids)
    db.session.add(
        Message(
            thread=thread,
            channel=thread.channel,
            direction=Direction.OUT,
            message_id=f"<out{n}@sellerdesk.test>",
            content_hash=f"out{n}",
            created_at=at,
            send_status=status,
            sent_at=at if sent_at is ... else sent_at,
            author=author,
        )
    )


@pytest.fixture
def scenario(make_org, make_channel, make_thread, make_user):
    """UK: weekend, one reply for three, an auto-reply between; DE: a failed reply
    resent later, "no response needed", a bounced reply, one recent open message."""
    org = make_org("Scenario Ltd")
    uk = make_channel("UK", organisation=org)
    de = make_channel("DE", organisation=org)
    agent = make_user(Role.AGENT, assigned=[org])

    def thread(channel):
        return make_thread(channel, texts=(), received_at=FRIDAY)

    # Weekend: Friday 18:00 answered Monday 09:00 (63 h, late); Saturday 10:00
    # answered Saturday 20:00 (10 h).
    weekend = thread(uk)
    inbound(weekend, FRIDAY + hours(9))
    reply(weekend, FRIDAY + hours(72))
    saturday = thread(uk)
    inbound(saturday, FRIDAY + hours(25))
    reply(saturday, FRIDAY + hours(35))
    # One reply (the agent's) answers three: 3 h, 2 h, 1 h.
    three = thread(uk)
    for h in (0, 1, 2):
        inbound(three, FRIDAY + hours(h))
    reply(three, FRIDAY + hours(3), author=agent)
    # An auto-reply in between does not count: 2 h.
    auto = thread(uk)
    inbound(auto, FRIDAY)
    inbound(auto, FRIDAY + hours(1), is_autoreply=True)
    reply(auto, FRIDAY + hours(2))
    # A failed reply after 1 h, resent and sent after 30 h: late.
    failed = thread(de)
    inbound(failed, FRIDAY)
    reply(failed, FRIDAY + hours(1), status=SendStatus.FAILED, sent_at=None)
    reply(failed, FRIDAY + hours(30))
    # "No response needed": not counted at all.
    marked = thread(de)
    message = inbound(marked, FRIDAY)
    db.session.flush()
    db.session.add(NoResponseMark(message_id=message.id, thread_id=marked.id))
    # A reply that bounced (sent, then FAILED): open and overdue.
    bounced = thread(de)
    inbound(bounced, FRIDAY)
    reply(bounced, FRIDAY + hours(1), status=SendStatus.FAILED, sent_at=FRIDAY + hours(1))
    # Received two hours ago: open, not yet overdue.
    recent = thread(de)
    inbound(recent, NOW - hours(2))
    # Outside the period: ignored.
    inbound(thread(de), START - hours(1))
    db.session.commit()
    return org, uk, de, agent


def test_the_hand_worked_figures(scenario):
    org, uk, de, agent = scenario
    rows = reports.channel_report(
        organisation_ids=[org.id], start=START, end=NOW + hours(1), now=NOW
    )
    by_scope = {row.scope: row for row in rows}
    assert [row.scope for row in rows] == ["DE", "UK", "total"]

    # UK: 6 messages; 5 within 24 h, the weekend one late; times 1,2,2,3,10,63 h:
    # median (2+3)/2 = 2.5 h; p90 at position 4.5: 10 + 0.5 * 53 = 36.5 h.
    uk_row = by_scope["UK"]
    assert (uk_row.messages, uk_row.answered_24h, uk_row.late) == (6, 5, 1)
    assert (uk_row.open, uk_row.open_overdue) == (0, 0)
    assert uk_row.median_seconds == pytest.approx(2.5 * 3600, abs=1)
    assert uk_row.p90_seconds == pytest.approx(36.5 * 3600, abs=1)
    assert uk_row.answered_24h_pct == 83.3

    # DE: resent (late, 30 h), bounced (open, overdue), recent (open); the marked one
    # and the one before the period do not count.
    de_row = by_scope["DE"]
    assert (de_row.messages, de_row.answered_24h, de_row.late) == (3, 0, 1)
    assert (de_row.open, de_row.open_overdue) == (2, 1)
    assert de_row.median_seconds == pytest.approx(30 * 3600, abs=1)
    assert de_row.p90_seconds == pytest.approx(30 * 3600, abs=1)
    assert de_row.answered_24h_pct == 0.0

    # Total: 9 messages, 5 within 24 h (55.6 %), 2 late, 2 open, 1 overdue;
    # times 1,2,2,3,10,30,63 h: median 3 h; p90 at 5.4: 30 + 0.4 * 33 = 43.2 h.
    total = by_scope["total"]
    assert (total.messages, total.answered_24h, total.late) == (9, 5, 2)
    assert (total.open, total.open_overdue) == (2, 1)
    assert total.answered_24h_pct == 55.6
    assert total.median_seconds == pytest.approx(3 * 3600, abs=1)
    assert total.p90_seconds == pytest.approx(43.2 * 3600, abs=1)


def test_scope_by_agent_marketplace_and_organisation(scenario, make_channel, make_thread):
    org, uk, de, agent = scenario
    other = make_thread(make_channel("UK"), received_at=FRIDAY)  # another organisation
    assert other.organisation_id != org.id

    def figures(**kwargs):
        return reports.response_figures(
            scope="x", start=START, end=NOW + hours(1), now=NOW, **kwargs
        )

    # The agent's one reply answered three messages: 1, 2, 3 h.
    by_agent = figures(organisation_ids=[org.id], agent_id=agent.id)
    assert (by_agent.messages, by_agent.answered_24h) == (3, 3)
    assert by_agent.median_seconds == pytest.approx(2 * 3600, abs=1)
    assert figures(organisation_ids=[org.id], marketplace="DE").messages == 3
    # Another organisation's message never counts in this one's figures.
    assert figures(organisation_ids=[org.id]).messages == 9
    assert figures(organisation_ids=[other.organisation_id]).messages == 1
    assert figures(organisation_ids=None).messages == 10


def test_no_messages_no_percentage(make_org, make_channel):
    org = make_org()
    make_channel("UK", organisation=org)
    rows = reports.channel_report(organisation_ids=[org.id], start=START, end=NOW, now=NOW)
    assert rows[-1].messages == 0
    assert rows[-1].answered_24h_pct is None
    assert rows[-1].median_seconds is None


def test_dashboard_rates_per_period(scenario, make_channel, make_thread):
    org, uk, de, agent = scenario
    make_thread(make_channel("DE"), received_at=NOW - hours(3))  # another organisation
    rates = dict(reports.response_rates(organisation_id=org.id, now=NOW))
    assert list(rates) == ["DE", "UK", "total"]
    # 7 days: only DE's recent message (open); 30 and 90 days: all nine of the report,
    # plus DE's message from before its period (open and overdue).
    counts = {
        scope: [(f.messages, f.answered_24h, f.late, f.open, f.open_overdue) for f in figures]
        for scope, figures in rates.items()
    }
    assert counts["DE"] == [(1, 0, 0, 1, 0), (4, 0, 1, 3, 2), (4, 0, 1, 3, 2)]
    assert counts["UK"] == [(0, 0, 0, 0, 0), (6, 5, 1, 0, 0), (6, 5, 1, 0, 0)]
    assert counts["total"] == [(1, 0, 0, 1, 0), (10, 5, 2, 3, 2), (10, 5, 2, 3, 2)]
    assert [f.answered_24h_pct for f in rates["total"]] == [0.0, 50.0, 50.0]
    # The same counts as the full report of each period.
    for at, days in enumerate(reports.AMAZON_PERIODS):
        report = reports.channel_report(
            organisation_ids=[org.id], start=NOW - timedelta(days=days), end=NOW, now=NOW
        )
        assert [
            (row.scope, row.messages, row.answered_24h, row.late, row.open) for row in report
        ] == [
            (scope, f[at].messages, f[at].answered_24h, f[at].late, f[at].open)
            for scope, f in rates.items()
        ]


def test_messages_per_day_with_the_rate(scenario):
    org, uk, de, agent = scenario
    days = reports.messages_per_day(organisation_ids=[org.id], start=START, end=NOW + hours(1))
    # 19 November (the period's start, nothing in it) to 30 November.
    assert [d.day.day for d in days] == list(range(19, 31))
    by_day = {d.day.day: (d.messages, d.answered_24h) for d in days}
    # Friday: weekend 18:00, three, auto, failed, bounced = 7; three + auto within 24 h.
    assert by_day[20] == (7, 4)
    assert by_day[21] == (1, 1)
    assert by_day[30] == (1, 0)
    assert sum(d.messages for d in days) == 9
    assert days[1].answered_24h_pct == 57.1


def test_replies_per_agent_and_open_threads_per_assignee(scenario):
    org, uk, de, agent = scenario
    thread = db.session.scalar(select(Thread).order_by(Thread.id).limit(1))
    thread.assignee = agent
    db.session.commit()
    # Only the agent's reply has an author; the others came from nobody we know.
    assert reports.replies_per_agent(organisation_ids=[org.id], start=START, end=NOW) == [
        (agent.email, 1)
    ]
    assert reports.replies_per_agent(organisation_ids=[org.id], start=NOW, end=NOW) == []
    # Nine threads open (the scenario's and the one before the period), one assigned.
    assert dict(reports.open_threads_per_assignee(organisation_ids=[org.id])) == {
        None: 8,
        agent.email: 1,
    }


def test_backlog_by_time_left(scenario):
    org, uk, de, agent = scenario
    late_soon = Thread(channel=de, organisation_id=org.id, subject="x")
    db.session.add(late_soon)
    inbound(late_soon, NOW - hours(21))
    db.session.commit()
    # Overdue: the bounced one and the one before the period; 3 h left: the one
    # received 21 h ago; 22 h left: the one received 2 h ago.
    assert reports.backlog(organisation_ids=[org.id], now=NOW) == {
        "overdue": 2,
        "under_4h": 1,
        "under_24h": 1,
        "later": 0,
    }


def _threads(org):
    """The scenario's threads by their first message's order of creation."""
    return db.session.scalars(
        select(Thread).where(Thread.organisation_id == org.id).order_by(Thread.id)
    ).all()


def _close(thread: Thread, at: datetime) -> None:
    thread.status = ThreadStatus.CLOSED
    thread.closed_at = at


def test_first_response_per_thread_and_time_to_close(scenario):
    org, uk, de, agent = scenario
    weekend, saturday, three, auto, failed, marked, bounced, recent, before = _threads(org)
    _close(three, FRIDAY + hours(4))  # 4 h after its first message
    _close(saturday, FRIDAY + hours(36))  # 11 h after its message at +25 h
    _close(weekend, NOW + hours(2))  # after the period
    _close(marked, FRIDAY + hours(5))  # nothing needing an answer: not counted
    three.assignee = agent
    # The thread begun before the period writes again within it: still not begun in it.
    inbound(before, FRIDAY + hours(1))
    db.session.commit()
    rows = reports.channel_report(
        organisation_ids=[org.id], start=START, end=NOW + hours(1), now=NOW
    )
    by_scope = {row.scope: row for row in rows}

    # Threads whose first message needing an answer fell in the period: weekend, saturday,
    # three, auto (UK), failed, bounced, recent (DE); not the marked one (nothing needs
    # an answer) nor the one before the period. First responses: weekend 63 h, saturday
    # 10 h, three 3 h (from its first message), auto 2 h, failed 30 h.
    # UK 2, 3, 10, 63: median 6.5 h; p90 at 2.7: 10 + 0.7 * 53 = 47.1 h.
    uk_row = by_scope["UK"]
    assert uk_row.threads == 4
    assert uk_row.first_response_median_seconds == pytest.approx(6.5 * 3600, abs=1)
    assert uk_row.first_response_p90_seconds == pytest.approx(47.1 * 3600, abs=1)
    # DE: failed 30 h; bounced and recent unanswered.
    assert by_scope["DE"].threads == 3
    assert by_scope["DE"].first_response_median_seconds == pytest.approx(30 * 3600, abs=1)
    # Total 2, 3, 10, 30, 63: median 10 h; p90 at 3.6: 30 + 0.6 * 33 = 49.8 h.
    total = by_scope["total"]
    assert total.threads == 7
    assert total.first_response_median_seconds == pytest.approx(10 * 3600, abs=1)
    assert total.first_response_p90_seconds == pytest.approx(49.8 * 3600, abs=1)

    # Closed in the period: three (4 h) and saturday (11 h): median 7.5 h; p90 at 0.9:
    # 4 + 0.9 * 7 = 10.3 h. Both UK.
    assert (total.closed, by_scope["UK"].closed, by_scope["DE"].closed) == (2, 2, 0)
    assert total.close_median_seconds == pytest.approx(7.5 * 3600, abs=1)
    assert total.close_p90_seconds == pytest.approx(10.3 * 3600, abs=1)
    assert by_scope["DE"].close_median_seconds is None

    # The agent: the first reply of one thread (three, 3 h); the one closed thread
    # assigned to them (three, 4 h).
    by_agent = reports.response_figures(
        scope="agent",
        organisation_ids=[org.id],
        start=START,
        end=NOW + hours(1),
        now=NOW,
        agent_id=agent.id,
    )
    assert by_agent.threads == 1
    assert by_agent.first_response_median_seconds == pytest.approx(3 * 3600, abs=1)
    assert by_agent.closed == 1
    assert by_agent.close_median_seconds == pytest.approx(4 * 3600, abs=1)
    # The CSV's columns: the old ones first, the new ones after, in minutes.
    row = dict(zip(reports.REPORT_COLUMNS, reports.report_row(total), strict=True))
    assert list(row)[:9] == [
        "scope",
        "messages",
        "answered_24h",
        "answered_24h_pct",
        "late",
        "open",
        "open_overdue",
        "median_response_minutes",
        "p90_response_minutes",
    ]
    assert row["threads"] == "7"
    assert row["first_response_median_minutes"] == "600.0"
    assert row["first_response_p90_minutes"] == "2988.0"
    assert (row["closed"], row["close_median_minutes"], row["close_p90_minutes"]) == (
        "2",
        "450.0",
        "618.0",
    )


def test_response_time_distribution(scenario):
    org, uk, de, agent = scenario

    def distribution(**filters):
        return {
            key: n
            for key, _, n in reports.response_distribution(
                organisation_ids=[org.id], start=START, end=NOW + hours(1), **filters
            )
        }

    # Answered messages: 1, 2, 2, 3 h (three and auto), 10 h, 30 h, 63 h. An answer
    # after exactly one hour is not under one hour.
    assert distribution() == {
        "under_1h": 0,
        "1_4h": 4,
        "4_12h": 1,
        "12_24h": 0,
        "24_48h": 1,
        "over_48h": 1,
    }
    assert distribution(marketplace="DE") == dict.fromkeys(distribution(), 0) | {"24_48h": 1}
    assert sum(distribution(agent_id=agent.id).values()) == 3


def test_agent_report(scenario, make_user):
    org, uk, de, agent = scenario
    make_user(Role.AGENT, assigned=[org])  # replied to nothing: not listed
    rows = reports.agent_report(organisation_ids=[org.id], start=START, end=NOW)
    # One reply, sent Friday 12:00, answering three messages in 1, 2, 3 h: all within
    # 24 h; median 2 h; p90 at 1.8: 2 + 0.8 * 1 = 2.8 h.
    assert [(r.name, r.replies, r.answered, r.answered_24h) for r in rows] == [
        (agent.email, 1, 3, 3)
    ]
    assert rows[0].answered_24h_pct == 100.0
    assert rows[0].median_seconds == pytest.approx(2 * 3600, abs=1)
    assert rows[0].p90_seconds == pytest.approx(2.8 * 3600, abs=1)
    assert (
        reports.agent_report(organisation_ids=[org.id], start=START, end=NOW, marketplace="DE")
        == []
    )


def test_filters_on_the_other_figures(scenario):
    org, uk, de, agent = scenario
    weekend, saturday, three, auto, failed, marked, bounced, recent, before = _threads(org)
    bounced.assignee = agent
    db.session.commit()
    # The agent filter on what is still open is by assignee: the bounced thread.
    assert reports.backlog(organisation_ids=[org.id], now=NOW, agent_id=agent.id) == {
        "overdue": 1,
        "under_4h": 0,
        "under_24h": 0,
        "later": 0,
    }
    assert reports.backlog(organisation_ids=[org.id], now=NOW, channel_id=uk.id) == dict.fromkeys(
        reports.BACKLOG_BUCKETS, 0
    )
    # Open threads: four UK; five DE (failed, marked, bounced, recent, before).
    assert reports.open_threads_per_assignee(organisation_ids=[org.id], channel_id=uk.id) == [
        (None, 4)
    ]
    assert dict(reports.open_threads_per_assignee(organisation_ids=[org.id], marketplace="DE")) == {
        None: 4,
        agent.email: 1,
    }
    # UK per day: Friday weekend, three x 3, auto = 5, four within 24 h; Saturday 1 of 1.
    days = reports.messages_per_day(
        organisation_ids=[org.id], start=START, end=NOW + hours(1), channel_id=uk.id
    )
    by_day = {d.day.day: (d.messages, d.answered_24h) for d in days}
    assert (by_day[20], by_day[21], by_day[30]) == ((5, 4), (1, 1), (0, 0))
    # The agent's day: the three messages they answered.
    days = reports.messages_per_day(
        organisation_ids=[org.id], start=START, end=NOW + hours(1), agent_id=agent.id
    )
    assert sum(d.messages for d in days) == 3
    # A channel filter keeps that channel's row, and the total is that channel's.
    rows = reports.channel_report(
        organisation_ids=[org.id], start=START, end=NOW + hours(1), now=NOW, channel_id=de.id
    )
    assert [(r.scope, r.messages) for r in rows] == [("DE", 3), ("total", 3)]
