"""An order as SP-API's Orders API v2026-01-01 `getOrder` returns it, read into dataclasses.

Pure: no database, no HTTP, no Flask. Built against Amazon's published model
(`models/orders-api-model/orders_2026-01-01.json` in amzn/selling-partner-api-models) and
its sandbox examples: `{"order": {orderId, createdTime, programs, salesChannel,
proceeds{grandTotal}, fulfillment{fulfillmentStatus, fulfilledBy, shipByWindow,
deliverByWindow}, orderItems[{product{asin, title, sellerSku, price{unitPrice}},
quantityOrdered}], packages[{carrier, trackingNumber, packageStatus{status}}], buyer}}`.

The model marks few fields required, and Amazon adds fields and values over time: an
optional field that is missing or of the wrong shape is read as None (or left out of a
list), while an answer without the order's required core (an object `order` with an
`orderId` and a list `orderItems`) raises MalformedOrder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

#: Orders whose fulfilment can still change: the panel keeps refreshing these.
OPEN_FULFILLMENT_STATUSES = frozenset(
    {"PENDING_AVAILABILITY", "PENDING", "UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED"}
)
#: Longest text kept from any one field (titles are long; nothing should be unbounded).
MAX_TEXT = 500


class MalformedOrder(ValueError):
    """Amazon's answer is not an order we can read."""


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


@dataclass(frozen=True)
class Window:
    earliest: datetime | None
    latest: datetime | None


@dataclass(frozen=True)
class OrderItem:
    asin: str | None
    title: str | None
    seller_sku: str | None
    quantity: int
    unit_price: Money | None


@dataclass(frozen=True)
class Package:
    carrier: str | None
    tracking_number: str | None
    #: PENDING, IN_TRANSIT, SHIPPED, DELIVERED, CANCELLED, UNDELIVERABLE (the model's enum).
    status: str | None
    detailed_status: str | None
    shipped_at: datetime | None


@dataclass(frozen=True)
class AmazonOrder:
    order_id: str
    marketplace_id: str | None
    created_at: datetime | None
    updated_at: datetime | None
    #: PENDING_AVAILABILITY, PENDING, UNSHIPPED, PARTIALLY_SHIPPED, SHIPPED, CANCELLED,
    #: UNFULFILLABLE; None when FULFILLMENT was not in the answer.
    fulfillment_status: str | None
    #: AMAZON or MERCHANT.
    fulfilled_by: str | None
    ship_by: Window | None
    deliver_by: Window | None
    #: PRIME, AMAZON_BUSINESS, … (the model lists them; new ones are kept as they come).
    programs: tuple[str, ...]
    total: Money | None
    items: tuple[OrderItem, ...]
    packages: tuple[Package, ...]
    #: Only when BUYER was asked for (SPAPI_INCLUDE_PII) and Amazon gave it.
    buyer_name: str | None = None
    #: The delivery address as lines (name, company, street lines, city and postal code,
    #: region, country); only when RECIPIENT was asked for and Amazon gave it.
    ship_to: tuple[str, ...] = ()

    @property
    def is_open(self) -> bool:
        """Whether the order can still change (not yet delivered, cancelled or unfulfillable)."""
        if self.fulfillment_status not in OPEN_FULFILLMENT_STATUSES:
            return False
        return not self.packages or any(p.status != "DELIVERED" for p in self.packages)

    @property
    def delivery_date(self) -> datetime | None:
        """The order's delivery date for retention: the deliver-by window's end (the
        model gives packages a status but no delivery time)."""
        return self.deliver_by.latest if self.deliver_by else None


def read_order(answer: Any) -> AmazonOrder:
    """The order in a getOrder answer (`{"order": {…}}`), or MalformedOrder."""
    order = answer.get("order") if isinstance(answer, dict) else None
    if not isinstance(order, dict):
        raise MalformedOrder("the answer has no order object")
    order_id = _text(order.get("orderId"))
    if not order_id:
        raise MalformedOrder("the order has no orderId")
    raw_items = order.get("orderItems")
    if not isinstance(raw_items, list):
        raise MalformedOrder("the order has no list of orderItems")
    fulfillment = _object(order.get("fulfillment"))
    sales_channel = _object(order.get("salesChannel"))
    buyer = _object(order.get("buyer"))
    return AmazonOrder(
        order_id=order_id,
        marketplace_id=_text(sales_channel.get("marketplaceId")),
        created_at=_time(order.get("createdTime")),
        updated_at=_time(order.get("lastUpdatedTime")),
        fulfillment_status=_text(fulfillment.get("fulfillmentStatus")),
        fulfilled_by=_text(fulfillment.get("fulfilledBy")),
        ship_by=_window(fulfillment.get("shipByWindow")),
        deliver_by=_window(fulfillment.get("deliverByWindow")),
        programs=tuple(p for p in map(_text, _list(order.get("programs"))) if p),
        total=_money(_object(order.get("proceeds")).get("grandTotal")),
        items=tuple(_item(i) for i in raw_items if isinstance(i, dict)),
        packages=tuple(_package(p) for p in _list(order.get("packages")) if isinstance(p, dict)),
        buyer_name=_text(buyer.get("buyerName")),
        ship_to=_address(_object(_object(order.get("recipient")).get("deliveryAddress"))),
    )


def _address(raw: dict[str, Any]) -> tuple[str, ...]:
    """An address as it is written on a parcel; the phone number is left out."""
    city = " ".join(t for t in (_text(raw.get("postalCode")), _text(raw.get("city"))) if t)
    region = ", ".join(
        t for t in (_text(raw.get("districtOrCounty")), _text(raw.get("stateOrRegion"))) if t
    )
    lines = (
        raw.get("name"),
        raw.get("companyName"),
        raw.get("addressLine1"),
        raw.get("addressLine2"),
        raw.get("addressLine3"),
        city,
        region,
        raw.get("countryCode"),
    )
    return tuple(t for t in map(_text, lines) if t)


def _item(raw: dict[str, Any]) -> OrderItem:
    product = _object(raw.get("product"))
    quantity = raw.get("quantityOrdered")
    return OrderItem(
        asin=_text(product.get("asin")),
        title=_text(product.get("title")),
        seller_sku=_text(product.get("sellerSku")),
        quantity=quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else 0,
        unit_price=_money(_object(product.get("price")).get("unitPrice")),
    )


def _package(raw: dict[str, Any]) -> Package:
    status = _object(raw.get("packageStatus"))
    return Package(
        carrier=_text(raw.get("carrier")),
        tracking_number=_text(raw.get("trackingNumber")),
        status=_text(status.get("status")),
        detailed_status=_text(status.get("detailedStatus")),
        shipped_at=_time(raw.get("shipTime")),
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_TEXT]


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime; None for anything else."""
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _window(value: Any) -> Window | None:
    raw = _object(value)
    window = Window(_time(raw.get("earliestDateTime")), _time(raw.get("latestDateTime")))
    return window if window.earliest or window.latest else None


def _money(value: Any) -> Money | None:
    raw = _object(value)
    currency = _text(raw.get("currencyCode"))
    amount = raw.get("amount")
    if currency is None or not isinstance(amount, str):
        return None
    try:
        number = Decimal(amount)
    except InvalidOperation:
        return None
    return Money(number, currency) if number.is_finite() else None
