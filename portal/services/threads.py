"""The support team's actions on threads: status, assignment, tags and internal notes.

Inbound mail is recorded by `services/inbound.py`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from ingest.mail.amazon import ASIN_RE
from portal.extensions import db
from portal.models import (
    Direction,
    Message,
    NoResponseMark,
    Role,
    Tag,
    Thread,
    ThreadStatus,
    User,
    agent_assignments,
)
from portal.services import alerts
from portal.services.audit import record_event
from portal.services.outbox import unanswered_buyer_messages
from portal.sqltypes import utcnow

#: Amazon's response-time metric: 24 hours, weekends and holidays included.
RESPONSE_WINDOW = timedelta(hours=24)


class ThreadActionError(ValueError):
    """An action on a thread that breaks a rule; the message is shown to the user."""


def response_deadline(thread: Thread) -> datetime | None:
    """When the answer is due: 24 h after the oldest unanswered buyer message."""
    if thread.awaiting_reply_since is None or thread.status == ThreadStatus.CLOSED:
        return None
    return thread.awaiting_reply_since + RESPONSE_WINDOW


def asins_in(text: str) -> list[str]:
    """ASINs named in Amazon's item lines, in order, without repeats."""
    return list(dict.fromkeys(ASIN_RE.findall(text or "")))


def set_thread_status(thread: Thread, status: ThreadStatus, *, actor: User) -> bool:
    """Open, set pending or close a thread; returns False when nothing changed."""
    if thread.status == status:
        return False
    previous = thread.status
    thread.status = status
    # The retention of a closed thread's buyer data counts from here.
    thread.closed_at = utcnow() if status == ThreadStatus.CLOSED else None
    # A status chosen by hand replaces any snooze (snooze_thread sets one again).
    thread.snoozed_until = None
    record_event(
        "thread.status_changed",
        actor=actor,
        organisation_id=thread.organisation_id,
        target=thread,
        details={"from": previous.value, "to": status.value},
    )
    db.session.flush()
    return True


def snooze_thread(
    thread: Thread, until: datetime, *, actor: User, now: datetime | None = None
) -> None:
    """Set the thread pending until `until`: wake_snoozed opens it again then, and a
    buyer message earlier (services/inbound.py)."""
    now = now or utcnow()
    if until <= now:
        raise ThreadActionError("Choose a time in the future.")
    set_thread_status(thread, ThreadStatus.PENDING, actor=actor)
    thread.snoozed_until = until
    record_event(
        "thread.snoozed",
        actor=actor,
        organisation_id=thread.organisation_id,
        target=thread,
        details={"until": until.isoformat()},
    )
    db.session.flush()


def wake_snoozed(*, now: datetime) -> int:
    """Open every pending thread whose snooze has run out; returns how many (the worker's
    job; no commit)."""
    due = db.session.scalars(
        select(Thread)
        .where(
            Thread.status == ThreadStatus.PENDING,
            Thread.snoozed_until.is_not(None),
            Thread.snoozed_until <= now,
        )
        .order_by(Thread.id)
    ).all()
    for thread in due:
        until = thread.snoozed_until
        thread.status = ThreadStatus.OPEN
        thread.snoozed_until = None
        record_event(
            "thread.snooze_ended",
            actor=None,
            organisation_id=thread.organisation_id,
            target=thread,
            details={"until": until.isoformat()},
        )
    db.session.flush()
    return len(due)


def assignable_users(thread: Thread) -> list[User]:
    """Who may be assigned: active agents of the thread's organisation, and admins."""
    return assignable_users_of([thread.organisation_id])


def assignable_users_of(organisation_ids: list[int]) -> list[User]:
    """Active admins, and the active agents of any of `organisation_ids`."""
    agents = select(agent_assignments.c.user_id).where(
        agent_assignments.c.organisation_id.in_(organisation_ids)
    )
    stmt = (
        select(User)
        .where(
            User.is_active.is_(True),
            or_(User.role == Role.ADMIN, (User.role == Role.AGENT) & User.id.in_(agents)),
        )
        .order_by(func.lower(User.name), User.email)
    )
    return list(db.session.scalars(stmt))


