"""An Amazon order for a channel, asked of SP-API with the channel's stored authorisation,
and kept (an Order row) for the thread page to show without asking Amazon.

The HTTP client, its access tokens and its rate limits are portal/amazon_api.py; reading
Amazon's answer is portal/amazon_orders.py. This module decides which channel may ask
(one holding an SP-API refresh token), hands the client the seller's region, Seller ID
and decrypted refresh token, stores what comes back with when to ask again, and flags
the channels whose authorisation Amazon refused. It is for the worker: a web request
never waits for Amazon. Like every service it flushes and never commits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update

from ingest.mail.amazon import ORDER_ID_RE
from portal.amazon_api import AmazonApi, ApiFailure, FailureKind, Seller, api_settings
from portal.amazon_orders import AmazonOrder, Window
from portal.crypto import SecretUnreadable, decrypt_secret, encrypt_secret
from portal.extensions import db
from portal.models import Channel, Credential, CredentialKind, Order, Thread, User
from portal.services.audit import record_event
from portal.services.spapi import channels_sharing_authorisation, is_spapi_credential
from portal.sqltypes import upsert_insert

log = logging.getLogger(__name__)


#: How soon an order is asked for again: often while it awaits shipping, less often on
#: its way, rarely once it cannot change (delivered, cancelled).
REFRESH_UNSHIPPED = timedelta(hours=1)
REFRESH_ON_ITS_WAY = timedelta(hours=4)
REFRESH_CLOSED = timedelta(days=7)
#: After a failure Amazon's answer gives no wait for (an unreadable answer, a refused
#: request), the order is asked for once more a day later; a refused authorisation
#: waits for a new one instead (refresh_at None).
RETRY_AFTER_REFUSAL = timedelta(days=1)
_NOT_SHIPPED = frozenset({"PENDING_AVAILABILITY", "PENDING", "UNSHIPPED"})
#: How long a worker holds an order it is asking Amazon for: a second worker passes it
#: by meanwhile, and an order whose worker died mid-call is asked for again after this.
CLAIM = timedelta(minutes=5)
#: Threads this recent get their order fetched unasked (Amazon returns orders of the
#: last two years; older threads wait for someone to ask).
PREFETCH_WINDOW = timedelta(days=60)
#: Amazon offers the review request 5 to 30 days after delivery (Solicitations API).
REVIEW_WINDOW_OPENS = timedelta(days=5)
REVIEW_WINDOW_CLOSES = timedelta(days=30)
#: A "Refresh" asked for sooner than this after a fetch is not passed on: the data shown
#: is that fresh already, and a button pressed in a loop must not become calls to Amazon.
REFRESH_MIN_AGE = timedelta(minutes=1)


class RefreshRequest(StrEnum):
    """What became of someone's "Refresh" of an order."""

    REQUESTED = "requested"  # the worker fetches it on its next pass
    ALREADY_DUE = "already_due"  # it was due already
    TOO_SOON = "too_soon"  # fetched less than REFRESH_MIN_AGE ago
    CANNOT_ASK = "cannot_ask"  # no SP-API authorisation, a refused one, or no order ID


def amazon_api(config: Mapping[str, Any], extensions: dict[str, Any]) -> AmazonApi | None:
    """The process's SP-API client (kept in the app's `extensions`, so its access tokens
    and rate-limit buckets last across jobs); None when the LWA client is not configured."""
    settings = api_settings(config)
    if settings is None:
        return None
    api = extensions.get("amazon_api")
    if not isinstance(api, AmazonApi) or api.settings != settings:
        api = extensions["amazon_api"] = AmazonApi(settings)
    return api


def fetch_order(channel: Channel, order_id: str, *, api: AmazonApi) -> AmazonOrder | ApiFailure:
    """Ask Amazon for `order_id` on `channel`: the order, or an ApiFailure to act on."""
    seller = _seller(channel, order_id)
    if isinstance(seller, ApiFailure):
        return seller
    return api.get_order(seller, order_id)


