"""The Amazon order panel of the thread page, its Refresh and Request a review buttons, and
the "Amazon authorisation needed" flag on the channel pages.

Orders are fetched by the worker's real pass (ingest/orders.py) from the SP-API stand-in
over HTTP (tests/spapi_standin.py); the stand-in's counters prove that pages ask Amazon
nothing.
"""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from sqlalchemy import select

from ingest.orders import refresh_orders
from portal.amazon_api import AmazonApi, api_settings
from portal.extensions import db
from portal.models import AuditEvent, Order, Role
from portal.services import orders as order_service
from portal.sqltypes import utcnow
from portal.templating import format_datetime
from tests.helpers import authorise_with_amazon, connect_with_mws_token, csrf_token_from

pytestmark = pytest.mark.spapi

REFRESH_TOKEN = "Atzr|IwEBIstandin-refresh-token-for-the-order-panel-0123456789abcdWXYZ"
ORDER = "202-1234567-8901234"  # Amazon's UK example: shipped, one package in transit
TITLE = "Echo Dot (4th Gen) | Smart speaker with Alexa | Charcoal"


@pytest.fixture
def shop(make_org, make_channel, make_thread, spapi):
    """An Irish channel authorised with Amazon (the stand-in) and a thread about ORDER."""
    org = make_org("Kite & Co")
    channel = make_channel("IE", organisation=org)
    authorise_with_amazon(channel, spapi, REFRESH_TOKEN)
    thread = make_thread(channel, order_id=ORDER)
    return {"org": org, "channel": channel, "thread": thread}


@pytest.fixture
def agent(login_as, shop):
    return login_as(Role.AGENT, assigned=[shop["org"]])


def worker_pass(app):
    """The worker's order pass, as its fetch-orders job runs it (no backoff pauses)."""
    api = AmazonApi(api_settings(app.config), backoff=0)
    return refresh_orders(api, now=utcnow())


def page_of(client, thread) -> str:
    response = client.get(f"/threads/{thread.id}")
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def post(client, thread, action) -> str:
    token = csrf_token_from(client.get(f"/threads/{thread.id}").get_data(as_text=True))
    response = client.post(
        f"/threads/{thread.id}/order/{action}", data={"csrf_token": token}, follow_redirects=True
    )
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def order_row() -> Order:
    db.session.expire_all()
    return db.session.scalars(select(Order)).one()


