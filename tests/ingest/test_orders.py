"""The worker's order pass against the SP-API stand-in: which orders it asks for, when it
asks again, and that it leaves refused authorisations and MWS-only channels alone."""

from __future__ import annotations

import logging
from datetime import timedelta

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