def _seller(channel: Channel, order_id: str) -> Seller | ApiFailure:
    """Who asks Amazon about `order_id`: the channel's region, Seller ID and decrypted
    refresh token (in memory for the one call only); an ApiFailure when it cannot ask."""
    if not ORDER_ID_RE.fullmatch(order_id or ""):
        return ApiFailure(FailureKind.REJECTED, f"{order_id!r} is not an Amazon order ID.")
    credential = channel.credential
    if credential is None or not is_spapi_credential(credential):
        return ApiFailure(
            FailureKind.NOT_AUTHORISED,
            "There is no order data because this channel is not authorised with Amazon's "
            'Selling Partner API: the seller can click "Authorise with Amazon" on the '
            "channel's page.",
        )
    return Seller(
        region=channel.marketplace_info.region,
        seller_id=credential.seller_id,
        refresh_token=decrypt_secret(credential.secret_encrypted),
    )


def review_request_offered(channel: Channel, order_id: str, *, api: AmazonApi) -> bool | ApiFailure:
    """Whether Amazon offers the review request for `order_id` on `channel` now."""
    seller = _seller(channel, order_id)
    if isinstance(seller, ApiFailure):
        return seller
    return api.review_request_offered(
        seller, order_id, marketplace_id=channel.marketplace_info.marketplace_id
    )


def send_review_request(
    channel: Channel, order_id: str, *, api: AmazonApi, actor: User | None, now: datetime
) -> ApiFailure | None:
    """Ask Amazon to send the buyer its review and feedback request (once per order):
    None when it did. The result, whatever it is, is audited; a sent one is kept on the
    order, and a refused authorisation flags the channel."""
    row = _order_row(channel, order_id)
    if row.review_requested_at is not None:
        result: ApiFailure | None = ApiFailure(
            FailureKind.REJECTED,
            f"A review request was already sent for this order on "
            f"{row.review_requested_at:%Y-%m-%d}.",
        )
    else:
        seller = _seller(channel, order_id)
        result = (
            seller
            if isinstance(seller, ApiFailure)
            else api.request_review(
                seller, order_id, marketplace_id=channel.marketplace_info.marketplace_id
            )
        )
    if result is None:
        row.review_requested_at = now
        row.review_request_offered_at = None
    elif result.status == 400:  # Amazon does not offer it (any more): no button
        row.review_request_offered_at = None
    elif result.kind == FailureKind.AUTHORISATION_REVOKED:
        flag_authorisation_needed(channel, status=result.status)
    record_event(
        "order.review_requested" if result is None else "order.review_request_failed",
        actor=actor,
        organisation_id=channel.organisation_id,
        target=channel,
        details={"order_id": order_id}
        | ({} if result is None else {"why": result.kind.value, "message": result.message}),
    )
    db.session.flush()
    return result


def refresh_order(
    channel: Channel, order_id: str, *, api: AmazonApi, now: datetime
) -> tuple[Order, ApiFailure | None]:
    """Ask Amazon for `order_id` on `channel` and store the answer, or the failure (which
    is returned too)."""
    result = fetch_order(channel, order_id, api=api)
    if isinstance(result, ApiFailure):
        return record_order_failure(channel, order_id, result, now=now), result
    row = store_order(channel, result, now=now)
    if is_in_review_window(row, now=now) and row.review_requested_at is None:
        check_review_offer(channel, row, api=api, now=now)
    return row, None


def is_in_review_window(order: Order, *, now: datetime) -> bool:
    """Whether `order` was delivered 5 to 30 days ago (when Amazon offers the review
    request), by its stored delivery date."""
    if order.delivered_at is None or order.purged_at is not None:
        return False
    return REVIEW_WINDOW_OPENS <= now - order.delivered_at <= REVIEW_WINDOW_CLOSES