def deliver(spapi, *, days_ago: int) -> None:
    """Make the stand-in's ORDER delivered `days_ago` days ago (its deliver-by window ended)."""
    end = utcnow() - timedelta(days=days_ago)
    fulfillment = spapi.orders[ORDER]["order"]["fulfillment"]
    fulfillment["deliverByWindow"] = {
        "earliestDateTime": (end - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "latestDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for package in spapi.orders[ORDER]["order"]["packages"]:
        package["packageStatus"] = {"status": "DELIVERED"}


# --- what the panel shows -----------------------------------------------------------------


def test_the_panel_shows_the_order_the_worker_fetched_and_pages_ask_amazon_nothing(
    app, client, shop, agent, spapi
):
    assert worker_pass(app).fetched == 1
    spapi.calls.clear()

    page = page_of(client, shop["thread"])
    panel = page.split('id="order"', 1)[1].split("</section>", 1)[0]
    assert TITLE in panel
    assert 'href="https://www.amazon.co.uk/dp/B08DFPV54V"' in panel  # the order's marketplace
    assert "ECHO-DOT-4-UK-CHARCOAL-3PACK" in panel
    assert "3 × 29.99 GBP" in panel
    assert '<dd class="order-status">Shipped</dd>' in panel
    assert "25 Dec 2024, 09:15 UTC" in panel  # purchased
    assert "25 Dec 2024, 00:00 UTC – 26 Dec 2024, 23:59 UTC" in panel  # ship by
    assert "27 Dec 2024, 00:00 UTC – 30 Dec 2024, 23:59 UTC" in panel  # deliver by
    assert '<dd class="order-fulfilled-by">the seller</dd>' in panel
    assert '<dd class="order-programs">Prime</dd>' in panel
    assert "Royal Mail: " in panel and "RR123456789GB" in panel and "(In transit)" in panel
    assert '<dd class="order-total">103.97 GBP</dd>' in panel
    assert (
        'href="https://sellercentral-europe.amazon.com/orders-v3/order/202-1234567-8901234"'
        in panel
    )
    assert "Open in Seller Central" in panel
    assert "Fetched from Amazon on" in panel
    assert ">Refresh<" in panel or 'value="Refresh"' in panel
    assert "Request a review" not in panel  # delivered in 2024: Amazon offers nothing now

    assert client.get("/inbox").status_code == 200
    assert sum(spapi.calls.values()) == 0, spapi.calls


def test_amazons_words_are_escaped(app, client, shop, agent, spapi):
    spapi.orders[ORDER]["order"]["orderItems"][0]["product"]["title"] = "<script>x()</script>"
    worker_pass(app)
    raw = client.get(f"/threads/{shop['thread'].id}").get_data(as_text=True)
    assert "<script>x()" not in raw and "&lt;script&gt;x()" in raw


def test_a_failed_update_is_a_sentence_beside_the_older_data(app, client, shop, agent, spapi):
    worker_pass(app)
    row = order_row()
    fetched_at = row.fetched_at
    row.refresh_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    spapi.faults = ["500"] * 3  # every attempt of the next call
    assert dict(worker_pass(app).failed) == {"unavailable": 1}

    page = page_of(client, shop["thread"])
    assert "The last update failed (at " in page
    assert "Amazon did not answer properly (HTTP 500)" in page
    assert f"The details shown are from {format_datetime(fetched_at)}." in page
    assert TITLE in page  # the older data, still shown


def test_an_order_not_fetched_yet_says_so(client, shop, agent, spapi):
    page = page_of(client, shop["thread"])
    assert "The order is being fetched from Amazon" in page
    assert sum(spapi.calls.values()) == 0


def test_an_order_amazon_did_not_give_says_why(app, client, make_thread, shop, agent, spapi):
    unknown = make_thread(shop["channel"], order_id="203-0000000-0000404")
    worker_pass(app)
    page = page_of(client, unknown)
    assert "The order could not be fetched yet: Amazon has no order 203-0000000-0000404" in page
    assert "being fetched" not in page


def test_a_purged_order_shows_only_its_id_and_status(app, client, shop, agent, spapi):
    worker_pass(app)
    purged = order_service.purge_order_data(now=utcnow() + timedelta(days=3650), days=30)
    db.session.commit()
    assert purged == 1

    page = page_of(client, shop["thread"])
    panel = page.split('id="order"', 1)[1].split("</section>", 1)[0]
    assert ORDER in panel and '<dd class="order-status">Shipped</dd>' in panel
    assert "details were removed 30 days after delivery" in panel
    assert TITLE not in panel and "RR123456789GB" not in panel and "103.97" not in panel


def test_with_pii_the_buyer_and_address_are_shown_stored_encrypted_and_purged(
    app, client, shop, agent, spapi
):
    app.config["SPAPI_INCLUDE_PII"] = True
    worker_pass(app)
    row = order_row()
    assert b"James Wilson" not in row.pii_encrypted and b"Manchester" not in row.pii_encrypted
    panel = page_of(client, shop["thread"]).split('id="order"', 1)[1].split("</section>", 1)[0]
    assert '<dd class="order-buyer">James Wilson</dd>' in panel
    address = panel.split('<dd class="order-ship-to"><address>', 1)[1].split("</address>", 1)[0]
    lines = address.split("<br>")
    assert lines[:4] == ["James Wilson", "Wilson Electronics Ltd", "123 High Street", "Unit 4B"]
    assert "Manchester" in lines[4] and lines[-1] == "GB"
    assert not any("+44" in line for line in lines)  # the phone number is left out

    assert order_service.purge_order_data(now=utcnow() + timedelta(days=3650), days=30) == 1
    db.session.commit()
    assert order_row().pii_encrypted is None
    assert "James Wilson" not in page_of(client, shop["thread"])


def test_without_pii_nothing_of_the_buyer_is_stored(app, client, shop, agent, spapi):
    worker_pass(app)
    assert order_row().pii_encrypted is None
    assert 'class="order-buyer"' not in page_of(client, shop["thread"])


@pytest.mark.parametrize("connection", ["mws", "none"])
def test_without_sp_api_the_panel_says_why_and_the_seller_gets_the_step(
    client, auth, make_org, make_channel, make_thread, make_user, spapi, connection
):
    org = make_org()
    channel = make_channel("UK", organisation=org)
    if connection == "mws":
        connect_with_mws_token(channel)
    thread = make_thread(channel, order_id=ORDER)
    seller = make_user(Role.SELLER, organisation=org)
    agent = make_user(Role.AGENT, assigned=[org])
    why = (
        "is connected with an MWS token only"
        if connection == "mws"
        else "is not connected to Amazon yet"
    )

    auth.login(seller.email)
    page = page_of(client, thread)
    assert f"There is no order data because this channel {why}" in page
    assert (
        f'<a class="button" href="/channels/{channel.id}#step-1">Authorise with Amazon</a>' in page
    )
    assert "order/refresh" not in page

    auth.logout()
    auth.login(agent.email)
    page = page_of(client, thread)
    assert f"There is no order data because this channel {why}" in page
    assert f'href="/channels/{channel.id}#step-1"' not in page
    assert 'The seller can do this with "Authorise with Amazon"' in page
    assert sum(spapi.calls.values()) == 0


def test_a_refused_authorisation_is_flagged_in_the_panel_and_on_the_channel_pages(
    app, client, auth, shop, make_user, spapi
):
    spapi.faults = ["403", "403"]  # the call and its retry with a fresh access token
    assert dict(worker_pass(app).failed) == {"authorisation_revoked": 1}
    channel = shop["channel"]
    seller = make_user(Role.SELLER, organisation=shop["org"])
    admin = make_user(Role.ADMIN)

    auth.login(seller.email)
    page = page_of(client, shop["thread"])
    assert "Amazon authorisation needed" in page
    assert f'href="/channels/{channel.id}#step-1">Authorise with Amazon</a> again' in page
    assert "order/refresh" not in page  # the worker cannot ask until a new authorisation
    for url in (f"/channels/{channel.id}", "/channels"):
        assert "Amazon authorisation needed" in html.unescape(client.get(url).get_data(True))

    auth.logout()
    auth.login(admin.email)
    for url in (f"/admin/channels/{channel.id}", "/admin/channels"):
        response = client.get(url)
        assert response.status_code == 200
        assert "Amazon authorisation needed" in response.get_data(as_text=True)


# --- Refresh -------------------------------------------------------------------------------


def test_refresh_marks_the_order_due_for_the_worker_without_calling_amazon(
    app, client, shop, agent, spapi
):
    worker_pass(app)
    spapi.calls.clear()
    page = post(client, shop["thread"], "refresh")
    assert "fetched from Amazon less than a minute ago" in page  # just fetched: nothing asked
    assert order_row().refresh_at > utcnow()

    row = order_row()
    row.fetched_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    page = post(client, shop["thread"], "refresh")
    assert "Refresh requested" in page
    assert order_row().refresh_at <= utcnow()
    assert "Refresh requested already" in post(client, shop["thread"], "refresh")
    assert sum(spapi.calls.values()) == 0

    assert worker_pass(app).fetched == 1  # the worker's next pass fetches it
    assert spapi.calls["getOrder"] == 1


def test_refresh_of_an_order_never_fetched_asks_the_worker_for_it(
    app, client, make_thread, shop, agent, spapi
):
    old = make_thread(
        shop["channel"], order_id="203-0000000-0000001", received_at=utcnow() - timedelta(days=90)
    )
    assert "Refresh requested" in post(client, old, "refresh")
    assert sum(spapi.calls.values()) == 0
    spapi.orders["203-0000000-0000001"] = {
        "order": {**spapi.orders[ORDER]["order"], "orderId": "203-0000000-0000001"}
    }
    worker_pass(app)
    assert TITLE in page_of(client, old)


# --- Request a review ----------------------------------------------------------------------


def test_a_review_request_is_offered_sent_once_and_then_shown(app, client, shop, agent, spapi):
    deliver(spapi, days_ago=10)
    worker_pass(app)
    assert spapi.calls["getSolicitationActionsForOrder"] == 1
    assert order_row().review_request_offered_at is not None
    spapi.calls.clear()

    page = page_of(client, shop["thread"])
    assert 'value="Request a review"' in page
    assert sum(spapi.calls.values()) == 0

    page = post(client, shop["thread"], "review-request")
    assert "Review requested: Amazon sends the buyer" in page
    assert "Review requested on " in page and 'value="Request a review"' not in page
    assert spapi.calls["createProductReviewAndSellerFeedbackSolicitation"] == 1
    assert order_row().review_requested_at is not None
    (event,) = db.session.scalars(
        select(AuditEvent).where(AuditEvent.kind == "order.review_requested")
    )
    assert event.actor_id == agent.id and event.details["order_id"] == ORDER

    # A second POST (an old tab) does not reach Amazon: already sent.
    page = post(client, shop["thread"], "review-request")
    assert "A review request was already sent for this order" in page
    assert spapi.calls["createProductReviewAndSellerFeedbackSolicitation"] == 1


def test_an_order_outside_the_window_gets_no_offer_check(app, client, shop, agent, spapi):
    deliver(spapi, days_ago=2)
    worker_pass(app)
    assert spapi.calls["getSolicitationActionsForOrder"] == 0
    assert 'value="Request a review"' not in page_of(client, shop["thread"])


def test_amazon_not_offering_it_any_more_removes_the_button(app, client, shop, agent, spapi):
    deliver(spapi, days_ago=10)
    worker_pass(app)
    spapi.review_window.clear()  # the window closed, or the buyer opted out
    page = post(client, shop["thread"], "review-request")
    assert "The review request was not sent: Amazon did not send the review request" in page
    assert 'value="Request a review"' not in page
    assert order_row().review_requested_at is None
    assert (
        db.session.scalars(
            select(AuditEvent.details).where(AuditEvent.kind == "order.review_request_failed")
        ).one()["why"]
        == "rejected"
    )


def test_amazons_errors_on_a_review_request_are_sentences(app, client, shop, agent, spapi):
    deliver(spapi, days_ago=10)
    worker_pass(app)

    spapi.faults = ["500"]  # never retried by itself: it may have been sent
    page = post(client, shop["thread"], "review-request")
    assert "Amazon did not answer, so the review request was not sent" in page
    assert 'value="Request a review"' in page  # still offered: try again later

    spapi.faults = ["403", "403"]
    page = post(client, shop["thread"], "review-request")
    assert "The review request was not sent: Amazon no longer accepts this channel's" in page
    assert "Amazon authorisation needed" in page
    db.session.expire_all()
    assert shop["channel"].is_amazon_authorisation_needed
    assert order_row().review_requested_at is None


def test_sellers_see_no_review_button_and_cannot_post_one(
    app, client, auth, shop, make_user, spapi
):
    deliver(spapi, days_ago=10)
    worker_pass(app)
    seller = make_user(Role.SELLER, organisation=shop["org"])
    auth.login(seller.email)
    page = client.get(f"/threads/{shop['thread'].id}").get_data(as_text=True)
    assert 'value="Request a review"' not in page
    token = csrf_token_from(page)
    response = client.post(
        f"/threads/{shop['thread'].id}/order/review-request", data={"csrf_token": token}
    )
    assert response.status_code == 403
    assert spapi.calls["createProductReviewAndSellerFeedbackSolicitation"] == 0


def test_another_organisations_order_of_the_same_id_never_shows_or_moves(
    app, client, auth, shop, make_org, make_channel, make_thread, make_user, spapi
):
    # Order IDs are the buyer's, not the seller's: two organisations can hold threads
    # about the same one. The panel reads the order of the thread's own channel only.
    assert worker_pass(app).fetched == 1
    other = make_org("Other Shop")
    their_channel = make_channel("IE", organisation=other)
    connect_with_mws_token(their_channel)
    their_thread = make_thread(their_channel, order_id=ORDER)
    outsider = make_user(Role.AGENT, assigned=[other])
    auth.login(outsider.email)
    due = order_row().refresh_at
    spapi.calls.clear()

    page = page_of(client, their_thread)
    assert ORDER in page
    assert TITLE not in page and "RR123456789GB" not in page and "103.97" not in page
    assert "There is no order data because this channel is connected with an MWS token only" in (
        page
    )
    token = csrf_token_from(page)
    assert client.get(f"/threads/{shop['thread'].id}").status_code == 404
    for action in ("refresh", "review-request"):
        response = client.post(
            f"/threads/{shop['thread'].id}/order/{action}", data={"csrf_token": token}
        )
        assert response.status_code == 404, action
    assert order_row().refresh_at == due  # still the one order, not marked due by them
    assert sum(spapi.calls.values()) == 0, spapi.calls
