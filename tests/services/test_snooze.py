"""Snooze (services/threads.py `snooze_thread`, `wake_snoozed`; ingest/scheduler.py's job):
pending until a time, then open again; earlier when the buyer writes. The clock is
always passed in: nothing here waits."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from ingest import scheduler as worker
from portal.extensions import db
from portal.models import AuditEvent, Role, Thread, ThreadStatus
from portal.services import threads as thread_service

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=2, hours=3)


def kinds() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id)))


@pytest.fixture
def snoozed(uk, ingest, make_user):
    ingest("amazon_uk_inquiry.eml")
    thread = db.session.scalar(select(Thread))
    agent = make_user(Role.AGENT, assigned=[uk.organisation])
    thread_service.snooze_thread(thread, UNTIL, actor=agent, now=NOW)
    db.session.commit()
    return thread


def test_a_snoozed_thread_opens_again_when_its_time_comes(snoozed):
    assert snoozed.status == ThreadStatus.PENDING and snoozed.snoozed_until == UNTIL
    assert kinds()[-2:] == ["thread.status_changed", "thread.snoozed"]

    assert thread_service.wake_snoozed(now=UNTIL - timedelta(seconds=1)) == 0
    assert snoozed.status == ThreadStatus.PENDING

    assert thread_service.wake_snoozed(now=UNTIL) == 1
    db.session.commit()
    assert snoozed.status == ThreadStatus.OPEN and snoozed.snoozed_until is None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "thread.snooze_ended"))
    assert event.actor_id is None and event.details == {"until": UNTIL.isoformat()}
    assert thread_service.wake_snoozed(now=UNTIL + timedelta(days=1)) == 0


def test_the_buyer_writing_ends_the_snooze_early(snoozed, ingest):
    ingest("amazon_uk_followup.eml")
    db.session.refresh(snoozed)
    assert snoozed.status == ThreadStatus.OPEN and snoozed.snoozed_until is None
    assert thread_service.wake_snoozed(now=UNTIL) == 0


def test_a_status_set_by_hand_ends_the_snooze(snoozed, make_user):
    admin = make_user(Role.ADMIN)
    thread_service.set_thread_status(snoozed, ThreadStatus.CLOSED, actor=admin)
    assert snoozed.snoozed_until is None
    assert thread_service.wake_snoozed(now=UNTIL) == 0
    assert snoozed.status == ThreadStatus.CLOSED


def test_a_snooze_must_end_in_the_future(uk, make_thread, make_user):
    thread = make_thread(uk)
    agent = make_user(Role.AGENT, assigned=[uk.organisation])
    with pytest.raises(thread_service.ThreadActionError, match="in the future"):
        thread_service.snooze_thread(thread, NOW, actor=agent, now=NOW)
    assert thread.status == ThreadStatus.OPEN and thread.snoozed_until is None


def test_the_worker_job_wakes_snoozed_threads_by_its_clock(app, snoozed, monkeypatch, caplog):
    job = worker.build_scheduler(app, BackgroundScheduler).get_job("wake-snoozed")
    assert job.trigger.interval == timedelta(seconds=worker.SNOOZE_SECONDS)
    assert job.max_instances == 1 and job.coalesce is True
    caplog.set_level(logging.INFO, logger="ingest.scheduler")

    monkeypatch.setattr(worker, "utcnow", lambda: UNTIL - timedelta(minutes=1))
    job.func(*job.args)
    db.session.expire_all()
    assert db.session.get(Thread, snoozed.id).status == ThreadStatus.PENDING

    monkeypatch.setattr(worker, "utcnow", lambda: UNTIL + timedelta(seconds=1))
    job.func(*job.args)
    db.session.expire_all()
    assert db.session.get(Thread, snoozed.id).status == ThreadStatus.OPEN
    assert "Snooze pass: 1 threads open again" in caplog.text