def check_review_offer(channel: Channel, order: Order, *, api: AmazonApi, now: datetime) -> None:
    """Ask Amazon whether it offers the review request for `order` and keep the answer,
    so the thread page can show the button without asking; a failure keeps the
    previous answer (a refused authorisation flags the channel)."""
    offered = review_request_offered(channel, order.order_id, api=api)
    if isinstance(offered, ApiFailure):
        if offered.kind == FailureKind.AUTHORISATION_REVOKED:
            flag_authorisation_needed(channel, status=offered.status)
        log.info(
            "review offer of order %s of channel %s not checked: %s",
            order.order_id,
            channel.id,
            offered.kind,
        )
        return
    order.review_request_offered_at = now if offered else None
    db.session.flush()


def is_review_request_offered(order: Order, *, now: datetime) -> bool:
    """Whether the thread page offers "Request a review" for `order`: Amazon said it
    offers it, none was sent, and the window has not closed since."""
    return (
        order.review_request_offered_at is not None
        and order.review_requested_at is None
        and is_in_review_window(order, now=now)
    )


def order_for(channel: Channel, order_id: str | None) -> Order | None:
    """The stored order `order_id` of `channel`, if any (never asks Amazon)."""
    if not order_id:
        return None
    return db.session.scalar(
        select(Order).where(Order.channel_id == channel.id, Order.order_id == order_id)
    )


def can_ask_amazon(channel: Channel) -> bool:
    """Whether the worker can ask Amazon about `channel`'s orders: it holds an SP-API
    authorisation that Amazon has not refused."""
    return is_spapi_credential(channel.credential) and not channel.is_amazon_authorisation_needed


def request_refresh(channel: Channel, order_id: str, *, now: datetime) -> RefreshRequest:
    """Mark `order_id` due now, for the worker's next pass to fetch (a page never asks
    Amazon itself); not when it was fetched moments ago or cannot be asked for."""
    if not can_ask_amazon(channel) or not ORDER_ID_RE.fullmatch(order_id or ""):
        return RefreshRequest.CANNOT_ASK
    row = _order_row(channel, order_id)
    if row.fetched_at is not None and now - row.fetched_at < REFRESH_MIN_AGE:
        return RefreshRequest.TOO_SOON
    if row.refresh_at is not None and row.refresh_at <= now:
        return RefreshRequest.ALREADY_DUE
    row.refresh_at = now
    db.session.flush()
    return RefreshRequest.REQUESTED


def store_order(channel: Channel, order: AmazonOrder, *, now: datetime) -> Order:
    """Keep what Amazon said of `order` on `channel` (replacing the older snapshot)."""
    row = _order_row(channel, order.order_id)
    row.marketplace_id = order.marketplace_id
    row.fulfillment_status = order.fulfillment_status
    row.fulfilled_by = order.fulfilled_by
    row.programs = list(order.programs)
    row.purchased_at = order.created_at
    row.ship_by_earliest_at, row.ship_by_latest_at = _ends(order.ship_by)
    row.deliver_by_earliest_at, row.deliver_by_latest_at = _ends(order.deliver_by)
    row.total_amount = str(order.total.amount) if order.total else None
    row.total_currency = order.total.currency[:3] if order.total else None
    row.items = [
        {
            "title": item.title,
            "asin": item.asin,
            "seller_sku": item.seller_sku,
            "quantity": item.quantity,
            "unit_price": str(item.unit_price.amount) if item.unit_price else None,
            "currency": item.unit_price.currency if item.unit_price else None,
        }
        for item in order.items
    ]
    row.packages = [
        {
            "carrier": package.carrier,
            "tracking_number": package.tracking_number,
            "status": package.status,
            "detailed_status": package.detailed_status,
            "shipped_at": package.shipped_at.isoformat() if package.shipped_at else None,
        }
        for package in order.packages
    ]
    row.delivered_at = order.delivery_date
    row.fetched_at = now
    row.refresh_at = now + next_refresh_interval(order)
    row.last_error, row.last_error_at = "", None
    row.purged_at = None
    row.pii_encrypted = _encrypt_pii(order)
    db.session.flush()
    return row


