"""Browser notifications (services/notifications.py): a new thread on the user's channels,
a thread handed to them, one of theirs 2 hours before its deadline; scoped as the inbox
is (two organisations), each given to one tab only, nothing before opting in."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from portal.extensions import db
from portal.models import Role, User
from portal.services import notifications as notification_service
from portal.services import threads as thread_service
from portal.sqltypes import utcnow


def opt_in(user: User, *, at) -> None:
    assert notification_service.set_browser_notifications(user, True, now=at)
    db.session.commit()


def claimed(user: User, now) -> list[tuple[str, int | None]]:
    events = notification_service.claim_notifications(user, now=now)
    db.session.commit()
    return [(event.kind, event.thread_id) for event in events]


def test_new_threads_reach_only_those_who_may_see_them(make_user, two_channels, make_thread):
    uk, de = two_channels
    start = utcnow() - timedelta(minutes=1)
    seller_a = make_user(Role.SELLER, organisation=uk.organisation)
    seller_b = make_user(Role.SELLER, organisation=de.organisation)
    agent_a = make_user(Role.AGENT, assigned=[uk.organisation])
    admin = make_user(Role.ADMIN)
    for user in (seller_a, seller_b, agent_a, admin):
        opt_in(user, at=start)
    alpha = make_thread(uk, subject="Alpha question")
    beta = make_thread(de, subject="Beta question")
    now = utcnow() + notification_service.SETTLE + timedelta(seconds=1)

    assert claimed(seller_a, now) == [("new", alpha.id)]
    assert claimed(seller_b, now) == [("new", beta.id)]
    assert claimed(agent_a, now) == [("new", alpha.id)]
    assert sorted(claimed(admin, now)) == sorted([("new", alpha.id), ("new", beta.id)])
    # Given once: asked again, nothing.
    for user in (seller_a, seller_b, agent_a, admin):
        assert claimed(user, now + timedelta(seconds=5)) == []


def test_nothing_before_opting_in_nor_after_opting_out(make_user, two_channels, make_thread):
    uk, _ = two_channels
    seller = make_user(Role.SELLER, organisation=uk.organisation)
    make_thread(uk)
    now = utcnow() + timedelta(seconds=5)
    assert claimed(seller, now) == []
    # Opting in starts from now: the thread stored before is not news.
    opt_in(seller, at=now)
    assert claimed(seller, now + timedelta(seconds=5)) == []
    assert notification_service.set_browser_notifications(seller, False, now=now)
    db.session.commit()
    make_thread(uk)
    assert claimed(seller, utcnow() + timedelta(seconds=5)) == []


def test_a_thread_too_fresh_waits_for_the_next_ask(make_user, two_channels, make_thread):
    uk, _ = two_channels
    seller = make_user(Role.SELLER, organisation=uk.organisation)
    opt_in(seller, at=utcnow() - timedelta(minutes=1))
    thread = make_thread(uk)
    # Stamped within SETTLE of the ask: its transaction may still be open elsewhere.
    assert claimed(seller, thread.created_at + timedelta(milliseconds=500)) == []
    assert claimed(seller, utcnow() + timedelta(seconds=5)) == [("new", thread.id)]


def test_one_tab_gets_them_when_two_ask_at_once(make_user, two_channels, make_thread):
    uk, _ = two_channels
    seller = make_user(Role.SELLER, organisation=uk.organisation)
    opt_in(seller, at=utcnow() - timedelta(minutes=1))
    make_thread(uk)
    now = utcnow() + timedelta(seconds=5)
    # Another tab claimed them after this one read the cursor.
    db.session.execute(update(User).where(User.id == seller.id).values(notified_through=now))
    assert notification_service.claim_notifications(seller, now=now) == []


def test_assigned_by_someone_else_and_not_by_oneself(make_user, two_channels, make_thread):
    uk, de = two_channels
    start = utcnow() - timedelta(minutes=1)
    agent = make_user(Role.AGENT, assigned=[uk.organisation, de.organisation])
    boss = make_user(Role.ADMIN)
    first = make_thread(uk, subject="Given")
    second = make_thread(uk, subject="Taken")
    opt_in(agent, at=utcnow())
    thread_service.assign_thread(first, agent, actor=boss)
    thread_service.assign_thread(second, agent, actor=agent)
    db.session.commit()
    assert first.handed_over_at is not None and second.handed_over_at is None
    assert claimed(agent, utcnow() + timedelta(seconds=5)) == [("assigned", first.id)]
    assert start < first.handed_over_at


def test_deadline_two_hours_ahead_for_the_assignee_only(make_user, two_channels, make_thread):
    uk, de = two_channels
    now = utcnow()
    agent = make_user(Role.AGENT, assigned=[uk.organisation])
    other = make_user(Role.AGENT, assigned=[uk.organisation])
    seller_b = make_user(Role.SELLER, organisation=de.organisation)
    due = make_thread(uk, received_at=now - timedelta(hours=22, seconds=30))
    long_late = make_thread(uk, received_at=now - timedelta(hours=23))
    theirs = make_thread(uk, received_at=now - timedelta(hours=22, seconds=20))
    beta = make_thread(de, received_at=now - timedelta(hours=22, seconds=10))
    for thread, user in ((due, agent), (long_late, agent), (theirs, other)):
        thread_service.assign_thread(thread, user, actor=user)
    db.session.commit()
    for user in (agent, seller_b):
        opt_in(user, at=now - timedelta(minutes=1))
    later = now + timedelta(seconds=5)
    # (The threads are new too: made just now.)
    assert [e for e in claimed(agent, later) if e[0] == "deadline"] == [("deadline", due.id)]
    # The seller of the other organisation: its new thread, never a deadline.
    assert claimed(seller_b, later) == [("new", beta.id)]


def test_deadline_is_told_in_the_users_own_time_zone(make_user, two_channels, make_thread):
    uk, _ = two_channels
    now = utcnow()
    received = now - timedelta(hours=22, seconds=30)
    agents = {}
    for zone in ("Asia/Tokyo", None):
        agent = make_user(Role.AGENT, assigned=[uk.organisation])
        agent.time_zone = zone
        thread = make_thread(uk, received_at=received)
        thread_service.assign_thread(thread, agent, actor=agent)
        agents[zone] = agent
    db.session.commit()
    deadline = received + notification_service.RESPONSE_WINDOW
    for agent in agents.values():
        opt_in(agent, at=now - timedelta(minutes=1))
    bodies = {}
    for zone, agent in agents.items():
        events = notification_service.claim_notifications(agent, now=now + timedelta(seconds=5))
        db.session.commit()
        (bodies[zone],) = [e.body for e in events if e.kind == "deadline"]
    # Tokyo is UTC+9 all year (no summer time to make the test depend on the date).
    tokyo = (deadline + timedelta(hours=9)).strftime("%H:%M")
    assert bodies["Asia/Tokyo"].startswith(f"Amazon expects an answer by {tokyo} JST ·")
    assert bodies[None].startswith(f"Amazon expects an answer by {deadline:%H:%M} UTC ·")


def test_many_at_once_end_with_how_many_more(make_user, two_channels, make_thread):
    uk, _ = two_channels
    seller = make_user(Role.SELLER, organisation=uk.organisation)
    opt_in(seller, at=utcnow() - timedelta(minutes=1))
    for n in range(8):
        make_thread(uk, subject=f"Question {n}")
    events = notification_service.claim_notifications(seller, now=utcnow() + timedelta(seconds=5))
    assert len(events) == notification_service.MAX_SHOWN
    assert events[-1].kind == "more" and events[-1].title == "4 more in your inbox"
