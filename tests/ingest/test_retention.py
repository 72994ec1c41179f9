"""The worker's retention job (ingest/scheduler.py `retention_job`, ingest/retention.py):
scheduled hourly, run in its own app context, logged with counts. The services' rules
are tested in tests/services/test_buyer_data.py."""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from ingest.scheduler import PURGE_SECONDS, build_scheduler, retention_job
from portal.extensions import db
from portal.models import Thread, ThreadStatus
from portal.services.settings import TEXT_RETENTION_KEY, set_setting
from portal.sqltypes import utcnow


def test_the_retention_job_runs_hourly_and_logs_its_counts(app, make_thread, caplog):
    job = build_scheduler(app, BackgroundScheduler).get_job("buyer-data-retention")
    assert job is not None and job.trigger.interval == timedelta(seconds=PURGE_SECONDS)
    thread = make_thread(texts=("one", "two"))
    thread.status = ThreadStatus.CLOSED
    thread.closed_at = utcnow() - timedelta(days=app.config["TEXT_RETENTION_DAYS"] + 1)
    db.session.commit()
    caplog.set_level(logging.INFO, logger="ingest.scheduler")
    retention_job(app)
    assert "Buyer data retention:" in caplog.text and "'messages': 2" in caplog.text
    db.session.expire_all()
    assert db.session.get(Thread, thread.id).erased_at is not None
    caplog.clear()
    retention_job(app)
    assert "Buyer data retention" not in caplog.text


def test_the_retention_job_follows_the_admins_setting(app, make_thread):
    set_setting(TEXT_RETENTION_KEY, 10, actor=None)
    thread = make_thread()
    thread.status = ThreadStatus.CLOSED
    thread.closed_at = utcnow() - timedelta(days=11)
    db.session.commit()
    retention_job(app)
    db.session.expire_all()
    assert db.session.get(Thread, thread.id).erased_at is not None
