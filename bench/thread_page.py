#!/usr/bin/env python3
"""Thread page benchmark: a thread with its stored Amazon order against the same page without.

Fills (or reuses) bench/inbox.py's database of 100,000 threads, then picks one of its
buyer threads with an order ID and a few messages and prepares, once per database:

  order     that thread, with an Order row stored for its channel and order ID as the
            worker keeps one (two items, prices, programs, one package with carrier
            and tracking number): what the order panel renders from
  plain     a copy of the same thread (same subject, buyer alias and messages) under an
            order ID with no Order row: the same page without the order
  bare      bench/inbox.py's trivial page of the same app: the floor

and gives the buyer HISTORY more threads with the same relay alias on the seller's
other channels, so both thread pages list the buyer's history as a repeat buyer's
would (the order and plain threads list each other too). After warm-up rounds it
requests the three pages N times, interleaved, logged in as the bench's admin through
the real login form, and prints median and p95 latency in ms, each page over the
bare page, and `order/plain ratio=X.XX`. Target: <= 1.3. It says whether the page
showed the stored order (the panel's template is a separate change: without it both
pages render the same and the ratio only proves the Order row costs nothing). It
asserts nothing: it prints figures.

    .venv/bin/python bench/thread_page.py                       # SQLite in a temp dir
    .venv/bin/python bench/thread_page.py --keep /tmp/inbox.db  # share bench/inbox.py's fill
    .venv/bin/python bench/thread_page.py --postgres            # a throwaway PostgreSQL
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, where bench/ingest.py would shadow the
# `ingest` package; put the project root there instead (portal, ingest, tests, bench).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.inbox import (  # noqa: E402 (after the path fix above)
    Page,
    add_database_args,
    check_database_args,
    run_pages,
)

TARGET_RATIO = 1.3
#: Marks the threads and order this bench added (a row in `settings`).
MARKER_KEY = "bench.thread_page"
#: The buyer's other threads beside the two measured ones.
HISTORY = 5
ITEM_TITLE = "Orthopaedic Memory Foam Dog Bed, Large, Grey (bench order)"
TRACKING = "JD014600006281234567"


def _order_fields() -> dict[str, Any]:
    return {
        "marketplace_id": "A1F83G8C2ARO7P",
        "fulfillment_status": "SHIPPED",
        "fulfilled_by": "MERCHANT",
        "programs": ["PRIME"],
        "total_amount": "64.98",
        "total_currency": "GBP",
        "items": [
            {"title": ITEM_TITLE, "asin": "B0BENCH001", "seller_sku": "DOGBED-L-GRY",
             "quantity": 1, "unit_price": "49.99", "currency": "GBP"},
            {"title": "Silicone Baking Mats (2-pack), Non-Stick, BPA Free", "asin": "B0BENCH002",
             "seller_sku": "MAT-2PK", "quantity": 1, "unit_price": "14.99", "currency": "GBP"},
        ],
        "packages": [
            {"carrier": "DHL", "tracking_number": TRACKING, "status": "IN_TRANSIT",
             "detailed_status": None, "shipped_at": "2026-11-30T10:00:00+00:00"},
        ],
    }  # fmt: skip


#: Not a secret: the bench channel's authorisation is never used to call Amazon.
BENCH_REFRESH_TOKEN = "Atzr|IwEBIbench-refresh-token-for-the-thread-page-0123456789WXYZ"  # noqa: S105


def prepare_threads(app: Any) -> tuple[int, int]:
    """The ids of the order and plain threads, made on the first run on this database."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Channel, Message, Order, Setting, Thread
    from portal.services import spapi as spapi_service
    from portal.sqltypes import utcnow

    with app.app_context():
        marker = db.session.get(Setting, MARKER_KEY)
        if marker is not None:
            ids = marker.value["order"], marker.value["plain"]
            db.session.remove()
            return ids
        # A middling buyer thread: an order ID, three to six messages, a seller with
        # several channels; the first such thread past the middle of the ids.
        counts = (
            select(Message.thread_id, func.count().label("n"))
            .group_by(Message.thread_id)
            .subquery()
        )
        thread = db.session.scalar(
            select(Thread)
            .join(counts, counts.c.thread_id == Thread.id)
            .where(
                Thread.order_id.is_not(None),
                counts.c.n.between(3, 6),
                Thread.id >= db.session.scalar(select(func.max(Thread.id))) // 2,
            )
            .order_by(Thread.id)
            .limit(1)
        )
        if thread is None:
            raise SystemExit("no thread of three to six messages with an order ID to measure")
        # The panel shows a stored order only on a channel holding an SP-API authorisation
        # (without one it says why there is none): the channel gets one, as a seller who
        # clicked "Authorise with Amazon" has. Both measured threads are on this channel.
        spapi_service.store_refresh_token(
            thread.channel,
            selling_partner_id="A1BENCHSELLER0",
            refresh_token=BENCH_REFRESH_TOKEN,
            actor=None,
        )
        db.session.add(Order(channel_id=thread.channel_id, order_id=thread.order_id,
                             fetched_at=utcnow(), **_order_fields()))  # fmt: skip
        plain = _copy(thread, order_id="999-0000000-0000001", with_messages=True)
        others = db.session.scalars(
            select(Channel).where(
                Channel.organisation_id == thread.organisation_id, Channel.id != thread.channel_id
            )
        ).all() or [thread.channel]
        for n in range(HISTORY):
            _copy(thread, order_id=f"999-0000000-{n + 2:07d}", channel=others[n % len(others)])
        db.session.add(Setting(key=MARKER_KEY, value={"order": thread.id, "plain": plain.id}))
        db.session.commit()
        ids = thread.id, plain.id
        db.session.remove()
    return ids


