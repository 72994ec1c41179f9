"""Exporting stored mail as JSON Lines: the admins' full export and a seller's own download.

One JSON object per stored message, in message-id order, with these keys (an
interface operators' scripts rely on: never rename them):

- `thread_id` (int or null), `channel` (the helpdesk address, or null),
  `marketplace` (e.g. "UK", or null), `direction` ("in" or "out"),
  `message_id`, `in_reply_to` (or null), `subject`,
- `from`: the sender as an RFC 5322 mailbox, `Name <addr>` when we know a name
  (quoted as `email.utils.formataddr` quotes it, but a non-ASCII name stays
  Unicode rather than becoming an RFC 2047 encoded-word), else just `addr`;
  "" when the mail had no usable sender (quarantined mail),
- `to`: the list of addresses in the To header, as stored (possibly empty),
- `order_id` (or null), `received_at` (when we stored it, ISO 8601 in UTC),
- `flags`: a list drawn, in this order, from `autoreply`, `bounce`,
  `amazon_notification`, `seller_central_copy`, `unrouted`, `quarantined`,
  `body_cut` (`text` holds only the start of a longer body: ingest keeps
  MAX_BODY_CHARS of it; the original mail has the rest),
- `quarantine_reason` (or null), `text` (the decoded plain-text body).

A subject access export (`buyer_records`: every line about one buyer in one
organisation) has the same lines, followed by one line per Amazon order held for that
buyer: the same keys (`direction`, `message_id` and `in_reply_to` null, `subject`,
`from` and `text` empty, `to` and `flags` empty lists, `received_at` when the order was
first stored) plus one key only order lines carry, `order`: the order as stored
(status, dates, total, items, packages, and the buyer's name and delivery address
where SPAPI_INCLUDE_PII stores them).

Internal notes are not mail and are never exported, nor are erased messages
(services/buyer_data.py: their tombstones hold no content). Unrouted and quarantined
mail belongs to no organisation: it appears only in the full export, never in
an organisation's. Only the columns listed here are read, so credentials,
tokens and raw bytes cannot leak into an export.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Select, select

from portal.extensions import db
from portal.models import Channel, Message, Order, Organisation, User
from portal.services import buyer_data
from portal.services.audit import record_event
from portal.services.orders import order_pii

log = logging.getLogger(__name__)

#: Rows fetched per query: bounds memory however many messages there are.
CHUNK_SIZE = 500

FLAGS = (
    "autoreply",
    "bounce",
    "amazon_notification",
    "seller_central_copy",
    "unrouted",
    "quarantined",
    "body_cut",
)

# The same rules as email.utils.formataddr: quote a name holding RFC 5322 specials.
_SPECIALS_RE = re.compile(r'[][\\()<>@,:;".]')
_ESCAPES_RE = re.compile(r'[\\"]')

# Plain columns only, never whole entities: rows do not pile up in the session's
# identity map, and nothing unlisted (raw bytes, credentials) is ever loaded.
_COLUMNS = (
    Message.id,
    Message.thread_id,
    Message.channel_id,
    Message.direction,
    Message.message_id,
    Message.in_reply_to,
    Message.subject,
    Message.from_name,
    Message.from_address,
    Message.to_addresses,
    Message.order_id,
    Message.created_at,
    Message.is_autoreply,
    Message.is_bounce,
    Message.is_amazon_notification,
    Message.is_seller_central_copy,
    Message.quarantine_reason,
    Message.body_cut,
    Message.text_body,  # deferred on the model: selecting the column loads it
    Channel.helpdesk_address,
    Channel.marketplace,
)


def format_mailbox(name: str, address: str) -> str:
    """`Name <address>` (quoted like formataddr, Unicode kept), or `address` without a name."""
    name = " ".join(name.split())
    if not name or not address:
        return address
    if _SPECIALS_RE.search(name):
        name = '"{}"'.format(_ESCAPES_RE.sub(r"\\\g<0>", name))
    return f"{name} <{address}>"


def _split_addresses(value: str) -> list[str]:
    # Stored as bare addresses joined by ", " (see services.threads._new_message).
    return [a.strip() for a in value.split(",") if a.strip()]


def _record(row: Any) -> dict[str, Any]:
    quarantined = row.quarantine_reason is not None
    flags = {
        "autoreply": row.is_autoreply,
        "bounce": row.is_bounce,
        "amazon_notification": row.is_amazon_notification,
        "seller_central_copy": row.is_seller_central_copy,
        "unrouted": row.channel_id is None and not quarantined,
        "quarantined": quarantined,
        "body_cut": row.body_cut,
    }
    return {
        "thread_id": row.thread_id,
        "channel": row.helpdesk_address,
        "marketplace": row.marketplace,
        "direction": row.direction.value,
        "message_id": row.message_id,
        "in_reply_to": row.in_reply_to,
        "subject": row.subject or "",
        "from": format_mailbox(row.from_name or "", row.from_address or ""),
        "to": _split_addresses(row.to_addresses or ""),
        "order_id": row.order_id,
        "received_at": row.created_at.isoformat(),
        "flags": [name for name in FLAGS if flags[name]],
        "quarantine_reason": row.quarantine_reason,
        "text": row.text_body or "",
    }


def iter_message_records(
    *, organisation: Organisation | None, chunk_size: int = CHUNK_SIZE
) -> Iterator[dict[str, Any]]:
    """Every exportable message as a dict, by message id; `organisation=None` means all of them.

    Internal notes are skipped. An organisation's export holds only mail routed to
    its channels, so unrouted and quarantined mail appears in the full export only.
    Reads `chunk_size` rows per query (keyset on the id), so memory stays flat.
    """
    stmt = (
        select(*_COLUMNS)
        .outerjoin(Channel, Channel.id == Message.channel_id)
        .where(Message.is_internal_note.is_(False), Message.erased_at.is_(None))
        .order_by(Message.id)
        .limit(chunk_size)
    )
    if organisation is not None:
        # Read the id now: a streamed download iterates after the view has committed.
        stmt = stmt.where(
            Channel.organisation_id == organisation.id,
            Message.quarantine_reason.is_(None),
        )
    return _iter_chunks(stmt, chunk_size)


def _iter_chunks(stmt: Select, chunk_size: int) -> Iterator[dict[str, Any]]:
    last_id = 0
    while True:
        rows = db.session.execute(stmt.where(Message.id > last_id)).all()
        for row in rows:
            yield _record(row)
        if len(rows) < chunk_size:
            return
        last_id = rows[-1].id


def _order_record(order: Order, channel: Channel) -> dict[str, Any]:
    pii = order_pii(order)

    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "thread_id": None,
        "channel": channel.helpdesk_address,
        "marketplace": channel.marketplace,
        "direction": None,
        "message_id": None,
        "in_reply_to": None,
        "subject": "",
        "from": "",
        "to": [],
        "order_id": order.order_id,
        "received_at": order.created_at.isoformat(),
        "flags": [],
        "quarantine_reason": None,
        "text": "",
        "order": {
            "marketplace_id": order.marketplace_id,
            "fulfillment_status": order.fulfillment_status,
            "fulfilled_by": order.fulfilled_by,
            "programs": list(order.programs or []),
            "purchased_at": when(order.purchased_at),
            "delivered_at": when(order.delivered_at),
            "total_amount": order.total_amount,
            "total_currency": order.total_currency,
            "items": list(order.items or []),
            "packages": list(order.packages or []),
            "buyer_name": pii.buyer_name if pii else None,
            "ship_to": list(pii.ship_to) if pii else [],
        },
    }


@dataclass
class BuyerExport:
    """What one subject access export holds: the lines to write, and their counts."""

    address: str
    message_ids: list[int]
    order_keys: list[tuple[int, str]]

    @property
    def is_empty(self) -> bool:
        return not self.message_ids and not self.order_keys

    def records(self, chunk_size: int = CHUNK_SIZE) -> Iterator[dict[str, Any]]:
        """The buyer's messages (as the export writes them, by id), then their orders."""
        stmt = select(*_COLUMNS).outerjoin(Channel, Channel.id == Message.channel_id)
        for start in range(0, len(self.message_ids), chunk_size):
            chunk = self.message_ids[start : start + chunk_size]
            for row in db.session.execute(stmt.where(Message.id.in_(chunk)).order_by(Message.id)):
                yield _record(row)
        for channel_id, order_id in self.order_keys:
            row = db.session.execute(
                select(Order, Channel)
                .join(Channel, Channel.id == Order.channel_id)
                .where(Order.channel_id == channel_id, Order.order_id == order_id)
            ).first()
            if row is not None:
                yield _order_record(row.Order, row.Channel)


