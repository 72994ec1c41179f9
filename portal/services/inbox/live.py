"""The live inbox: whether anything a user may see has changed, and the navigation's counts.

An open inbox asks again and again (static/js/live.js, a long poll held by watch.py
while this token stays the same). change_token answers from
two index lookups on threads.updated_at, scoped exactly as list_inbox is; only when
it differs from the one the page holds does the view list and render the rows again.

The token is the newest updated_at in the user's scope and how many threads changed
within WINDOW before it. The count catches a transaction that stamped its threads
before another's and committed after it: its rows raise no maximum, but enter the
window. One that takes longer than WINDOW to commit shows with the next change.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, case, func, select
from sqlalchemy.orm import selectinload, undefer

from portal.extensions import db
from portal.models import Message, Thread, ThreadStatus, User
from portal.services.scoping import scope_by_kind, scope_kind, scope_parameters
from portal.services.threads import RESPONSE_WINDOW
from portal.sqltypes import UTCDateTime, utcnow

WINDOW = timedelta(seconds=60)
#: "Due soon" in the navigation: answers due within this time, or overdue.
DUE_SOON = timedelta(hours=4)


@dataclass(frozen=True, slots=True)
class NavCounts:
    """The navigation's counts of open work."""

    mine_open: int  # open threads assigned to the user
    unassigned: int  # open threads assigned to no one
    due_soon: int  # threads not closed whose answer is due within DUE_SOON, or overdue


def change_token(user: User) -> str:
    """A value that changes whenever a thread `user` may see is stored or changed."""
    kind = scope_kind(user)
    params = scope_parameters(user)
    conn = db.session.connection()
    newest = conn.execute(_newest_statement(kind), params).scalar()
    if newest is None:
        return "none"
    recent = conn.execute(_recent_statement(kind), {**params, "since": newest - WINDOW}).scalar()
    return f"{newest.isoformat()}/{recent}"


def global_signal() -> tuple[object, ...]:
    """A value that changes whenever any thread or message is stored or changed, in any
    scope: the lookups of change_token unscoped, plus the newest message's id. For the
    long poll's watcher (watch.py) only; never shown to a user."""
    conn = db.session.connection()
    newest = conn.execute(_newest_statement("all")).scalar()
    recent = (
        conn.execute(_recent_statement("all"), {"since": newest - WINDOW}).scalar()
        if newest is not None
        else 0
    )
    return (newest, recent, conn.execute(select(func.max(Message.id))).scalar())


def newest_message_id(thread: Thread) -> int:
    """The id of the thread's newest message (0 for none): the live thread page's change
    check, one lookup on the messages' thread index. The caller has checked that the
    user may open the thread."""
    newest = db.session.scalar(select(func.max(Message.id)).where(Message.thread_id == thread.id))
    return newest or 0


def messages_after(thread: Thread, after: int) -> list[Message]:
    """The thread's messages newer than id `after`, oldest first, loaded as the thread
    page loads them."""
    return list(
        db.session.scalars(
            select(Message)
            .where(Message.thread_id == thread.id, Message.id > after)
            .order_by(Message.created_at, Message.id)
            .options(
                undefer(Message.text_body),
                undefer(Message.visible_text),
                undefer(Message.html_body),
                selectinload(Message.attachments),
                selectinload(Message.author),
            )
        )
    )


def nav_counts(user: User, *, now: datetime | None = None) -> NavCounts:
    """How many open threads are the user's, no one's, and due soon, in one query."""
    now = now or utcnow()
    params = {
        **scope_parameters(user),
        "me": user.id,
        "due_from": now + DUE_SOON - RESPONSE_WINDOW,
    }
    mine, unassigned, due = (
        db.session.connection().execute(_counts_statement(scope_kind(user)), params).one()
    )
    return NavCounts(mine_open=mine or 0, unassigned=unassigned or 0, due_soon=due or 0)


@functools.cache
def _newest_statement(kind: str) -> Select:
    return scope_by_kind(select(func.max(Thread.updated_at)), Thread.organisation_id, kind)


@functools.cache
def _recent_statement(kind: str) -> Select:
    since = bindparam("since", type_=UTCDateTime)
    return scope_by_kind(
        select(func.count()).select_from(Thread).where(Thread.updated_at >= since),
        Thread.organisation_id,
        kind,
    )


def _total(*conditions: ColumnElement[bool]) -> ColumnElement[int]:
    # SUM(CASE …) rather than COUNT(*) FILTER: one spelling for both databases.
    return func.sum(case((and_(*conditions), 1), else_=0))


@functools.cache
def _counts_statement(kind: str) -> Select:
    is_open = Thread.status == ThreadStatus.OPEN
    due_from = bindparam("due_from", type_=UTCDateTime)

    stmt = select(
        _total(is_open, Thread.assignee_id == bindparam("me", type_=Integer)),
        _total(is_open, Thread.assignee_id.is_(None)),
        _total(Thread.awaiting_reply_since <= due_from),
    ).where(Thread.status.in_([ThreadStatus.OPEN, ThreadStatus.PENDING]))
    return scope_by_kind(stmt, Thread.organisation_id, kind)
