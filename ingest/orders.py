"""The worker's order pass: ask Amazon for the orders of new buyer messages and refresh
the stored ones that are due (portal/services/orders.py decides which and when); and the
purge of the details of orders delivered ORDER_DATA_DAYS ago.

Like the mail pipeline, it owns its transactions: each order is claimed and committed
on its own, so one order's failure never loses another's, and two workers never ask
Amazon for the same order at once. It runs in the worker only; no page ever waits for Amazon.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from portal.amazon_api import AmazonApi
from portal.extensions import db
from portal.models import Channel
from portal.services import orders as order_service

log = logging.getLogger(__name__)

#: Orders asked for per pass: a pass stays short, and the rate limits pace the rest.
BATCH = 25


@dataclass
class OrdersSummary:
    fetched: int = 0
    #: Orders another worker was asking Amazon for at the same time.
    taken: int = 0
    #: Failures by kind (rate_limited, unavailable, authorisation_revoked, …).
    failed: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        failures = ", ".join(f"{kind} {n}" for kind, n in sorted(self.failed.items()))
        taken = f"; {self.taken} taken by another worker" if self.taken else ""
        return (
            f"{self.fetched} orders fetched"
            + (f"; not fetched: {failures}" if failures else "")
            + taken
        )


def refresh_orders(api: AmazonApi, *, now: datetime, limit: int = BATCH) -> OrdersSummary:
    """One pass: fetch and store up to `limit` orders, each in its own transaction,
    after claiming it in one of its own (so a second worker running the same pass skips
    the orders this one is asking for, instead of asking Amazon twice)."""
    summary = OrdersSummary()
    for channel_id, order_id in order_service.orders_to_fetch(now=now, limit=limit):
        try:
            channel = db.session.get(Channel, channel_id)
            if channel is None:
                continue
            claimed = order_service.claim_order(channel_id, order_id, now=now)
            db.session.commit()
            if not claimed:
                summary.taken += 1
                continue
            _, failure = order_service.refresh_order(channel, order_id, api=api, now=now)
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()
            log.exception("Could not store order %s of channel %s", order_id, channel_id)
            summary.failed["database"] += 1
            continue
        if failure is not None:
            summary.failed[failure.kind.value] += 1
        else:
            summary.fetched += 1
    return summary


def purge_orders(*, now: datetime, days: int) -> int:
    """Reduce the orders delivered more than `days` ago to ID and status, and commit."""
    purged = order_service.purge_order_data(now=now, days=days)
    db.session.commit()
    return purged
