"""The Amazon order beside a channel's messages, as SP-API last described it (issue 20).

One row per channel and order ID, replaced field by field on every fetch: a snapshot for
the thread page's panel, which renders from it without calling Amazon. Items and packages
are small lists read and written whole, so they are JSON rather than tables of their own.
Order data is buyer data: it is kept no longer than needed (a worker purges it after
delivery), and neither buyer nor recipient details are stored here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.sqltypes import UTCDateTime, utcnow

if TYPE_CHECKING:
    from portal.models.channels import Channel


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("channel_id", "order_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    #: Amazon's order ID, e.g. 202-1234567-8901234.
    order_id: Mapped[str] = mapped_column(String(32))
    marketplace_id: Mapped[str | None] = mapped_column(String(16))
    #: Amazon's words, kept as given (its list grows): PENDING, UNSHIPPED, SHIPPED, …
    fulfillment_status: Mapped[str | None] = mapped_column(String(32))
    #: AMAZON or MERCHANT.
    fulfilled_by: Mapped[str | None] = mapped_column(String(16))
    #: Amazon's programs, e.g. ["PRIME", "AMAZON_BUSINESS"].
    programs: Mapped[list[str]] = mapped_column(JSON, default=list)
    purchased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ship_by_earliest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ship_by_latest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deliver_by_earliest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deliver_by_latest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Amazon's decimal as it gave it (a string in its model: no float, no rounding).
    total_amount: Mapped[str | None] = mapped_column(String(32))
    total_currency: Mapped[str | None] = mapped_column(String(3))
    #: [{title, asin, seller_sku, quantity, unit_price, currency}], in Amazon's order.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: [{carrier, tracking_number, status, detailed_status, shipped_at}].
    packages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: The order's delivery date, from which its data is purged: a package's delivery
    #: time where Amazon gives one (its model has none yet), else the deliver-by end.
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When Amazon last described the order (None: asked, never answered yet).
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the worker asks again; None: not until someone asks (closed, or refused).
    refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    #: The sentence of the last failure, shown beside the older data; "" after a success.
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When Amazon last said it offers the review request for this order (asked by the
    #: worker when it fetches a delivered order); None: not offered, or not asked.
    review_request_offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When Amazon sent the buyer our review and feedback request (once per order).
    review_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the details were purged (ORDER_DATA_DAYS after delivery): only the order ID
    #: and status remain. A later fetch brings them back until the next purge.
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The buyer's name and the delivery address (SPAPI_INCLUDE_PII only), as JSON
    #: encrypted under TOKEN_KEY (portal/services/orders.py, order_pii); None without.
    pii_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    channel: Mapped[Channel] = relationship()

    def __repr__(self) -> str:
        return f"<Order {self.id} {self.order_id} channel={self.channel_id}>"
