"""Kept report figures (services/report_snapshots.py): the same figures as computing
them, when they are computed again, and what the worker's pass keeps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ingest.scheduler import reports_job
from portal.extensions import db
from portal.models import ReportSnapshot, Role
from portal.services import report_snapshots, reports
from portal.sqltypes import utcnow
from tests.helpers import add_sent_reply

FRESH = 600


@pytest.fixture
def seller_world(make_org, make_channel, make_thread, make_user):
    """One organisation, two channels; an answered message (by an agent, after 2 h), an
    open overdue one, and two open ones from an hour ago."""
    now = utcnow()
    org = make_org("Kept Ltd")
    agent = make_user(Role.AGENT, assigned=[org], name="Ann Agent")
    uk, de = make_channel("UK", organisation=org), make_channel("DE", organisation=org)
    answered = make_thread(uk, received_at=now - timedelta(hours=5))
    add_sent_reply(answered, at=now - timedelta(hours=3)).author = agent
    make_thread(uk, received_at=now - timedelta(hours=30))
    make_thread(de, texts=("a", "b"), received_at=now - timedelta(hours=1))
    db.session.commit()
    return org, uk


def test_kept_figures_read_back_as_computed(seller_world):
    """Everything the page shows survives the round trip through the kept JSON."""
    org, uk = seller_world
    now = utcnow()
    params = report_snapshots.report_params(organisation_ids=[org.id], days=30)
    computed = report_snapshots.figures(params, now=now, fresh_seconds=FRESH)
    db.session.commit()
    db.session.expire_all()
    kept = report_snapshots.figures(params, now=now + timedelta(seconds=1), fresh_seconds=FRESH)

    assert computed.kept and kept.kept and kept.computed_at == now
    assert kept.figures == computed.figures
    page = kept.figures
    start = now - timedelta(days=30)
    scope = {"organisation_ids": [org.id]}
    assert (page.start, page.end, page.now) == (start, now, now)
    assert page.rows == reports.channel_report(start=start, end=now, now=now, **scope)
    assert page.days == reports.messages_per_day(start=start, end=now, **scope)
    assert page.agents == reports.agent_report(start=start, end=now, **scope)
    assert page.distribution == reports.response_distribution(start=start, end=now, **scope)
    assert page.assignees == reports.open_threads_per_assignee(**scope)
    assert page.backlog == reports.backlog(now=now, **scope)
    # The scenario's numbers, so that the comparison above compares something.
    assert [(f.scope, f.messages, f.answered_24h, f.open) for f in page.rows] == [
        ("DE", 2, 0, 2),
        ("UK", 2, 1, 1),
        ("total", 4, 1, 3),
    ]
    assert [(a.name, a.replies, a.answered) for a in page.agents] == [("Ann Agent", 1, 1)]


def test_rates_read_back_as_computed(seller_world):
    org, uk = seller_world
    now = utcnow()
    params = report_snapshots.rates_params(organisation_id=org.id)
    report_snapshots.figures(params, now=now, fresh_seconds=FRESH)
    db.session.commit()
    db.session.expire_all()
    kept = report_snapshots.figures(params, now=now, fresh_seconds=FRESH)
    assert kept.figures == reports.response_rates(organisation_id=org.id, now=now)
    assert [(scope, [f.messages for f in per]) for scope, per in kept.figures][-1] == (
        "total",
        [4, 4, 4],
    )


def test_a_custom_period_ends_at_its_last_day_or_now(seller_world):
    org, uk = seller_world
    now = utcnow()
    today = now.date()
    params = report_snapshots.report_params(
        organisation_ids=[org.id], start=today - timedelta(days=3), end=today
    )
    page = report_snapshots.figures(params, now=now, fresh_seconds=0).figures
    assert page.end == now and page.start.date() == today - timedelta(days=3)
    assert page.rows[-1].messages == 4
    with pytest.raises(ValueError, match="either the last N days"):
        report_snapshots.report_params(organisation_ids=[org.id], days=7, start=today, end=today)


def test_the_worker_recomputes_what_was_read_and_forgets_the_rest(seller_world, make_thread):
    org, uk = seller_world
    now = utcnow()
    read_lately = report_snapshots.report_params(organisation_ids=[org.id], days=7)
    not_due = report_snapshots.report_params(organisation_ids=[org.id], days=30)
    unread = report_snapshots.report_params(organisation_ids=[org.id], days=90)
    report_snapshots.figures(read_lately, now=now - timedelta(minutes=6), fresh_seconds=FRESH)
    report_snapshots.figures(not_due, now=now - timedelta(minutes=4), fresh_seconds=FRESH)
    report_snapshots.figures(unread, now=now - timedelta(days=2), fresh_seconds=FRESH)
    make_thread(uk, received_at=now - timedelta(minutes=10))
    db.session.commit()

    recomputed = report_snapshots.refresh(now=now, fresh_seconds=FRESH, clock=lambda: now)

    assert recomputed == 1
    kept = {s.params["days"]: s for s in db.session.scalars(db.select(ReportSnapshot))}
    assert set(kept) == {7, 30}  # the one unread for two days is gone
    assert kept[7].computed_at == now
    # Recomputing is not reading: it leaves the read time, so unread ones still expire.
    assert kept[7].read_at == now - timedelta(minutes=6)
    assert kept[7].figures["rows"][-1]["messages"] == 5
    assert kept[30].computed_at == now - timedelta(minutes=4)
    page = report_snapshots.figures(read_lately, now=now, fresh_seconds=FRESH)
    assert page.computed_at == now and page.figures.rows[-1].messages == 5


def test_a_page_marks_kept_figures_read_at_most_hourly(seller_world):
    org, uk = seller_world
    now = utcnow()
    params = report_snapshots.rates_params(organisation_id=org.id)
    computed = report_snapshots.figures(params, now=now - timedelta(minutes=5), fresh_seconds=FRESH)
    assert computed.written  # a page commits what it computed
    db.session.commit()
    snapshot = db.session.scalars(db.select(ReportSnapshot)).one()
    shown = report_snapshots.figures(params, now=now, fresh_seconds=FRESH)
    assert snapshot.read_at == now - timedelta(minutes=5)  # no write per page view
    assert not shown.written  # so the page commits nothing
    snapshot.read_at = now - timedelta(hours=2)
    assert report_snapshots.figures(params, now=now, fresh_seconds=FRESH).written
    assert snapshot.read_at == now


def test_the_worker_leaves_kinds_it_does_not_know(seller_world):
    """A snapshot written by a newer version of the app, during a rolling upgrade."""
    now = utcnow()
    db.session.add(
        ReportSnapshot(
            key="f" * 64,
            params={"kind": "from-the-future"},
            figures={},
            computed_at=now - timedelta(hours=1),
            read_at=now,
        )
    )
    db.session.commit()
    assert report_snapshots.refresh(now=now, fresh_seconds=FRESH, clock=lambda: now) == 0
    assert db.session.scalars(db.select(ReportSnapshot)).one().computed_at < now


def test_the_worker_job_runs_the_pass(app, seller_world):
    org, uk = seller_world
    app.config["REPORTS_FRESH_SECONDS"] = FRESH
    params = report_snapshots.rates_params(organisation_id=org.id)
    old = utcnow() - timedelta(minutes=20)
    report_snapshots.figures(params, now=old, fresh_seconds=FRESH)
    db.session.commit()
    reports_job(app)
    db.session.expire_all()
    assert db.session.scalars(db.select(ReportSnapshot)).one().computed_at > old


@pytest.mark.parametrize(("fresh", "every"), [(600, 150), (60, 30), (0, None)])
def test_the_worker_schedules_the_pass_when_snapshots_are_on(app, fresh, every):
    from apscheduler.schedulers.background import BackgroundScheduler

    from ingest.scheduler import build_scheduler

    app.config["REPORTS_FRESH_SECONDS"] = fresh
    job = build_scheduler(app, BackgroundScheduler).get_job("report-snapshots")
    if every is None:
        assert job is None
    else:
        assert job.trigger.interval == timedelta(seconds=every)