def find_buyer_export(
    organisation: Organisation, address: str, *, include_unassigned: bool = False
) -> BuyerExport:
    """Everything `organisation` holds about the buyer at `address` (what `erase_buyer`
    would erase, internal notes aside; with `include_unassigned`, their unrouted and
    quarantined mail too); raises BuyerDataError for a non-address."""
    found = buyer_data.find_buyer_data(organisation, address, include_unassigned=include_unassigned)
    message_ids: set[int] = set(found.stray_message_ids)
    for start in range(0, len(found.thread_ids), CHUNK_SIZE):
        message_ids.update(
            db.session.scalars(
                select(Message.id).where(
                    Message.thread_id.in_(found.thread_ids[start : start + CHUNK_SIZE]),
                    Message.is_internal_note.is_(False),
                    Message.erased_at.is_(None),
                )
            )
        )
    order_keys = [
        key
        for key in buyer_data.buyer_order_keys(found)
        if db.session.scalar(
            select(Order.id).where(Order.channel_id == key[0], Order.order_id == key[1])
        )
        is not None
    ]
    return BuyerExport(
        address=found.address, message_ids=sorted(message_ids), order_keys=order_keys
    )


def record_buyer_export(
    organisation: Organisation, export: BuyerExport, *, actor: User | None
) -> None:
    """Audit a subject access export (the address's digest and counts only)."""
    record_event(
        "buyer.exported",
        actor=actor,
        organisation_id=organisation.id,
        target=organisation,
        details={
            "address_sha256": buyer_data.address_digest(export.address),
            "messages": len(export.message_ids),
            "orders": len(export.order_keys),
            "format": "jsonl",
        },
    )


