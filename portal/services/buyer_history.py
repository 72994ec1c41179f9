"""The buyer's history beside a thread: the organisation's other threads of the same buyer
(relay alias or sender address) and of the same Amazon order, on any of its channels.

Only what the viewer may see: the thread's own organisation, narrowed again by the
viewer's scope (portal/services/scoping.py), so a buyer who wrote to two sellers under
one alias never shows one seller the other's threads. Bounded to the newest
HISTORY_LIMIT threads, and read through indexes: the buyer's threads through
ix_threads_channel_buyer, one lookup per channel of the organisation (its channels come
from a subquery, so the alias is never compared across all threads), and the order's
through the index on threads.order_id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, union

from portal.extensions import db
from portal.models import Channel, Thread, ThreadStatus, User
from portal.services.scoping import can_see_organisation

#: Threads shown at most, newest activity first.
HISTORY_LIMIT = 20


@dataclass(frozen=True)
class HistoryEntry:
    """One other thread of the buyer or of the order, as the thread page lists it."""

    thread_id: int
    subject: str
    status: ThreadStatus
    #: The channel's marketplace code ("UK", "DE", …).
    marketplace: str
    order_id: str | None
    created_at: datetime
    last_message_at: datetime
    is_same_buyer: bool
    is_same_order: bool


def buyer_history(
    thread: Thread, viewer: User, *, limit: int = HISTORY_LIMIT
) -> list[HistoryEntry]:
    """The newest `limit` other threads of `thread`'s buyer or order in its organisation
    that `viewer` may see, newest activity first."""
    organisation_id = thread.organisation_id
    # Every thread found below is of the thread's organisation, so the viewer's scope is
    # one check here rather than a condition the planner might read the threads by.
    if not can_see_organisation(viewer, organisation_id):
        return []
    channels = select(Channel.id).where(Channel.organisation_id == organisation_id)
    matches = []
    if thread.buyer_address:
        matches.append(
            select(Thread.id).where(
                Thread.channel_id.in_(channels), Thread.buyer_address == thread.buyer_address
            )
        )
    if thread.order_id:
        matches.append(
            select(Thread.id).where(
                Thread.order_id == thread.order_id, Thread.channel_id.in_(channels)
            )
        )
    if not matches:
        return []
    stmt = (
        select(
            Thread.id,
            Thread.subject,
            Thread.status,
            Channel.marketplace,
            Thread.order_id,
            Thread.buyer_address,
            Thread.created_at,
            Thread.last_message_at,
        )
        .join(Channel, Channel.id == Thread.channel_id)
        .where(
            Thread.id.in_(union(*matches) if len(matches) > 1 else matches[0]),
            Thread.id != thread.id,
        )
        .order_by(Thread.last_message_at.desc(), Thread.id.desc())
        .limit(limit)
    )
    return [
        HistoryEntry(
            thread_id=row.id,
            subject=row.subject,
            status=row.status,
            marketplace=row.marketplace,
            order_id=row.order_id,
            created_at=row.created_at,
            last_message_at=row.last_message_at,
            is_same_buyer=bool(thread.buyer_address) and row.buyer_address == thread.buyer_address,
            is_same_order=bool(thread.order_id) and row.order_id == thread.order_id,
        )
        for row in db.session.execute(stmt)
    ]