def assign_thread(
    thread: Thread, assignee: User | None, *, actor: User, notify: bool = True
) -> bool:
    """Give the thread to `assignee` (None: unassign); only people who may see it. The
    assignee is mailed (their alert settings permitting) unless `notify` is False (bulk
    assignment mails once for all its threads)."""
    if assignee is not None and assignee not in assignable_users(thread):
        raise ThreadActionError(f"{assignee.display_name} does not work for this seller.")
    if thread.assignee_id == (assignee.id if assignee else None):
        return False
    previous = thread.assignee_id
    thread.assignee = assignee
    thread.handed_over_at = utcnow() if assignee is not None and assignee.id != actor.id else None
    record_event(
        "thread.assigned",
        actor=actor,
        organisation_id=thread.organisation_id,
        target=thread,
        details={"from": previous, "to": assignee.id if assignee else None},
    )
    db.session.flush()
    if notify and assignee is not None:
        alerts.threads_assigned([thread], assignee, actor=actor, now=utcnow())
    return True


def clean_tag_name(raw: str) -> str:
    name = " ".join((raw or "").split()).lower()
    if not name:
        raise ThreadActionError("Enter a tag.")
    if len(name) > 40:
        raise ThreadActionError("A tag has at most 40 characters.")
    return name


def add_tag(thread: Thread, name: str, *, actor: User) -> Tag:
    """Tag the thread, creating the organisation's tag on first use."""
    name = clean_tag_name(name)
    tag = db.session.scalar(
        select(Tag).where(Tag.organisation_id == thread.organisation_id, Tag.name == name)
    )
    if tag is None:
        tag = Tag(organisation_id=thread.organisation_id, name=name)
        db.session.add(tag)
    if tag not in thread.tags:
        thread.tags.append(tag)
        # The tag row changes thread_tags only: the thread's row is what the live inbox
        # watches.
        thread.updated_at = utcnow()
        record_event(
            "thread.tagged",
            actor=actor,
            organisation_id=thread.organisation_id,
            target=thread,
            details={"tag": name},
        )
    db.session.flush()
    return tag


def remove_tag(thread: Thread, tag: Tag, *, actor: User) -> None:
    if tag in thread.tags:
        thread.tags.remove(tag)
        thread.updated_at = utcnow()  # as in add_tag
        record_event(
            "thread.untagged",
            actor=actor,
            organisation_id=thread.organisation_id,
            target=thread,
            details={"tag": tag.name},
        )
        db.session.flush()


def add_internal_note(thread: Thread, text: str, *, actor: User) -> Message:
    """A note for the team, shown in the thread and never e-mailed."""
    text = (text or "").strip()
    if not text:
        raise ThreadActionError("Write the note first.")
    digest = hashlib.sha256(f"{thread.id}:{actor.id}:{utcnow().isoformat()}:{text}".encode())
    note = Message(
        thread=thread,
        channel_id=thread.channel_id,
        direction=Direction.OUT,
        is_internal_note=True,
        message_id=f"<note-{digest.hexdigest()[:32]}@sellerdesk.invalid>",
        content_hash=digest.hexdigest(),
        subject="",
        from_name=actor.display_name[:200],
        from_address=actor.email,
        text_body=text,
        visible_text=text,
        snippet=" ".join(text.split())[:300],
        author_id=actor.id,
    )
    db.session.add(note)
    record_event(
        "thread.note_added",
        actor=actor,
        organisation_id=thread.organisation_id,
        target=thread,
        details={"length": len(text)},
    )
    db.session.flush()
    return note


def mark_no_response_needed(
    thread: Thread, *, actor: User, now: datetime | None = None
) -> list[Message]:
    """Mark every buyer message still unanswered "no response needed" and stop the
    thread's clock; returns the messages marked (none: nothing was awaiting an answer).

    A later buyer message starts the clock again (services/inbound.py), and the marks
    stay for the reports to count."""
    now = now or utcnow()
    waiting = unanswered_buyer_messages(thread)
    for message in waiting:
        db.session.add(
            NoResponseMark(
                message_id=message.id, thread_id=thread.id, marked_by_id=actor.id, marked_at=now
            )
        )
    thread.awaiting_reply_since = None
    if waiting:
        record_event(
            "thread.no_response_needed",
            actor=actor,
            organisation_id=thread.organisation_id,
            target=thread,
            details={"messages": [m.id for m in waiting]},
        )
    db.session.flush()
    return waiting


def no_response_marks(thread: Thread) -> dict[int, NoResponseMark]:
    """The thread's marks by message id, with who marked each."""
    marks = db.session.scalars(
        select(NoResponseMark)
        .where(NoResponseMark.thread_id == thread.id)
        .options(selectinload(NoResponseMark.marked_by))
    )
    return {mark.message_id: mark for mark in marks}