@dataclass(frozen=True)
class OrderPii:
    """What Amazon said of the buyer (SPAPI_INCLUDE_PII only)."""

    buyer_name: str | None
    ship_to: tuple[str, ...]


def _encrypt_pii(order: AmazonOrder) -> bytes | None:
    if not order.buyer_name and not order.ship_to:
        return None
    plain = json.dumps({"buyer_name": order.buyer_name, "ship_to": list(order.ship_to)})
    return encrypt_secret(plain)


def order_pii(order: Order) -> OrderPii | None:
    """The order's buyer data, decrypted; None when none is stored or it cannot be read
    (TOKEN_KEY changed without `keys rotate`: the panel goes on without it)."""
    if not order.pii_encrypted:
        return None
    try:
        data = json.loads(decrypt_secret(order.pii_encrypted))
    except SecretUnreadable:
        log.warning("Order %s: its buyer data cannot be decrypted with TOKEN_KEY", order.id)
        return None
    return OrderPii(data.get("buyer_name"), tuple(data.get("ship_to") or ()))


def next_refresh_interval(order: AmazonOrder) -> timedelta:
    """How long until `order` is worth asking for again."""
    if not order.is_open:
        return REFRESH_CLOSED
    if order.fulfillment_status in _NOT_SHIPPED:
        return REFRESH_UNSHIPPED
    return REFRESH_ON_ITS_WAY


def record_order_failure(
    channel: Channel, order_id: str, failure: ApiFailure, *, now: datetime
) -> Order:
    """Keep the failure's sentence beside whatever was stored before, and when to try
    again; a refused authorisation flags the channels holding it."""
    row = _order_row(channel, order_id)
    row.last_error, row.last_error_at = failure.message, now
    if failure.retry_after is not None:
        row.refresh_at = now + timedelta(seconds=failure.retry_after)
    elif failure.kind in (FailureKind.AUTHORISATION_REVOKED, FailureKind.NOT_AUTHORISED):
        row.refresh_at = None
    else:
        row.refresh_at = now + RETRY_AFTER_REFUSAL
    if failure.kind == FailureKind.AUTHORISATION_REVOKED:
        flag_authorisation_needed(channel, status=failure.status)
    log.info("order %s of channel %s not fetched: %s", order_id, channel.id, failure.kind)
    db.session.flush()
    return row


def flag_authorisation_needed(channel: Channel, *, status: int | None) -> list[Channel]:
    """Mark "Amazon authorisation needed" on every channel sharing `channel`'s SP-API
    authorisation (one covers the region), auditing each newly flagged one."""
    flagged = []
    for target in channels_sharing_authorisation(channel) or [channel]:
        if target.is_amazon_authorisation_needed:
            continue
        target.is_amazon_authorisation_needed = True
        record_event(
            "channel.amazon_authorisation_needed",
            actor=None,
            organisation_id=target.organisation_id,
            target=target,
            details={
                "why": "Amazon refused the SP-API authorisation",
                "status": status,
                "seen_on": channel.marketplace,
            },
        )
        flagged.append(target)
    if flagged:
        log.warning(
            "Amazon authorisation needed for organisation %s on channels %s",
            channel.organisation_id,
            ",".join(c.marketplace for c in flagged),
        )
    return flagged