def _copy(thread: Any, *, order_id: str, channel: Any = None, with_messages: bool = False) -> Any:
    """Another thread of the same buyer: the same subject, alias and (optionally) messages."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import Message, Thread

    channel_id = channel.id if channel is not None else thread.channel_id
    copy = Thread(
        **_columns(thread, skip=("id", "channel_id", "order_id", "snippet", "tag_names")),
        channel_id=channel_id,
        order_id=order_id,
    )
    db.session.add(copy)
    db.session.flush()
    messages = db.session.scalars(select(Message).where(Message.thread_id == thread.id))
    for message in messages if with_messages else ():
        columns = _columns(message, skip=("id", "thread_id", "channel_id", "uid", "uidvalidity"))
        columns["message_id"] = f"<copy-{copy.id}-{message.id}@bench.invalid>"
        columns["content_hash"] = f"copy-{copy.id}-{message.id}"
        db.session.add(Message(**columns, thread_id=copy.id, channel_id=channel_id))
    db.session.flush()
    return copy


def _columns(row: Any, *, skip: tuple[str, ...]) -> dict[str, Any]:
    """A row's column values by attribute name, but those in `skip`."""
    return {c.key: getattr(row, c.key) for c in type(row).__table__.columns if c.key not in skip}


def report(label: str, pages: list[Page], panel_shown: bool) -> str:
    bare, plain, order = pages
    ratio = order.median_ms / plain.median_ms
    met = "met" if ratio <= TARGET_RATIO else "NOT MET"
    lines = [
        f"Thread page with a stored order against the same page without, {label}",
        f"  the stored order on the page: {'shown' if panel_shown else 'NOT shown (no order panel in this tree)'}",  # noqa: E501
        f"  buyer's history: {HISTORY + 1} other threads on each page",
        "",
        f"  {'page':<8}{'median ms':>11}{'p95 ms':>9}{'/bare':>8}   url",
    ]
    for page in pages:
        lines.append(
            f"  {page.name:<8}{page.median_ms:>11.2f}{page.p95_ms:>9.2f}"
            f"{page.median_ms / bare.median_ms:>8.2f}   {page.url}"
        )
    lines += [
        "",
        f"Target: the page with its order <= {TARGET_RATIO}x the page without: {met}",
        f"order/plain ratio={ratio:.2f}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_database_args(parser)
    args = parser.parse_args(argv)
    check_database_args(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def pages_for(app: Any, dataset: Any) -> list[Page]:
        order_id, plain_id = prepare_threads(app)
        return [
            Page("bare", "/bench-bare"),
            Page("plain", f"/threads/{plain_id}"),
            Page("order", f"/threads/{order_id}"),
        ]

    def report_for(app: Any, client: Any, label: str, dataset: Any, pages: list[Page]) -> str:
        panel_shown = TRACKING in client.get(pages[2].url).get_data(as_text=True)
        return report(label, pages, panel_shown)

    return run_pages(
        args, prefix="sellerdesk-bench-thread-", pages_for=pages_for, report_for=report_for
    )


if __name__ == "__main__":
    sys.exit(main())
