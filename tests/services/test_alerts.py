"""E-mail alerts: who gets which, once, with links on PUBLIC_URL, per their settings."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ingest import scheduler as worker
from portal.extensions import db
from portal.models import AuditEvent, ChannelStatus, Mailbox, Message, OrgRole, Role
from portal.services import alerts, bulk
from portal.services import threads as thread_service

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def public_url(app):
    app.config["PUBLIC_URL"] = "https://desk.example.com"


def mails() -> list[tuple[str, str, str]]:
    """(to, subject, body) of each queued system mail, oldest first."""
    rows = db.session.scalars(
        select(Message).where(Message.thread_id.is_(None)).order_by(Message.id)
    ).all()
    out = []
    for row in rows:
        parsed = email.message_from_bytes(row.raw)
        body = parsed.get_payload(decode=True).decode(parsed.get_content_charset() or "utf-8")
        out.append((row.to_addresses, row.subject, body))
    return out


@pytest.fixture
def team(make_org, make_channel, make_user, make_thread):
    org = make_org("Kite & Co")
    channel = make_channel("UK", organisation=org)
    ana = make_user(Role.AGENT, assigned=[org], name="Ana")
    ben = make_user(Role.AGENT, assigned=[org], name="Ben")
    thread = make_thread(channel, subject="Where is my kite?", order_id="202-1234567-8901234")
    return {"org": org, "channel": channel, "ana": ana, "ben": ben, "thread": thread}


def test_an_assignment_by_someone_else_mails_the_assignee(team):
    thread, ana, ben = team["thread"], team["ana"], team["ben"]
    thread_service.assign_thread(thread, ana, actor=ben)
    db.session.commit()
    ((to, subject, body),) = mails()
    assert to == ana.email and subject == "Assigned to you: Where is my kite?"
    assert "Ben assigned you a conversation" in body
    assert "Amazon UK, Kite & Co, order 202-1234567-8901234" in body
    assert f"https://desk.example.com/threads/{thread.id}" in body
    assert "https://desk.example.com/account#alerts" in body
    assert "Where is my parcel?" not in body  # never the buyer's words


def test_no_mail_for_oneself_or_when_turned_off(team):
    thread, ana, ben = team["thread"], team["ana"], team["ben"]
    thread_service.assign_thread(thread, ana, actor=ana)
    ben.alert_assigned = False
    thread_service.assign_thread(thread, ben, actor=ana)
    db.session.commit()
    assert mails() == []


def test_a_bulk_assignment_is_one_mail(team, make_thread):
    others = [make_thread(team["channel"], subject=f"Question {n}") for n in range(3)]
    bulk.apply_bulk(others, "assign", actor=team["ben"], assignee=team["ana"])
    db.session.commit()
    ((to, subject, body),) = mails()
    assert subject == "3 conversations assigned to you" and body.count("/threads/") == 3


def test_the_deadline_warning_goes_once_per_waiting_message(team):
    thread, ana = team["thread"], team["ana"]
    thread.assignee = ana
    thread.awaiting_reply_since = NOW - timedelta(hours=21)
    db.session.commit()
    assert alerts.send_deadline_warnings(now=NOW) == 0  # 3 hours left: not yet
    later = NOW + timedelta(hours=2, minutes=30)  # 30 minutes left
    assert alerts.send_deadline_warnings(now=later) == 1
    assert alerts.send_deadline_warnings(now=later + timedelta(minutes=5)) == 0
    ((to, subject, body),) = mails()
    assert to == ana.email and subject == "Due in 30 minutes: Where is my kite?"
    assert "by 07 Dec 2026, 15:00 UTC" in body
    # A new buyer message waits: its deadline is warned of too.
    thread.awaiting_reply_since = later
    assert alerts.send_deadline_warnings(now=later + timedelta(hours=22, minutes=1)) == 1
    # Late already, unassigned, or turned off: nothing.
    assert alerts.send_deadline_warnings(now=later + timedelta(hours=25)) == 0


def test_deadline_warnings_only_to_those_who_want_them(team):
    thread, ana = team["thread"], team["ana"]
    thread.assignee, ana.alert_deadline = ana, False
    thread.awaiting_reply_since = NOW - timedelta(hours=23)
    db.session.commit()
    assert alerts.send_deadline_warnings(now=NOW) == 0


def test_the_digest_comes_once_each_morning_in_the_users_zone(
    team, make_org, make_channel, make_thread
):
    ana = team["ana"]
    ana.alert_digest, ana.time_zone = True, "Europe/Berlin"
    team["thread"].assignee = ana
    team["thread"].awaiting_reply_since = NOW - timedelta(days=2)  # overdue
    # Another organisation's thread is not Ana's to see, nor to count.
    make_thread(make_channel("DE", organisation=make_org("Other Ltd")), subject="Not hers")
    db.session.commit()
    early = datetime(2026, 12, 7, 5, 30, tzinfo=UTC)  # 06:30 in Berlin
    assert alerts.send_digests(now=early) == 0
    assert alerts.send_digests(now=early + timedelta(hours=1)) == 1  # 07:30 in Berlin
    assert alerts.send_digests(now=early + timedelta(hours=5)) == 0  # once a day
    ((to, subject, body),) = mails()
    assert subject == "Sellerdesk: what waits on 07 Dec 2026"
    assert "Assigned to you, open: 1" in body and "Past Amazon's 24 hours: 1" in body
    assert "Unassigned, open: 0" in body and "Not hers" not in body
    assert alerts.send_digests(now=early + timedelta(days=1, hours=1)) == 1  # next morning


def test_a_silent_channel_and_a_lost_authorisation_mail_the_owners_once(team, make_user):
    owner = make_user(Role.SELLER, organisation=team["org"])
    member = make_user(Role.SELLER, organisation=team["org"])
    member.org_role = OrgRole.MEMBER
    channel = team["channel"]
    channel.status = ChannelStatus.ACTIVE
    channel.last_message_at = NOW - timedelta(days=8)
    db.session.commit()
    assert alerts.send_channel_alerts(now=NOW) == 1
    assert alerts.send_channel_alerts(now=NOW + timedelta(hours=1)) == 0
    ((to, subject, body),) = mails()
    assert to == owner.email and subject == "No buyer mail for 8 days on Amazon UK"
    assert f"https://desk.example.com/channels/{channel.id}" in body
    channel.last_message_at = NOW  # mail again: armed for the next silence
    assert alerts.send_channel_alerts(now=NOW) == 0 and channel.silence_alerted_at is None
    channel.is_amazon_authorisation_needed = True
    assert alerts.send_channel_alerts(now=NOW) == 1
    assert alerts.send_channel_alerts(now=NOW) == 0
    assert mails()[-1][1] == "Amazon authorisation needed for Amazon UK"
    kinds = set(db.session.scalars(select(AuditEvent.kind)))
    assert {"channel.channel_silent_alerted", "channel.authorisation_lost_alerted"} <= kinds


def test_a_mailbox_failing_again_and_again_mails_the_admins_once(make_user):
    admin = make_user(Role.ADMIN)
    mailbox = Mailbox(name="buyers", source_url="maildir:/tmp/x", consecutive_failures=4)
    mailbox.last_error = "LOGIN failed"
    db.session.add(mailbox)
    db.session.commit()
    assert alerts.send_mailbox_alerts(now=NOW) == 0
    mailbox.consecutive_failures = 5
    assert alerts.send_mailbox_alerts(now=NOW) == 1
    assert alerts.send_mailbox_alerts(now=NOW) == 0
    ((to, subject, body),) = mails()
    assert to == admin.email and "LOGIN failed" in body
    mailbox.consecutive_failures = 0
    alerts.send_mailbox_alerts(now=NOW)
    assert mailbox.failure_alerted_at is None


def test_the_worker_runs_the_alerts_job(app):
    from apscheduler.schedulers.background import BackgroundScheduler

    job = worker.build_scheduler(app, BackgroundScheduler).get_job("send-alerts")
    assert job is not None and job.trigger.interval == timedelta(seconds=worker.ALERTS_SECONDS)
