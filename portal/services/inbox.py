"""The inbox: threads a user may see, filtered, searched and paged by keyset.

Keyset pagination (WHERE (sort key, id) beyond the last row seen) keeps a deep page
as cheap as the first one; OFFSET would scan every skipped row.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, and_, case, exists, false, func, or_, select, tuple_
from sqlalchemy.orm import joinedload, selectinload

from portal.extensions import db
from portal.models import Channel, Message, Tag, Thread, ThreadStatus, User, thread_tags
from portal.security import scope_to_user
from portal.services.threads import response_deadline

PAGE_SIZE = 50
SORTS = ("activity", "urgent")
ASSIGNEE_FILTERS = ("anyone", "me", "unassigned")
STATUS_FILTERS = ("open", "pending", "closed", "all")


@dataclass(frozen=True)
class InboxQuery:
    status: str = "open"
    channel_id: int | None = None
    marketplace: str | None = None
    organisation_id: int | None = None
    assignee: str = "anyone"
    tag: str | None = None
    q: str = ""
    sort: str = "activity"
    cursor: str | None = None


@dataclass(frozen=True)
class InboxRow:
    thread: Thread
    snippet: str
    deadline: datetime | None


@dataclass
class InboxPage:
    rows: list[InboxRow] = field(default_factory=list)
    next_cursor: str | None = None


def _encode_cursor(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> list | None:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return values if isinstance(values, list) and len(values) == 3 else None


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _filtered(user: User, query: InboxQuery) -> Select:
    stmt = select(Thread)
    stmt = scope_to_user(stmt, Thread.organisation_id, user)
    if query.status in ("open", "pending", "closed"):
        stmt = stmt.where(Thread.status == ThreadStatus(query.status))
    if query.channel_id:
        stmt = stmt.where(Thread.channel_id == query.channel_id)
    if query.marketplace:
        stmt = stmt.where(
            Thread.channel_id.in_(
                select(Channel.id).where(Channel.marketplace == query.marketplace.upper())
            )
        )
    if query.organisation_id:
        stmt = stmt.where(Thread.organisation_id == query.organisation_id)
    if query.assignee == "me":
        stmt = stmt.where(Thread.assignee_id == user.id)
    elif query.assignee == "unassigned":
        stmt = stmt.where(Thread.assignee_id.is_(None))
    if query.tag:
        stmt = stmt.where(
            exists().where(
                thread_tags.c.thread_id == Thread.id,
                thread_tags.c.tag_id == Tag.id,
                Tag.name == query.tag.lower(),
            )
        )
    terms = query.q.split()
    for term in terms[:5]:
        like = f"%{_escape_like(term.lower())}%"
        stmt = stmt.where(
            or_(
                func.lower(Thread.subject).like(like, escape="\\"),
                func.lower(Thread.buyer_name).like(like, escape="\\"),
                func.lower(Thread.buyer_address).like(like, escape="\\"),
                func.lower(Thread.order_id).like(like, escape="\\"),
                exists().where(
                    Message.thread_id == Thread.id,
                    Message.is_internal_note.is_(False),
                    func.lower(Message.text_body).like(like, escape="\\"),
                ),
            )
        )
    return stmt


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _paged(stmt: Select, query: InboxQuery) -> Select:
    cursor = _decode_cursor(query.cursor) if query.cursor else None
    if query.sort == "urgent":
        # Threads awaiting an answer first, earliest deadline first; then the rest.
        waiting = Thread.awaiting_reply_since.is_not(None) & (Thread.status != ThreadStatus.CLOSED)
        rank = case((waiting, 0), else_=1)
        if cursor:
            c_rank, c_when, c_id = cursor
            when = _when(c_when)
            if c_rank == 0 and when is not None:
                stmt = stmt.where(
                    or_(
                        ~waiting,
                        and_(
                            waiting, tuple_(Thread.awaiting_reply_since, Thread.id) > (when, c_id)
                        ),
                    )
                )
            else:
                stmt = stmt.where(~waiting, Thread.id > c_id)
        return stmt.order_by(rank, Thread.awaiting_reply_since, Thread.id)
    if cursor:
        _, c_when, c_id = cursor
        when = _when(c_when)
        if when is None:
            return stmt.where(false())
        # A row-value comparison, so both databases seek the (last_message_at, id)
        # index instead of filtering every newer row.
        stmt = stmt.where(tuple_(Thread.last_message_at, Thread.id) < (when, c_id))
    return stmt.order_by(Thread.last_message_at.desc(), Thread.id.desc())


def _cursor_after(thread: Thread, query: InboxQuery) -> str:
    if query.sort == "urgent":
        waiting = thread.awaiting_reply_since is not None and thread.status != ThreadStatus.CLOSED
        if waiting:
            return _encode_cursor([0, thread.awaiting_reply_since.isoformat(), thread.id])
        return _encode_cursor([1, None, thread.id])
    return _encode_cursor([0, thread.last_message_at.isoformat(), thread.id])


def list_inbox(user: User, query: InboxQuery, *, page_size: int = PAGE_SIZE) -> InboxPage:
    """One page of the threads `user` may see, matching `query`."""
    stmt = _paged(_filtered(user, query), query).limit(page_size + 1)
    stmt = stmt.options(
        joinedload(Thread.channel).joinedload(Channel.organisation),
        joinedload(Thread.assignee),
        selectinload(Thread.tags),
    )
    threads = list(db.session.scalars(stmt).unique())
    page = InboxPage()
    if len(threads) > page_size:
        threads = threads[:page_size]
        page.next_cursor = _cursor_after(threads[-1], query)
    snippets = _latest_snippets([t.id for t in threads])
    page.rows = [InboxRow(t, snippets.get(t.id, ""), response_deadline(t)) for t in threads]
    return page


def _latest_snippets(thread_ids: list[int]) -> dict[int, str]:
    """Each thread's newest message snippet, in one query (notes excluded)."""
    if not thread_ids:
        return {}
    newest = (
        select(Message.thread_id, func.max(Message.id).label("id"))
        .where(Message.thread_id.in_(thread_ids), Message.is_internal_note.is_(False))
        .group_by(Message.thread_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Message.thread_id, Message.snippet).join(newest, Message.id == newest.c.id)
    )
    return {thread_id: snippet for thread_id, snippet in rows}
