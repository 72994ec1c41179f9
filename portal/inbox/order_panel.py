"""The thread page's Amazon order panel: the stored order (portal/models/orders.py) in
words, and which of its actions the viewer gets.

Built from what is stored only: a page never asks Amazon (the worker does, ingest/orders.py).
Amazon's own words (statuses, programs, carriers, titles) stay text the template escapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from portal.amazon_api import ApiFailure, FailureKind
from portal.marketplaces import MARKETPLACES, Marketplace
from portal.models import Channel, Order, Thread, User
from portal.services import orders as order_service
from portal.services.orders import RefreshRequest
from portal.services.scoping import can_manage_organisation
from portal.services.spapi import is_spapi_credential
from portal.templating import format_datetime

#: Words for Amazon's values where its own, made readable, would not do.
_WORDS = {
    "AMAZON": "Amazon",
    "MERCHANT": "the seller",
    "PRIME": "Prime",
    "AMAZON_BUSINESS": "Business",
    "PENDING_AVAILABILITY": "Pending availability",
    "IN_STORE_PICK_UP": "In-store pick-up",
}


def words(value: str | None) -> str:
    """PARTIALLY_SHIPPED as "Partially shipped"; values Amazon adds later read the same way."""
    if not value:
        return ""
    return _WORDS.get(value) or value.replace("_", " ").capitalize()


class PanelState(StrEnum):
    NO_ORDER = "no_order"  # a pre-sale question: no order ID
    NO_AUTHORISATION = "no_authorisation"  # the channel holds no SP-API authorisation
    PENDING = "pending"  # not fetched yet
    PURGED = "purged"  # reduced to ID and status after ORDER_DATA_DAYS
    SHOWN = "shown"


@dataclass(frozen=True)
class PanelItem:
    title: str
    asin: str | None
    product_url: str | None
    seller_sku: str | None
    quantity: int
    unit_price: str | None


@dataclass(frozen=True)
class PanelPackage:
    carrier: str | None
    tracking_number: str | None
    status: str


@dataclass(frozen=True)
class OrderPanel:
    state: PanelState
    order_id: str | None
    order: Order | None = None
    status: str = ""
    fulfilled_by: str = ""
    programs: list[str] = field(default_factory=list)
    items: list[PanelItem] = field(default_factory=list)
    packages: list[PanelPackage] = field(default_factory=list)
    total: str | None = None
    seller_central_url: str | None = None
    #: The last failure as a sentence, with the time of the data shown.
    error: str = ""
    #: Why there is no order data (no SP-API authorisation), and, for whoever manages
    #: the channel, where to authorise.
    reason: str = ""
    authorise_url: str | None = None
    is_authorisation_needed: bool = False
    #: Sellerdesk has no SP-API client configured: nothing is being fetched.
    is_fetching_off: bool = False
    can_refresh: bool = False
    can_request_review: bool = False
    purge_days: int = 0
    #: The buyer's name and delivery address, where SPAPI_INCLUDE_PII fetched them.
    pii: order_service.OrderPii | None = None


def build_order_panel(
    thread: Thread,
    *,
    viewer: User,
    can_work: bool,
    authorise_url: str | None,
    fetching_configured: bool,
    purge_days: int,
    now: datetime,
) -> OrderPanel:
    """The panel for `thread` as `viewer` sees it. `authorise_url` is the channel's
    "Authorise with Amazon" step when that is offered (None: it is not)."""
    channel = thread.channel
    if not thread.order_id:
        return OrderPanel(PanelState.NO_ORDER, None)
    may_authorise = can_manage_organisation(viewer, channel.organisation_id)
    step = authorise_url if may_authorise else None
    order = order_service.order_for(channel, thread.order_id)
    if not is_spapi_credential(channel.credential):
        return OrderPanel(
            PanelState.NO_AUTHORISATION,
            thread.order_id,
            order=order,
            reason=_no_authorisation_reason(channel),
            authorise_url=step,
        )
    common = {
        "order_id": thread.order_id,
        "order": order,
        "is_authorisation_needed": channel.is_amazon_authorisation_needed,
        "authorise_url": step if channel.is_amazon_authorisation_needed else None,
        "can_refresh": order_service.can_ask_amazon(channel) and fetching_configured,
        "is_fetching_off": not fetching_configured,
        "purge_days": purge_days,
    }
    if order is None or (order.fetched_at is None and order.purged_at is None):
        error = order.last_error if order is not None else ""
        return OrderPanel(PanelState.PENDING, error=error, **common)
    status = words(order.fulfillment_status)
    if order.purged_at is not None:
        return OrderPanel(PanelState.PURGED, status=status, **common)
    marketplace = _marketplace_of(order, channel)
    return OrderPanel(
        PanelState.SHOWN,
        status=status,
        fulfilled_by=words(order.fulfilled_by),
        programs=[words(p) for p in order.programs],
        items=[_item(raw, marketplace) for raw in order.items],
        packages=[
            PanelPackage(p.get("carrier"), p.get("tracking_number"), words(p.get("status")))
            for p in order.packages
        ],
        total=_money(order.total_amount, order.total_currency),
        seller_central_url=marketplace.seller_central_order_url(order.order_id),
        pii=order_service.order_pii(order),
        error=_error_sentence(order),
        can_request_review=can_work
        and fetching_configured
        and order_service.is_review_request_offered(order, now=now),
        **common,
    )


def _no_authorisation_reason(channel: Channel) -> str:
    how = (
        "is connected with an MWS token only"
        if channel.credential is not None
        else "is not connected to Amazon yet"
    )
    return (
        f"There is no order data because this channel {how}: Amazon gives order details "
        "only to an app the seller has authorised with Amazon's Selling Partner API."
    )


def _error_sentence(order: Order) -> str:
    if not order.last_error:
        return ""
    when = f" (at {format_datetime(order.last_error_at)})" if order.last_error_at else ""
    return (
        f"The last update failed{when}: {order.last_error} The details shown are from "
        f"{format_datetime(order.fetched_at)}."
    )


def _marketplace_of(order: Order, channel: Channel) -> Marketplace:
    """The order's own marketplace (one authorisation covers a region), else the channel's."""
    found = next((m for m in MARKETPLACES if m.marketplace_id == order.marketplace_id), None)
    return found or channel.marketplace_info


def _item(raw: dict, marketplace: Marketplace) -> PanelItem:
    asin = raw.get("asin")
    return PanelItem(
        title=raw.get("title") or "(no title)",
        asin=asin,
        product_url=marketplace.product_url(asin) if asin else None,
        seller_sku=raw.get("seller_sku"),
        quantity=raw.get("quantity") or 0,
        unit_price=_money(raw.get("unit_price"), raw.get("currency")),
    )


def _money(amount: str | None, currency: str | None) -> str | None:
    return f"{amount} {currency or ''}".strip() if amount else None


# --- what the panel's buttons say afterwards ------------------------------------------

REFRESH_MESSAGES = {
    RefreshRequest.REQUESTED: (
        "Refresh requested: the order is fetched from Amazon in the background within a "
        "minute; reload the page to see it.",
        "success",
    ),
    RefreshRequest.ALREADY_DUE: (
        "Refresh requested already: the order is fetched from Amazon within a minute.",
        "info",
    ),
    RefreshRequest.TOO_SOON: (
        "The order was fetched from Amazon less than a minute ago; no new refresh is needed.",
        "info",
    ),
    RefreshRequest.CANNOT_ASK: (
        "This order cannot be fetched: the channel has no working authorisation with Amazon.",
        "warning",
    ),
}


def review_result_message(failure: ApiFailure | None) -> tuple[str, str]:
    """The flash message (text, category) after a review request."""
    if failure is None:
        return "Review requested: Amazon sends the buyer its review and feedback request.", (
            "success"
        )
    if failure.kind == FailureKind.UNAVAILABLE:
        return (
            "Amazon did not answer, so the review request was not sent; try again later.",
            "error",
        )
    if failure.kind == FailureKind.RATE_LIMITED:
        return "Amazon is busy for this seller; try the review request again in a moment.", (
            "warning"
        )
    return f"The review request was not sent: {failure.message}", "warning"
