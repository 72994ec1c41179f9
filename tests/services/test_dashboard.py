"""The dashboards' figures (services/dashboard.py) against hand-built data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal.extensions import db
from portal.models import (
    ChannelStatus,
    Direction,
    Mailbox,
    MailboxPollHour,
    Message,
    Role,
    ThreadStatus,
)
from portal.services import dashboard, mailboxes, spapi
from portal.sqltypes import utcnow
from tests.helpers import connect_with_mws_token

#: A fixed "now" in the afternoon, so that hours and days fall where the test says.
NOW = datetime(2026, 12, 6, 15, 20, tzinfo=UTC)


def _add_message(channel, *, at, mailbox=None, direction=Direction.IN, n=[0]):  # noqa: B006
    n[0] += 1
    message = Message(
        channel=channel,
        mailbox_id=mailbox.id if mailbox else None,
        direction=direction,
        message_id=f"<d{n[0]}@example.com>",
        content_hash=f"d{n[0]}",
        created_at=at,
    )
    db.session.add(message)
    return message


def test_setup_steps_authorisation_and_forwarding(make_org, make_channel):
    org = make_org("Alpha Ltd")
    make_channel("UK", organisation=org)
    mws = make_channel("DE", organisation=org)
    connect_with_mws_token(mws)
    mws.forwarding_confirmed_at = NOW - timedelta(days=2)
    amazon = make_channel("US", organisation=org)
    spapi.store_refresh_token(
        amazon, selling_partner_id="A1B2C3D4E5F6G7", refresh_token="Atzr|abc123", actor=None
    )
    amazon.status = ChannelStatus.ACTIVE
    amazon.is_amazon_authorisation_needed = True
    amazon.first_message_at = NOW - timedelta(days=30)
    amazon.last_message_at = NOW - timedelta(days=9, hours=3)
    amazon.approved_sender_confirmed_at = NOW - timedelta(days=30)
    db.session.commit()

    rows = {
        row.channel.marketplace: row
        for row in dashboard.channel_overview(organisation_ids=[org.id], now=NOW)
    }

    assert list(rows) == ["DE", "UK", "US"]
    assert (rows["UK"].steps_done, rows["UK"].authorisation) == (0, "none")
    # Token (steps 1 and 2) and forwarding confirmed by the seller, not yet verified.
    assert (rows["DE"].steps_done, rows["DE"].authorisation) == (3, "mws")
    assert rows["DE"].is_forwarding_verified is False
    assert (rows["US"].steps_done, rows["US"].authorisation) == (4, "amazon")
    assert rows["US"].is_forwarding_verified is True
    assert rows["US"].channel.is_amazon_authorisation_needed is True
    # Active and nothing for 9 whole days; the others are not active, so never "silent".
    assert rows["US"].silent_days == 9
    assert rows["UK"].silent_days is None and rows["DE"].silent_days is None


def test_volume_per_day_is_scoped_to_the_organisation(make_org, make_channel):
    org = make_org("Alpha Ltd")
    uk = make_channel("UK", organisation=org)
    other = make_channel("UK", organisation=make_org("Beta GmbH"))
    for at in (
        NOW,  # today
        NOW.replace(hour=0, minute=0),  # today's first moment
        NOW - timedelta(days=1),
        NOW - timedelta(days=6),  # the oldest day shown
        NOW - timedelta(days=7),  # too old
    ):
        _add_message(uk, at=at)
    _add_message(uk, at=NOW - timedelta(hours=1), direction=Direction.OUT)  # a reply: not volume
    _add_message(other, at=NOW)  # another organisation's
    db.session.commit()

    (row,) = dashboard.channel_overview(organisation_ids=[org.id], now=NOW)

    assert [(d.day.isoformat(), d.count) for d in row.volume] == [
        ("2026-11-30", 1),
        ("2026-12-01", 0),
        ("2026-12-02", 0),
        ("2026-12-03", 0),
        ("2026-12-04", 0),
        ("2026-12-05", 1),
        ("2026-12-06", 2),
    ]
    assert row.volume_total == 4


def test_answers_due_overdue_and_soon(make_org, make_channel, make_thread, make_user):
    now = utcnow()
    alpha, beta = make_org("Alpha Ltd"), make_org("Beta GmbH")
    uk = make_channel("UK", organisation=alpha)
    late = make_thread(uk, received_at=now - timedelta(hours=30))
    later = make_thread(uk, received_at=now - timedelta(hours=25))
    soon = make_thread(uk, received_at=now - timedelta(hours=21))
    make_thread(uk, received_at=now - timedelta(hours=19))  # 5 hours left: not yet
    make_thread(uk, received_at=now - timedelta(hours=40), status=ThreadStatus.CLOSED)
    make_thread(uk, received_at=now - timedelta(hours=40), awaiting=False)  # answered
    make_thread(make_channel("DE", organisation=beta), received_at=now - timedelta(hours=30))
    seller = make_user(Role.SELLER, organisation=alpha)
    agent = make_user(Role.AGENT, assigned=[beta])

    due = dashboard.answers_due(seller, now=now)

    assert [t.id for t in due.overdue] == [late.id, later.id]
    assert [t.id for t in due.soon] == [soon.id]
    assert (due.overdue_count, due.soon_count) == (2, 1)
    capped = dashboard.answers_due(seller, now=now, limit=1)
    assert [t.id for t in capped.overdue] == [late.id] and capped.overdue_count == 2
    theirs = dashboard.answers_due(agent, now=now)
    assert (theirs.overdue_count, theirs.soon_count) == (1, 0)
    assert theirs.overdue[0].organisation_id == beta.id


@pytest.fixture
def two_mailboxes(app):
    first = Mailbox(name="alpha-box", source_url="maildir:/tmp/a")
    second = Mailbox(name="beta-box", source_url="maildir:/tmp/b")
    db.session.add_all([first, second])
    db.session.commit()
    return first, second


def test_mailbox_activity_per_hour_and_day(make_channel, two_mailboxes):
    first, second = two_mailboxes
    uk = make_channel("UK")
    hour = NOW.replace(minute=0)
    for at in (NOW, hour, hour - timedelta(minutes=1), NOW - timedelta(hours=23)):
        _add_message(uk, at=at, mailbox=first)
    _add_message(uk, at=NOW - timedelta(hours=24), mailbox=first)  # yesterday, not in 24 h
    _add_message(uk, at=NOW - timedelta(days=6, hours=15), mailbox=first)  # 30 Nov 00:20
    _add_message(uk, at=NOW - timedelta(days=7), mailbox=first)  # too old for both
    _add_message(None, at=NOW, mailbox=second)  # unrouted mail still counts as stored
    _add_message(uk, at=NOW)  # not from a mailbox (a reply, an HTTP delivery)
    db.session.commit()
    # Polls: two in this hour, one failed; one failure three days ago.
    mailboxes.count_poll(first, failed=False, now=NOW)
    mailboxes.count_poll(first, failed=True, now=NOW + timedelta(minutes=5))
    mailboxes.count_poll(first, failed=True, now=NOW - timedelta(days=3))
    db.session.commit()

    activity = {a.mailbox.name: a for a in dashboard.mailbox_activity(now=NOW)}

    a = activity["alpha-box"]
    assert len(a.hours) == 24 and a.hours[-1].start == hour
    assert a.hours[0].start == hour - timedelta(hours=23)
    assert [(h.messages, h.polls, h.failures) for h in a.hours[-2:]] == [(1, 0, 0), (2, 2, 1)]
    assert a.hours[0].messages == 1  # 23 hours ago
    assert sum(h.messages for h in a.hours) == 4
    assert [(d.start.day, d.messages, d.polls, d.failures) for d in a.days] == [
        (30, 1, 0, 0),
        (1, 0, 0, 0),
        (2, 0, 0, 0),
        (3, 0, 1, 1),
        (4, 0, 0, 0),
        (5, 2, 0, 0),  # 16:20 (in the last 24 hours) and 15:20 (not)
        (6, 3, 2, 1),
    ]
    b = activity["beta-box"]
    assert sum(h.messages for h in b.hours) == 1 and sum(d.failures for d in b.days) == 0


def test_poll_hours_are_pruned_after_eight_days(two_mailboxes):
    first, second = two_mailboxes
    mailboxes.count_poll(first, failed=True, now=NOW - timedelta(days=9))
    mailboxes.count_poll(second, failed=True, now=NOW - timedelta(days=9))
    mailboxes.count_poll(first, failed=True, now=NOW - timedelta(days=7))
    mailboxes.count_poll(first, failed=False, now=NOW)
    db.session.commit()

    kept = db.session.query(MailboxPollHour.mailbox_id, MailboxPollHour.hour).all()
    # The first mailbox's 9-day-old row went when it polled; the other's waits for its next poll.
    assert sorted((m, h.replace(tzinfo=UTC) if h.tzinfo is None else h) for m, h in kept) == sorted(
        [
            (second.id, (NOW - timedelta(days=9)).replace(minute=0)),
            (first.id, (NOW - timedelta(days=7)).replace(minute=0)),
            (first.id, NOW.replace(minute=0)),
        ]
    )


def test_each_organisation_counts_its_open_and_pending_threads(
    make_org, make_channel, make_thread, make_user
):
    """The dashboard's table per organisation: closed threads are not counted, pending
    ones are (they still wait on someone), and a seller sees their own row only."""
    from portal.services.organisations import list_visible_organisations, visible_organisations

    alpha, beta = make_org("Alpha"), make_org("beta")
    uk = make_channel("UK", organisation=alpha)
    make_channel("DE", organisation=alpha)
    statuses = (ThreadStatus.OPEN, ThreadStatus.PENDING, ThreadStatus.CLOSED, ThreadStatus.OPEN)
    for status in statuses:
        make_thread(uk).status = status
    make_thread(make_channel("UK", organisation=beta)).status = ThreadStatus.CLOSED
    db.session.commit()

    admin = make_user(Role.ADMIN)
    rows = [(s.organisation.name, s.channel_count, s.open_thread_count) for s in
            list_visible_organisations(admin)]  # fmt: skip
    assert rows == [("Alpha", 2, 3), ("beta", 1, 0)]
    seller = make_user(Role.SELLER, organisation=beta)
    assert [s.organisation.name for s in list_visible_organisations(seller)] == ["beta"]
    assert visible_organisations(admin) == [alpha, beta]
    assert visible_organisations(seller) == [beta]


def test_a_sellers_answers_due_name_their_organisation(
    make_org, make_channel, make_thread, make_user
):
    """A seller's lists and counts name their organisation by equality (scope_to_user),
    which lets the planner search ix_threads_org_status_awaiting (organisation, status,
    deadline) rather than every organisation's waiting threads; an agent's by their
    assignments. The figures: only their organisation's."""
    from sqlalchemy import event

    mine, other = make_org("Mine"), make_org("Other")
    for org in (mine, other):
        uk = make_channel("UK", organisation=org)
        for hours in (30, 22):
            make_thread(uk, received_at=utcnow() - timedelta(hours=hours))
    db.session.commit()
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "awaiting_reply_since" in statement:
            captured.append(statement)

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        due = dashboard.answers_due(make_user(Role.SELLER, organisation=mine), now=utcnow())
        assert len(captured) == 2  # the counts, and both lists in one
        assert all("threads.organisation_id = " in statement for statement in captured)
        assert not [statement for statement in captured if "FROM organisations" in statement]
        captured.clear()
        agent = make_user(Role.AGENT, assigned=[other])
        assert dashboard.answers_due(agent, now=utcnow()).overdue_count == 1
        assert all("agent_assignments" in statement for statement in captured)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert (due.overdue_count, due.soon_count) == (1, 1)
    assert {t.organisation_id for t in due.overdue + due.soon} == {mine.id}
