"""The worker's order pass against the SP-API stand-in: which orders it asks for, when it
asks again, and that it leaves refused authorisations and MWS-only channels alone."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from ingest.orders import refresh_orders
from ingest.scheduler import (
    ORDERS_SECONDS,
    PURGE_SECONDS,
    build_scheduler,
    orders_job,
    purge_job,
)
from portal.extensions import db
from portal.models import Order
from portal.services import channels as channel_service
from portal.services import orders as order_service
from portal.services import spapi as spapi_service
from portal.sqltypes import utcnow
from tests.helpers import run_together
from tests.mailgen import amazon_message

pytestmark = pytest.mark.spapi

REFRESH_TOKEN = "Atzr|IwEBIstandin-refresh-token-for-the-order-pass-0123456789abcdWXYZ"
SHIPPED = "202-1234567-8901234"  # on its way: asked again after REFRESH_ON_ITS_WAY
UNSHIPPED = "171-9876543-2109876"  # asked again after REFRESH_UNSHIPPED


@pytest.fixture
def world(make_org, make_channel, make_thread, spapi):
    """An organisation with Irish and South African channels authorised with Amazon, a UK
    channel on an MWS token, and threads about orders on each."""
    org = make_org()
    ireland = make_channel("IE", organisation=org)
    south_africa = make_channel("ZA", organisation=org)
    uk = make_channel("UK", organisation=org)
    spapi_service.store_refresh_token(
        ireland,
        selling_partner_id=spapi.selling_partner_id,
        refresh_token=REFRESH_TOKEN,
        actor=None,
    )
    channel_service.submit_mws_token(
        uk,
        seller_id="A1B2C3D4E5F6G7",
        token="amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f",
        actor=None,
    )
    db.session.commit()
    spapi.accept_refresh_token(REFRESH_TOKEN)
    make_thread(ireland, order_id=SHIPPED)
    make_thread(ireland, order_id=SHIPPED)  # two threads, one order: asked once
    make_thread(south_africa, order_id=UNSHIPPED)
    make_thread(ireland, order_id=None)  # a pre-sale question
    make_thread(ireland, order_id="203-0000000-0000001", received_at=utcnow() - timedelta(days=90))
    make_thread(uk, order_id=SHIPPED)  # MWS only: nothing to ask with
    return {"IE": ireland, "ZA": south_africa, "UK": uk}


def api(app):
    return order_service.amazon_api(app.config, app.extensions)


def stored():
    return sorted((o.channel.marketplace, o.order_id) for o in db.session.scalars(select(Order)))


def test_new_threads_orders_are_fetched_once_and_refreshed_when_due(app, world, spapi):
    now = utcnow()
    summary = refresh_orders(api(app), now=now)
    assert (summary.fetched, dict(summary.failed)) == (2, {})
    assert stored() == [("IE", SHIPPED), ("ZA", UNSHIPPED)]
    assert spapi.calls["getOrder"] == 2

    assert refresh_orders(api(app), now=now + timedelta(minutes=5)).fetched == 0
    assert spapi.calls["getOrder"] == 2  # nothing due: Amazon is not asked

    later = now + order_service.REFRESH_UNSHIPPED
    assert refresh_orders(api(app), now=later).fetched == 1  # the unshipped one only
    assert [r["order_id"] for r in spapi.requests][-1] == UNSHIPPED
    assert refresh_orders(api(app), now=now + order_service.REFRESH_ON_ITS_WAY).fetched == 2


def test_a_refused_authorisation_stops_the_asking(app, world, spapi):
    spapi.faults = ["403", "403"]
    summary = refresh_orders(api(app), now=utcnow(), limit=1)
    assert summary.failed == {"authorisation_revoked": 1}
    calls = spapi.calls["getOrder"]
    db.session.expire_all()
    assert world["IE"].is_amazon_authorisation_needed
    assert world["ZA"].is_amazon_authorisation_needed
    assert refresh_orders(api(app), now=utcnow() + timedelta(days=30)).fetched == 0
    assert spapi.calls["getOrder"] == calls


def test_the_pass_is_bounded(app, world, spapi):
    assert refresh_orders(api(app), now=utcnow(), limit=1).fetched == 1
    assert spapi.calls["getOrder"] == 1


def test_an_order_another_worker_is_asking_for_is_passed_by(app, world, spapi):
    """Two workers running the pass at once: the order one has claimed (committed before
    its call to Amazon) is not asked for by the other; a claim whose worker died is taken
    over once it runs out."""
    now = utcnow()
    assert order_service.claim_order(world["IE"].id, SHIPPED, now=now)  # the other worker
    db.session.commit()
    assert not order_service.claim_order(world["IE"].id, SHIPPED, now=now)
    db.session.rollback()

    summary = refresh_orders(api(app), now=now)
    assert (summary.fetched, dict(summary.failed)) == (1, {})
    assert [r["order_id"] for r in spapi.requests] == [UNSHIPPED]

    later = now + order_service.CLAIM + timedelta(seconds=1)
    assert refresh_orders(api(app), now=later).fetched == 1
    assert [r["order_id"] for r in spapi.requests] == [UNSHIPPED, SHIPPED]
    (order,) = db.session.scalars(select(Order).where(Order.order_id == SHIPPED))
    assert order.fetched_at == later and order.items


def test_a_claim_between_listing_and_asking_wins(app, world, spapi, monkeypatch):
    """The other worker claims an order after this pass listed it: this pass counts it as
    taken and neither asks Amazon nor fails inserting the same row."""
    now = utcnow()
    listed = order_service.orders_to_fetch

    def listed_then_claimed_elsewhere(**kwargs):
        pairs = listed(**kwargs)
        assert order_service.claim_order(world["IE"].id, SHIPPED, now=now)
        db.session.commit()
        return pairs

    monkeypatch.setattr(order_service, "orders_to_fetch", listed_then_claimed_elsewhere)
    summary = refresh_orders(api(app), now=now)
    assert (summary.fetched, summary.taken, dict(summary.failed)) == (1, 1, {})
    assert [r["order_id"] for r in spapi.requests] == [UNSHIPPED]
    assert summary.line() == "1 orders fetched; 1 taken by another worker"


def test_workers_running_the_pass_at_once_ask_for_each_order_once(app, world, spapi):
    """Three workers' passes in threads, each with its own session and connection: every
    order is asked for once in all, and none of them meets a database error."""
    now = utcnow()
    summaries = run_together(app, *[lambda: refresh_orders(api(app), now=now)] * 3)
    assert sum(s.fetched for s in summaries) == 2
    assert [dict(s.failed) for s in summaries] == [{}, {}, {}]
    assert sorted(r["order_id"] for r in spapi.requests) == sorted([SHIPPED, UNSHIPPED])
    db.session.expire_all()
    assert stored() == [("IE", SHIPPED), ("ZA", UNSHIPPED)]


def test_the_worker_job_runs_in_its_own_app_context(app, world, spapi, caplog):
    caplog.set_level(logging.INFO, logger="ingest.scheduler")
    orders_job(app)
    assert "Orders pass: 2 orders fetched" in caplog.text
    assert stored() == [("IE", SHIPPED), ("ZA", UNSHIPPED)]


def test_the_worker_schedules_the_job_only_with_sp_api_configured(app, spapi):
    job = build_scheduler(app, BackgroundScheduler).get_job("fetch-orders")
    assert job is not None and job.max_instances == 1 and job.coalesce is True
    assert job.trigger.interval == timedelta(seconds=ORDERS_SECONDS)
    app.config["LWA_CLIENT_SECRET"] = ""
    assert build_scheduler(app, BackgroundScheduler).get_job("fetch-orders") is None
    orders_job(app)  # and a job left over does nothing
    assert spapi.calls == {}


@pytest.fixture
def paused_worker(app):
    """The worker's scheduler, started paused: its jobs have their next run times, and
    a test runs them by hand."""
    scheduler = build_scheduler(app, BackgroundScheduler)
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown(wait=False)


def orders_due_now(scheduler) -> bool:
    return scheduler.get_job("fetch-orders").next_run_time <= datetime.now(UTC)


def test_stored_mail_wakes_the_orders_pass(app, world, paused_worker, drop_mail):
    """A new buyer message's order is asked for straight away, not ORDERS_SECONDS later,
    so the agent who opens the thread finds the order beside it."""
    poll = paused_worker.get_job("poll-mailboxes")
    poll.func(*poll.args)  # a pass that stores nothing leaves the orders pass be
    assert not orders_due_now(paused_worker)
    drop_mail(amazon_message(1, world["IE"].helpdesk_address))
    poll.func(*poll.args)
    assert orders_due_now(paused_worker)


def test_a_wake_during_the_orders_pass_runs_it_once_more(app, world, paused_worker, monkeypatch):
    orders = paused_worker.get_job("fetch-orders")
    passes = []

    def a_pass_during_which_mail_is_stored(app):
        passes.append(orders_due_now(paused_worker))
        orders.func.wake()  # from the poll job's thread, while this pass runs

    monkeypatch.setattr("ingest.scheduler.orders_job", a_pass_during_which_mail_is_stored)
    orders.func(*orders.args)
    assert passes == [False]  # the wake did not ask for a second instance meanwhile
    assert orders_due_now(paused_worker)  # but the pass runs again now it has ended


def test_the_purge_runs_hourly_even_without_sp_api(app, world, spapi, caplog):
    app.config["LWA_CLIENT_ID"] = ""
    job = build_scheduler(app, BackgroundScheduler).get_job("purge-order-data")
    assert job is not None and job.trigger.interval == timedelta(seconds=PURGE_SECONDS)
    app.config["LWA_CLIENT_ID"] = spapi.client_id
    refresh_orders(api(app), now=utcnow())
    app.config["ORDER_DATA_DAYS"] = 0  # the example orders were due long ago
    caplog.set_level(logging.INFO, logger="ingest.scheduler")
    purge_job(app)
    assert "Order data purged: 2 orders reduced to ID and status" in caplog.text
    db.session.expire_all()
    assert all(o.items == [] for o in db.session.scalars(select(Order)))
