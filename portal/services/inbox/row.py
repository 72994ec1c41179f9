"""One inbox row as the service returns it: its own module, so that the listing that
builds rows and the paging that makes a cursor from the last one both import it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portal.models import ThreadStatus


@dataclass(slots=True)
class InboxRow:
    """One line of the inbox: plain values, read as columns rather than ORM objects.

    How a row looks (labels, badges) is the inbox view's business (portal/inbox/rows.py).
    """

    id: int
    subject: str | None
    buyer_name: str | None
    buyer_address: str | None
    order_id: str | None
    status: ThreadStatus
    last_message_at: datetime
    awaiting_reply_since: datetime | None
    marketplace: str  # the channel's marketplace name ("Germany")
    organisation: str
    assignee: str | None  # display name
    snippet: str
    deadline: datetime | None
    tags: tuple[str, ...] = ()