def claim_order(channel_id: int, order_id: str, *, now: datetime) -> bool:
    """Take `order_id` on the channel for this worker's call to Amazon (flush only: the
    caller commits the claim before calling). True when this worker may ask: the order
    had no row yet (one is created), or its row was due. False when another worker
    holds it: two workers never spend the seller's rate limit on the same order, and
    never race to insert the same row.

    One INSERT … ON CONFLICT statement, so the database decides between two workers.
    """
    insert = upsert_insert(db.session.get_bind().dialect.name, Order).values(
        channel_id=channel_id,
        order_id=order_id,
        programs=[],
        items=[],
        packages=[],
        last_error="",
        refresh_at=now + CLAIM,
        created_at=now,
    )
    claim = insert.on_conflict_do_update(
        index_elements=[Order.channel_id, Order.order_id],
        set_={"refresh_at": now + CLAIM},
        where=Order.refresh_at <= now,
    ).returning(Order.id)
    return db.session.execute(claim).first() is not None


def _order_row(channel: Channel, order_id: str) -> Order:
    row = db.session.scalar(
        select(Order).where(Order.channel_id == channel.id, Order.order_id == order_id)
    )
    if row is None:
        row = Order(channel=channel, order_id=order_id, programs=[], items=[], packages=[])
        db.session.add(row)
    return row


def _ends(window: Window | None) -> tuple[datetime | None, datetime | None]:
    return (window.earliest, window.latest) if window else (None, None)


def orders_to_fetch(*, now: datetime, limit: int) -> list[tuple[int, str]]:
    """(channel id, order ID) pairs the worker should ask Amazon for now: recent threads'
    orders never fetched (newest first), then stored orders due for a refresh (oldest
    due first); only on channels holding an SP-API authorisation Amazon has not refused."""
    askable = (
        select(Channel.id)
        .join(Credential, Credential.channel_id == Channel.id)
        .where(
            Credential.kind == CredentialKind.SPAPI_REFRESH_TOKEN,
            Channel.is_amazon_authorisation_needed.is_(False),
        )
    )
    stored = select(Order.id).where(
        Order.channel_id == Thread.channel_id, Order.order_id == Thread.order_id
    )
    new = db.session.execute(
        select(Thread.channel_id, Thread.order_id)
        .where(
            Thread.order_id.is_not(None),
            Thread.channel_id.in_(askable),
            Thread.last_message_at >= now - PREFETCH_WINDOW,
            ~stored.exists(),
        )
        .group_by(Thread.channel_id, Thread.order_id)
        .order_by(func.max(Thread.last_message_at).desc())
        .limit(limit)
    ).all()
    pairs = [(channel_id, order_id) for channel_id, order_id in new if order_id]
    if len(pairs) < limit:
        due = db.session.execute(
            select(Order.channel_id, Order.order_id)
            .where(Order.refresh_at <= now, Order.channel_id.in_(askable))
            .order_by(Order.refresh_at, Order.id)
            .limit(limit - len(pairs))
        ).all()
        pairs += [(channel_id, order_id) for channel_id, order_id in due]
    return pairs


def purge_order_data(*, now: datetime, days: int) -> int:
    """Reduce the orders delivered more than `days` ago to their ID and status (Amazon's
    Data Protection Policy); the number of orders reduced. The delivery date is the
    deliver-by window's end, or the purchase date for an order without one; an order
    with neither is reduced `days` after it was first stored. Purged orders are no
    longer refreshed."""
    cutoff = now - timedelta(days=days)
    delivered = func.coalesce(Order.delivered_at, Order.purchased_at, Order.created_at)
    result = db.session.execute(
        update(Order)
        .where(Order.purged_at.is_(None), delivered <= cutoff)
        .values(
            marketplace_id=None,
            fulfilled_by=None,
            programs=[],
            purchased_at=None,
            ship_by_earliest_at=None,
            ship_by_latest_at=None,
            deliver_by_earliest_at=None,
            deliver_by_latest_at=None,
            total_amount=None,
            total_currency=None,
            items=[],
            packages=[],
            pii_encrypted=None,
            refresh_at=None,
            review_request_offered_at=None,
            last_error="",
            last_error_at=None,
            purged_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    purged = result.rowcount or 0
    if purged:
        record_event("orders.purged", actor=None, details={"orders": purged, "days": days})
    return purged
