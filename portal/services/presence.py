"""Collision detection: who else has a thread open or is writing a reply (the page's
heartbeat), and which reply or note came after a composer was opened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from portal.extensions import db
from portal.models import Direction, Message, Thread, ThreadPresence, User
from portal.sqltypes import upsert_insert

#: A heartbeat older than this means the person left (the page beats every few seconds).
PRESENCE_WINDOW = timedelta(seconds=30)


@dataclass(frozen=True)
class Present:
    name: str
    is_writing: bool


def beat(user: User, thread: Thread, *, writing: bool, now: datetime) -> None:
    """`user` has the thread open now (and is writing, or not)."""
    table = ThreadPresence.__table__
    values = {"thread_id": thread.id, "user_id": user.id, "seen_at": now, "is_writing": writing}
    # One statement: two tabs of the same user beating at once must not collide.
    insert = upsert_insert(db.session.get_bind().dialect.name, table).values(**values)
    db.session.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.thread_id, table.c.user_id],
            set_={"seen_at": now, "is_writing": writing},
        )
    )


def leave(user: User, thread: Thread) -> None:
    """`user` closed the thread's page."""
    db.session.execute(
        delete(ThreadPresence).where(
            ThreadPresence.thread_id == thread.id, ThreadPresence.user_id == user.id
        )
    )


def others_present(user: User, thread: Thread, *, now: datetime) -> list[Present]:
    """Everyone but `user` whose page beat within the window, by name."""
    rows = db.session.execute(
        select(User, ThreadPresence.is_writing)
        .join(ThreadPresence, ThreadPresence.user_id == User.id)
        .where(
            ThreadPresence.thread_id == thread.id,
            ThreadPresence.user_id != user.id,
            ThreadPresence.seen_at >= now - PRESENCE_WINDOW,
        )
    ).all()
    people = [Present(u.display_name, writing) for u, writing in rows]
    return sorted(people, key=lambda p: p.name.lower())


def newest_message_id(thread: Thread) -> int:
    """What a composer opened now has seen: the thread's newest message id (0: none)."""
    newest = db.session.scalar(
        select(Message.id).where(Message.thread_id == thread.id).order_by(Message.id.desc())
    )
    return newest or 0


def added_since(thread: Thread, seen_id: int, *, reader: User) -> Message | None:
    """The newest reply or note someone other than `reader` added after message
    `seen_id`: a reason to read the thread again before sending."""
    return db.session.scalar(
        select(Message)
        .where(
            Message.thread_id == thread.id,
            Message.id > seen_id,
            Message.direction == Direction.OUT,
            Message.author_id.is_not(None),
            Message.author_id != reader.id,
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