def iter_jsonl(records: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """Each record as one UTF-8 JSON line (non-ASCII kept as is, not \\u-escaped)."""
    for record in records:
        yield (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def write_jsonl(
    out: BinaryIO,
    *,
    organisation: Organisation | None,
    records: Iterable[dict[str, Any]] | None = None,
) -> int:
    """Write the export (or `records`) to an open binary stream; returns the line count."""
    if records is None:
        records = iter_message_records(organisation=organisation)
    count = 0
    for line in iter_jsonl(records):
        out.write(line)
        count += 1
    out.flush()
    return count


def write_jsonl_file(
    path: str | os.PathLike[str],
    *,
    organisation: Organisation | None,
    records: Iterable[dict[str, Any]] | None = None,
) -> int:
    """Write the export (or `records`) to `path` atomically; returns the line count.

    The lines go to a temporary file beside `path` that is renamed over it only
    once complete, so a crashed or interrupted export never looks like a whole one.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            count = write_jsonl(out, organisation=organisation, records=records)
            os.fsync(out.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    log.info("Exported %d lines to %s", count, target)
    return count


def slugify(name: str) -> str:
    """An ASCII, lower-case, dash-separated form of `name` for file names ("" if none)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")


def export_filename(organisation: Organisation, *, on: date) -> str:
    """`sellerdesk-<org-slug>-<date>.jsonl`; the slug falls back to `org-<id>`."""
    slug = slugify(organisation.name) or f"org-{organisation.id}"
    return f"sellerdesk-{slug}-{on.isoformat()}.jsonl"


def start_organisation_export(organisation: Organisation, *, actor: User) -> Iterator[bytes]:
    """Audit `actor` exporting `organisation` and return its JSON lines, to stream.

    The event is added (and flushed) now; the caller commits it before streaming.
    """
    record_event(
        "organisation.exported",
        actor=actor,
        organisation_id=organisation.id,
        target=organisation,
        details={"format": "jsonl"},
    )
    return iter_jsonl(iter_message_records(organisation=organisation))
