"""Asking Amazon for a channel's order: which channels may ask, with what, and the
process's one SP-API client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.amazon_api import AmazonApi, FailureKind
from portal.amazon_orders import AmazonOrder
from portal.config import ConfigError, config_from_env
from portal.extensions import db
from portal.models import AuditEvent, ChannelStatus, Order, Role
from portal.services import channels as channel_service
from portal.services import export as export_service
from portal.services import orders as order_service
from portal.services import spapi as spapi_service
from tests.helpers import authorise_with_amazon

REFRESH_TOKEN = "Atzr|IwEBIstandin-refresh-token-for-the-orders-service-0123456789WXYZ"
MWS_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"
ORDER = "202-1234567-8901234"


@pytest.fixture
def authorised(make_channel, make_org, spapi):
    """An Irish and a South African channel authorised with Amazon (the stand-in)."""
    org = make_org()
    ireland = make_channel("IE", organisation=org)
    make_channel("ZA", organisation=org)
    authorise_with_amazon(ireland, spapi, REFRESH_TOKEN)
    return org


def channel_of(org, code):
    return next(c for c in org.channels if c.marketplace == code)


@pytest.mark.spapi
def test_an_authorised_channel_gets_its_order_from_its_region(app, authorised, spapi):
    api = order_service.amazon_api(app.config, app.extensions)
    for code in ("IE", "ZA"):  # one European authorisation covers both
        order = order_service.fetch_order(channel_of(authorised, code), ORDER, api=api)
        assert isinstance(order, AmazonOrder) and order.order_id == ORDER
    assert spapi.calls == {"lwa_refresh": 1, "getOrder": 2}


@pytest.mark.spapi
def test_a_channel_without_sp_api_authorisation_makes_no_call(app, make_channel, spapi):
    mws = make_channel("UK")
    channel_service.submit_mws_token(mws, seller_id="A1B2C3D4E5F6G7", token=MWS_TOKEN, actor=None)
    none = make_channel("DE")
    api = order_service.amazon_api(app.config, app.extensions)
    for channel in (mws, none):
        result = order_service.fetch_order(channel, ORDER, api=api)
        assert result.kind == FailureKind.NOT_AUTHORISED
        assert "Authorise with Amazon" in result.message
    assert sum(spapi.calls.values()) == 0


@pytest.mark.spapi
@pytest.mark.parametrize("order_id", ["", "123", "202-1234567-8901234/../x", ORDER + " "])
def test_only_an_amazon_order_id_is_asked_for(app, authorised, spapi, order_id):
    api = order_service.amazon_api(app.config, app.extensions)
    result = order_service.fetch_order(channel_of(authorised, "IE"), order_id, api=api)
    assert result.kind == FailureKind.REJECTED
    assert sum(spapi.calls.values()) == 0


@pytest.mark.spapi
def test_the_process_keeps_one_client_until_the_settings_change(app, spapi):
    api = order_service.amazon_api(app.config, app.extensions)
    assert isinstance(api, AmazonApi)
    assert order_service.amazon_api(app.config, app.extensions) is api
    app.config["SPAPI_INCLUDE_PII"] = True
    changed = order_service.amazon_api(app.config, app.extensions)
    assert changed is not api and changed.settings.include_pii
    app.config["LWA_CLIENT_ID"] = ""
    assert order_service.amazon_api(app.config, app.extensions) is None


def test_config_reads_the_endpoints_and_the_pii_switch(monkeypatch, tmp_path):
    for name in ("SPAPI_INCLUDE_PII", *(f"SPAPI_ENDPOINT_{r}" for r in ("NA", "EU", "FE"))):
        monkeypatch.delenv(name, raising=False)
    config = config_from_env(str(tmp_path))
    assert config["SPAPI_ENDPOINT_NA"] == "https://sellingpartnerapi-na.amazon.com"
    assert config["SPAPI_ENDPOINT_EU"] == "https://sellingpartnerapi-eu.amazon.com"
    assert config["SPAPI_ENDPOINT_FE"] == "https://sellingpartnerapi-fe.amazon.com"
    assert config["SPAPI_INCLUDE_PII"] is False

    monkeypatch.setenv("SPAPI_ENDPOINT_EU", "http://127.0.0.1:9/")
    monkeypatch.setenv("SPAPI_ENDPOINT_FE", "")
    monkeypatch.setenv("SPAPI_INCLUDE_PII", "1")
    config = config_from_env(str(tmp_path))
    assert config["SPAPI_ENDPOINT_EU"] == "http://127.0.0.1:9/"
    assert config["SPAPI_ENDPOINT_FE"] == "" and config["SPAPI_INCLUDE_PII"] is True

    monkeypatch.setenv("SPAPI_ENDPOINT_NA", "ftp://sellingpartnerapi-na.amazon.com")
    with pytest.raises(ConfigError, match="SPAPI_ENDPOINT_NA must be an http"):
        config_from_env(str(tmp_path))


# --- the stored order -------------------------------------------------------------------

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def events(kind):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.kind == kind)).all()


@pytest.mark.spapi
def test_the_fetched_order_is_stored_for_the_panel(app, authorised, spapi):
    api = order_service.amazon_api(app.config, app.extensions)
    ireland = channel_of(authorised, "IE")
    row, _ = order_service.refresh_order(ireland, ORDER, api=api, now=NOW)
    db.session.commit()
    db.session.expire_all()
    row = db.session.scalar(select(Order))
    assert (row.channel_id, row.order_id) == (ireland.id, ORDER)
    assert (row.fulfillment_status, row.fulfilled_by) == ("SHIPPED", "MERCHANT")
    assert row.programs == ["PRIME"]
    assert row.purchased_at == datetime(2024, 12, 25, 9, 15, tzinfo=UTC)
    assert row.ship_by_latest_at == datetime(2024, 12, 26, 23, 59, 59, tzinfo=UTC)
    assert row.deliver_by_earliest_at == datetime(2024, 12, 27, tzinfo=UTC)
    assert row.delivered_at == row.deliver_by_latest_at
    assert (row.total_amount, row.total_currency) == ("103.97", "GBP")
    assert row.items == [
        {
            "title": "Echo Dot (4th Gen) | Smart speaker with Alexa | Charcoal",
            "asin": "B08DFPV54V",
            "seller_sku": "ECHO-DOT-4-UK-CHARCOAL-3PACK",
            "quantity": 3,
            "unit_price": "29.99",
            "currency": "GBP",
        }
    ]
    assert row.packages[0]["carrier"] == "Royal Mail"
    assert row.packages[0]["tracking_number"] == "RR123456789GB"
    assert row.packages[0]["status"] == "IN_TRANSIT"
    assert row.fetched_at == NOW and row.last_error == ""
    assert row.refresh_at == NOW + order_service.REFRESH_ON_ITS_WAY


@pytest.mark.spapi
@pytest.mark.parametrize(
    ("order_id", "package_status", "interval"),
    [
        ("171-9876543-2109876", None, order_service.REFRESH_UNSHIPPED),
        (ORDER, "IN_TRANSIT", order_service.REFRESH_ON_ITS_WAY),
        (ORDER, "DELIVERED", order_service.REFRESH_CLOSED),
    ],
)
def test_an_order_is_refreshed_while_it_can_change(
    app, authorised, spapi, order_id, package_status, interval
):
    if package_status:
        spapi.orders[order_id]["order"]["packages"][0]["packageStatus"]["status"] = package_status
    api = order_service.amazon_api(app.config, app.extensions)
    row, _ = order_service.refresh_order(channel_of(authorised, "IE"), order_id, api=api, now=NOW)
    assert row.refresh_at == NOW + interval


@pytest.mark.spapi
def test_a_failure_keeps_the_older_data_beside_its_sentence(app, authorised, spapi):
    api = order_service.amazon_api(app.config, app.extensions)
    ireland = channel_of(authorised, "IE")
    order_service.refresh_order(ireland, ORDER, api=api, now=NOW)
    spapi.faults = ["429"]
    later = NOW + timedelta(hours=4)
    row, _ = order_service.refresh_order(ireland, ORDER, api=api, now=later)
    assert row.fetched_at == NOW and row.items[0]["asin"] == "B08DFPV54V"
    assert "slow down" in row.last_error and row.last_error_at == later
    assert later < row.refresh_at <= later + timedelta(minutes=1)


@pytest.mark.spapi
def test_an_unreadable_answer_is_asked_for_again_a_day_later(app, authorised, spapi):
    api = order_service.amazon_api(app.config, app.extensions)
    spapi.faults = ["malformed"]
    row, _ = order_service.refresh_order(channel_of(authorised, "IE"), ORDER, api=api, now=NOW)
    assert row.fetched_at is None and row.items == [] and row.programs == []
    assert "could not be read" in row.last_error
    assert row.refresh_at == NOW + order_service.RETRY_AFTER_REFUSAL


@pytest.mark.spapi
def test_a_refused_authorisation_flags_the_channels_holding_it_once(app, authorised, spapi):
    api = order_service.amazon_api(app.config, app.extensions)
    ireland, south_africa = channel_of(authorised, "IE"), channel_of(authorised, "ZA")
    spapi.faults = ["403", "403"]
    row, _ = order_service.refresh_order(ireland, ORDER, api=api, now=NOW)
    db.session.commit()
    assert row.refresh_at is None and "Authorise with Amazon" in row.last_error
    assert ireland.is_amazon_authorisation_needed and south_africa.is_amazon_authorisation_needed
    # The flag sits beside the status, which stays what it was.
    assert ireland.status == ChannelStatus.PENDING_VERIFICATION
    flagged = events("channel.amazon_authorisation_needed")
    assert sorted(e.target_id for e in flagged) == sorted([ireland.id, south_africa.id])
    assert all(e.actor_id is None and e.details["status"] == 403 for e in flagged)

    spapi.revoke_refresh_token(REFRESH_TOKEN)  # Amazon keeps refusing: no second audit
    order_service.refresh_order(south_africa, ORDER, api=api, now=NOW)
    assert len(events("channel.amazon_authorisation_needed")) == 2

    # The seller authorises again: the flag goes on every channel of the region.
    spapi_service.store_refresh_token(
        ireland, selling_partner_id=spapi.selling_partner_id, refresh_token="Atzr|new", actor=None
    )
    assert not ireland.is_amazon_authorisation_needed
    assert not south_africa.is_amazon_authorisation_needed


# --- data protection ----------------------------------------------------------------------

DELIVERED_BY = datetime(2024, 12, 30, 23, 59, 59, tzinfo=UTC)  # the example's deliver-by end


@pytest.mark.spapi
def test_order_details_are_purged_days_after_delivery(app, authorised, spapi):
    api = order_service.amazon_api(app.config, app.extensions)
    ireland = channel_of(authorised, "IE")
    order_service.refresh_order(ireland, ORDER, api=api, now=NOW)
    db.session.commit()
    day_before = DELIVERED_BY + timedelta(days=30) - timedelta(seconds=1)
    assert order_service.purge_order_data(now=day_before, days=30) == 0
    purge_day = DELIVERED_BY + timedelta(days=30)
    assert order_service.purge_order_data(now=purge_day, days=30) == 1
    db.session.commit()
    db.session.expire_all()
    row = db.session.scalar(select(Order))
    assert (row.order_id, row.fulfillment_status) == (ORDER, "SHIPPED")  # what remains
    assert row.items == [] and row.packages == [] and row.programs == []
    assert row.total_amount is None and row.purchased_at is None
    assert row.ship_by_latest_at is None and row.deliver_by_latest_at is None
    assert row.refresh_at is None and row.purged_at == purge_day
    assert order_service.purge_order_data(now=purge_day, days=30) == 0  # once
    # Nothing asks for it again by itself…
    assert order_service.orders_to_fetch(now=purge_day, limit=10) == []
    # …and a fetch someone asks for brings the details back until the next purge.
    row, _ = order_service.refresh_order(ireland, ORDER, api=api, now=purge_day)
    assert row.items and row.purged_at is None


@pytest.mark.spapi
def test_an_order_without_dates_is_purged_days_after_it_was_stored(app, authorised, spapi):
    answer = spapi.orders[ORDER]["order"]
    del answer["createdTime"], answer["fulfillment"]["deliverByWindow"]
    api = order_service.amazon_api(app.config, app.extensions)
    row, _ = order_service.refresh_order(channel_of(authorised, "IE"), ORDER, api=api, now=NOW)
    db.session.commit()
    assert row.delivered_at is None and row.purchased_at is None
    stored_at = row.created_at
    assert order_service.purge_order_data(now=stored_at + timedelta(days=29), days=30) == 0
    assert order_service.purge_order_data(now=stored_at + timedelta(days=30), days=30) == 1


@pytest.mark.spapi
def test_order_details_are_never_exported(app, authorised, spapi, make_thread):
    make_thread(channel_of(authorised, "IE"), order_id=ORDER)
    api = order_service.amazon_api(app.config, app.extensions)
    order_service.refresh_order(channel_of(authorised, "IE"), ORDER, api=api, now=NOW)
    db.session.commit()
    exported = b"".join(
        export_service.iter_jsonl(export_service.iter_message_records(organisation=None))
    ).decode()
    assert ORDER in exported  # the order ID, as before
    for detail in ("B08DFPV54V", "Echo Dot", "RR123456789GB", "Royal Mail", "103.97"):
        assert detail not in exported


def test_order_data_days_is_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("ORDER_DATA_DAYS", raising=False)
    assert config_from_env(str(tmp_path))["ORDER_DATA_DAYS"] == 30
    monkeypatch.setenv("ORDER_DATA_DAYS", "7")
    assert config_from_env(str(tmp_path))["ORDER_DATA_DAYS"] == 7
    monkeypatch.setenv("ORDER_DATA_DAYS", "-1")
    with pytest.raises(ConfigError, match="ORDER_DATA_DAYS"):
        config_from_env(str(tmp_path))


# --- the review request -------------------------------------------------------------------


@pytest.mark.spapi
def test_a_review_request_is_sent_once_and_audited(app, authorised, spapi, make_user):
    api = order_service.amazon_api(app.config, app.extensions)
    ireland = channel_of(authorised, "IE")
    seller = make_user(Role.SELLER, organisation=authorised)
    assert order_service.review_request_offered(ireland, ORDER, api=api) is True
    assert spapi.requests[-1]["marketplace"] == "A28R8C7NBKEWEA"  # Ireland's marketplace
    assert order_service.send_review_request(ireland, ORDER, api=api, actor=seller, now=NOW) is None
    db.session.commit()
    row = db.session.scalar(select(Order))
    assert row.review_requested_at == NOW
    (sent,) = events("order.review_requested")
    assert sent.actor_id == seller.id and sent.details == {"order_id": ORDER}

    again = order_service.send_review_request(ireland, ORDER, api=api, actor=seller, now=NOW)
    assert again.kind == FailureKind.REJECTED and "already sent" in again.message
    assert spapi.calls["createProductReviewAndSellerFeedbackSolicitation"] == 1  # not asked
    (failed,) = events("order.review_request_failed")
    assert failed.details["why"] == "rejected" and "already sent" in failed.details["message"]


@pytest.mark.spapi
def test_amazons_refusals_of_a_review_request_are_audited(app, authorised, spapi):
    api = order_service.amazon_api(app.config, app.extensions)
    ireland = channel_of(authorised, "IE")
    spapi.review_window.clear()
    result = order_service.send_review_request(ireland, ORDER, api=api, actor=None, now=NOW)
    assert result.kind == FailureKind.REJECTED and "not available" in result.message
    spapi.faults = ["403", "403"]
    other = "171-9876543-2109876"
    result = order_service.send_review_request(ireland, other, api=api, actor=None, now=NOW)
    assert result.kind == FailureKind.AUTHORISATION_REVOKED
    assert ireland.is_amazon_authorisation_needed
    assert [e.details["why"] for e in events("order.review_request_failed")] == [
        "rejected",
        "authorisation_revoked",
    ]
    assert db.session.scalars(select(Order.review_requested_at)).all() == [None, None]


# --- what the thread page's panel asks of the service --------------------------------------

#: Amazon's example order delivered (its deliver-by window ended) this long before NOW.
DELIVERED_AGO = {"in the window": timedelta(days=10), "too early": timedelta(days=2)}


def delivered(spapi, ago):
    end = (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")
    spapi.orders[ORDER]["order"]["fulfillment"]["deliverByWindow"] = {"latestDateTime": end}


@pytest.mark.spapi
@pytest.mark.parametrize(
    ("when", "offered", "checks"), [("in the window", True, 1), ("too early", False, 0)]
)
def test_a_fetch_in_the_review_window_keeps_whether_amazon_offers_the_request(
    app, authorised, spapi, when, offered, checks
):
    api = order_service.amazon_api(app.config, app.extensions)
    delivered(spapi, DELIVERED_AGO[when])
    row, _ = order_service.refresh_order(channel_of(authorised, "IE"), ORDER, api=api, now=NOW)
    assert spapi.calls["getSolicitationActionsForOrder"] == checks
    assert (row.review_request_offered_at == NOW) is offered
    assert order_service.is_review_request_offered(row, now=NOW) is offered
    assert not order_service.is_review_request_offered(row, now=NOW + timedelta(days=25))


@pytest.mark.spapi
def test_a_failed_offer_check_keeps_the_previous_answer_and_a_purge_drops_it(
    app, authorised, spapi
):
    api = order_service.amazon_api(app.config, app.extensions)
    ireland = channel_of(authorised, "IE")
    delivered(spapi, DELIVERED_AGO["in the window"])
    row, _ = order_service.refresh_order(ireland, ORDER, api=api, now=NOW)
    spapi.faults = ["", "malformed"]  # the order answers, the offer check does not
    later = NOW + timedelta(hours=1)
    row, failure = order_service.refresh_order(ireland, ORDER, api=api, now=later)
    assert failure is None and row.fetched_at == later
    assert row.review_request_offered_at == NOW
    assert order_service.purge_order_data(now=NOW + timedelta(days=60), days=30) == 1
    db.session.expire_all()
    assert db.session.scalar(select(Order.review_request_offered_at)) is None


@pytest.mark.spapi
def test_a_refresh_request_marks_the_order_due_and_asks_amazon_nothing(
    app, authorised, spapi, make_channel
):
    ireland = channel_of(authorised, "IE")
    Result = order_service.RefreshRequest
    assert order_service.request_refresh(ireland, ORDER, now=NOW) == Result.REQUESTED
    assert order_service.request_refresh(ireland, ORDER, now=NOW) == Result.ALREADY_DUE
    assert order_service.orders_to_fetch(now=NOW, limit=5) == [(ireland.id, ORDER)]
    api = order_service.amazon_api(app.config, app.extensions)
    order_service.refresh_order(ireland, ORDER, api=api, now=NOW)
    soon = NOW + order_service.REFRESH_MIN_AGE / 2
    assert order_service.request_refresh(ireland, ORDER, now=soon) == Result.TOO_SOON
    later = NOW + order_service.REFRESH_MIN_AGE
    assert order_service.request_refresh(ireland, ORDER, now=later) == Result.REQUESTED
    assert spapi.calls["getOrder"] == 1  # the worker's fetch only

    ireland.is_amazon_authorisation_needed = True
    assert order_service.request_refresh(ireland, ORDER, now=later) == Result.CANNOT_ASK
    uk = make_channel("UK", organisation=authorised)  # no SP-API authorisation
    assert order_service.request_refresh(uk, ORDER, now=later) == Result.CANNOT_ASK
    assert order_service.request_refresh(ireland, "not-an-order", now=later) == (Result.CANNOT_ASK)
