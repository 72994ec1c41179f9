"""The inbox's sort orders and keyset pagination.

Keyset pagination (WHERE (sort key, id) beyond the last row seen) keeps a deep page
as cheap as the first one; OFFSET would scan every skipped row. A cursor is the
last row's (rank, time, id), in the URL: anyone may edit it, so a cursor that does
not decode shows the first page.

Sorts: "activity" (newest activity first) and "urgent" (threads awaiting an answer
first, earliest deadline first, then the rest).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Subquery,
    bindparam,
    case,
    false,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.sql.elements import BindParameter

from portal.models import Thread, ThreadStatus
from portal.services.inbox.filters import InboxQuery
from portal.services.inbox.row import InboxRow
from portal.sqltypes import MAX_ID


def cursor_kind(query: InboxQuery, params: dict) -> str | None:
    """The kind of `query.cursor`, for the statement's shape; its time and id go into `params`.

    Activity: "after" a row, or "none" (a cursor without a time: nothing comes after
    it). Urgent: among the "waiting" rows, or already among the "rest".
    """
    cursor = _decode_cursor(query.cursor) if query.cursor else None
    if not cursor:
        return None
    rank, params["cursor_when"], params["cursor_id"] = cursor
    if query.sort == "urgent":
        return "rest" if rank != 0 or params["cursor_when"] is None else "waiting"
    return "none" if params["cursor_when"] is None else "after"


def cursor_after(row: InboxRow, sort: str) -> str:
    """The cursor of the page that follows `row` in `sort`."""
    if sort == "urgent":
        if row.deadline is not None:  # awaiting an answer, not closed
            return _encode_cursor([0, row.awaiting_reply_since.isoformat(), row.id])
        return _encode_cursor([1, None, row.id])
    return _encode_cursor([0, row.last_message_at.isoformat(), row.id])


def _encode_cursor(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, datetime | None, int] | None:
    """The (rank, time, thread id) of a cursor `cursor_after` made; None for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        rank, when, thread_id = json.loads(base64.urlsafe_b64decode(padded))
        when = datetime.fromisoformat(when) if when is not None else None
        if when is not None and when.utcoffset() is not None:
            # Stored as UTC: 0001-01-01T00:00+05:00 has no UTC time (OverflowError).
            when = when.astimezone(UTC)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
        return None
    if (
        type(rank) is not int
        or rank not in (0, 1)
        or type(thread_id) is not int
        or not 0 < thread_id <= MAX_ID
        or (when is not None and when.utcoffset() is None)
    ):
        return None
    return rank, when, thread_id


#: The cursor's values, parameters of the page statement.
_CURSOR_ID = bindparam("cursor_id", type_=Integer)


def _cursor_when(sort_column) -> BindParameter:
    return bindparam("cursor_when", type_=sort_column.type)


#: Statuses in which a thread can await an answer (every one but closed), as a list:
#: `status IN (…)` lets SQLite seek ix_threads_status_awaiting, `!= 'closed'` does not.
_ANSWERABLE = [status for status in ThreadStatus if status != ThreadStatus.CLOSED]


def _waiting(threads) -> ColumnElement[bool]:
    """Awaiting an answer: the rows the urgent sort puts first."""
    return threads.awaiting_reply_since.is_not(None) & threads.status.in_(_ANSWERABLE)


def sort_keys(threads, sort: str) -> list[ColumnElement]:
    """ORDER BY for `sort`, over Thread or over a subquery with the same column names."""
    if sort == "urgent":
        # Threads awaiting an answer first, earliest deadline first; then the rest.
        rank = case((_waiting(threads), 0), else_=1)
        return [rank, threads.awaiting_reply_since, threads.id]
    return [threads.last_message_at.desc(), threads.id.desc()]


def after_cursor(stmt: Select, cursor: str | None) -> Select:
    """The activity sort's rows after a cursor of kind `cursor` (cursor_kind)."""
    if cursor == "none":  # a cursor without a time: nothing comes after it
        return stmt.where(false())
    if cursor == "after":
        # A row-value comparison, so both databases seek the (last_message_at, id)
        # index instead of filtering every newer row.
        return stmt.where(
            tuple_(Thread.last_message_at, Thread.id)
            < tuple_(_cursor_when(Thread.last_message_at), _CURSOR_ID)
        )
    return stmt


def urgent_ids(stmt: Select, *, status: str | None, cursor: str | None, limit: int) -> Subquery:
    """The urgent sort's page of thread ids, from `stmt` (a select of Thread.id).

    `status` is the status filter's ("open", "pending", "closed" or None for all),
    `cursor` the cursor's kind (cursor_kind).
    """
    # No index orders by "waiting first, then deadline": one ORDER BY over both
    # kinds sorts every matching thread. Instead the waiting ones by deadline and
    # the rest by id, each part index-ordered and cut at `limit`; the page
    # statement orders the union and cuts it again. With a status filter the
    # conditions reduce to awaiting_reply_since alone, which
    # ix_threads_status_awaiting serves.
    rest_order = [Thread.id]
    if status == "closed":
        waiting, rest = None, true()
    elif status in ("open", "pending"):
        waiting = Thread.awaiting_reply_since.is_not(None)
        rest = Thread.awaiting_reply_since.is_(None)
        # The same order as by id (every awaiting_reply_since here is NULL), said so
        # that PostgreSQL sees the index order too: it does not treat IS NULL as
        # equality, and would otherwise walk the primary key past every thread.
        rest_order = [Thread.awaiting_reply_since, Thread.id]
    else:
        waiting = _waiting(Thread)
        rest = ~waiting
    rest_ids = stmt.where(rest).order_by(*rest_order)
    if cursor == "rest":  # already among the rest
        return rest_ids.where(Thread.id > _CURSOR_ID).limit(limit).subquery("page")
    if cursor == "waiting":
        stmt = stmt.where(
            tuple_(Thread.awaiting_reply_since, Thread.id)
            > tuple_(_cursor_when(Thread.awaiting_reply_since), _CURSOR_ID)
        )
    if waiting is None:
        return rest_ids.limit(limit).subquery("page")
    waiting_ids = stmt.where(waiting).order_by(Thread.awaiting_reply_since, Thread.id)
    parts = [part.limit(limit).subquery() for part in (waiting_ids, rest_ids)]
    return union_all(*(select(part.c.id) for part in parts)).subquery("page")
