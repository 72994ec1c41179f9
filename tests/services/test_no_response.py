""" "No response needed" (services/threads.py `mark_no_response_needed`): per-message
marks that stop Sellerdesk's clock until the buyer writes again."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import (
    AuditEvent,
    Direction,
    Message,
    NoResponseMark,
    Role,
    SendStatus,
    Thread,
    ThreadStatus,
)
from portal.services import outbox as outbox_service
from portal.services import threads as thread_service
from portal.services.inbox import InboxQuery, list_inbox

MARKED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def the_thread() -> Thread:
    return db.session.scalar(select(Thread))


def marks() -> list[NoResponseMark]:
    return list(db.session.scalars(select(NoResponseMark).order_by(NoResponseMark.message_id)))


def test_marks_each_unanswered_buyer_message_and_stops_the_clock(uk, ingest, make_user):
    ingest("amazon_uk_inquiry.eml")
    ingest("amazon_uk_followup.eml")
    ingest("autoreply.eml", replace={"To: ": "Delivered-To: uk-chan01@helpdesk.test\nTo: "})
    thread = the_thread()
    assert thread.awaiting_reply_since is not None
    agent = make_user(Role.AGENT, name="Ana", assigned=[uk.organisation])

    marked = thread_service.mark_no_response_needed(thread, actor=agent, now=MARKED_AT)
    db.session.commit()

    buyer = [m for m in thread.messages if not m.is_autoreply]
    assert len(buyer) == 2 and sorted(m.id for m in marked) == sorted(m.id for m in buyer)
    assert [(m.message_id, m.thread_id, m.marked_by_id, m.marked_at) for m in marks()] == [
        (m.id, thread.id, agent.id, MARKED_AT) for m in sorted(buyer, key=lambda m: m.id)
    ]
    assert thread.awaiting_reply_since is None
    assert thread_service.response_deadline(thread) is None
    # The status is the agent's to change; only the clock stops.
    assert thread.status == ThreadStatus.OPEN
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind.like("thread.no_resp%")))
    assert event.kind == "thread.no_response_needed" and event.actor_id == agent.id
    assert sorted(event.details["messages"]) == sorted(m.id for m in buyer)

    # Nothing left to mark: no second mark, no second audit entry.
    assert thread_service.mark_no_response_needed(thread, actor=agent) == []
    db.session.commit()
    assert len(marks()) == 2
    kinds = db.session.scalars(select(AuditEvent.kind)).all()
    assert kinds.count("thread.no_response_needed") == 1


def test_a_later_buyer_message_opens_the_thread_as_usual(uk, ingest, make_user):
    ingest("amazon_uk_inquiry.eml")
    thread = the_thread()
    agent = make_user(Role.AGENT, assigned=[uk.organisation])
    thread_service.mark_no_response_needed(thread, actor=agent)
    thread_service.set_thread_status(thread, ThreadStatus.CLOSED, actor=agent)
    db.session.commit()

    ingest("amazon_uk_followup.eml")
    db.session.refresh(thread)
    followup = thread.messages[-1]
    assert thread.status == ThreadStatus.OPEN
    assert thread.awaiting_reply_since == followup.sent_at
    assert thread_service.response_deadline(thread) == followup.sent_at + timedelta(hours=24)
    # The first message keeps its mark; the new one has none until someone marks it.
    assert [m.message_id for m in marks()] == [thread.messages[0].id]
    # A cancelled reply puts the clock back on what is unanswered and unmarked only.
    outbox_service.restore_awaiting_reply(thread)
    assert thread.awaiting_reply_since == followup.sent_at


def test_only_messages_after_the_last_reply_are_marked(uk, ingest, make_user):
    ingest("amazon_uk_inquiry.eml")
    thread = the_thread()
    # The row the outbox leaves once a reply is sent.
    db.session.add(
        Message(
            thread=thread,
            channel_id=thread.channel_id,
            direction=Direction.OUT,
            message_id="<reply-1@helpdesk.test>",
            content_hash=hashlib.sha256(b"reply").hexdigest(),
            text_body="On its way.",
            send_status=SendStatus.SENT,
            created_at=thread.messages[0].created_at + timedelta(microseconds=1),
        )
    )
    thread.awaiting_reply_since = None
    db.session.commit()
    ingest("amazon_uk_followup.eml")  # stored after the reply
    db.session.refresh(thread)
    later = thread.messages[-1]
    agent = make_user(Role.AGENT, assigned=[uk.organisation])

    marked = thread_service.mark_no_response_needed(thread, actor=agent)

    assert [m.id for m in marked] == [later.id]
    assert [m.message_id for m in marks()] == [later.id]


def test_a_marked_thread_leaves_the_urgent_order(make_user, two_channels, make_thread):
    uk, _ = two_channels
    base = datetime(2026, 11, 1, tzinfo=UTC)
    oldest = make_thread(uk, subject="Thanks!", received_at=base)
    newer = make_thread(uk, subject="Where is it?", received_at=base + timedelta(hours=1))
    db.session.commit()
    admin = make_user(Role.ADMIN)
    urgent = InboxQuery(status="open", sort="urgent")
    assert [r.id for r in list_inbox(admin, urgent).rows] == [oldest.id, newer.id]

    thread_service.mark_no_response_needed(oldest, actor=admin)
    db.session.commit()

    rows = list_inbox(admin, urgent).rows
    assert [r.id for r in rows] == [newer.id, oldest.id]
    assert rows[1].deadline is None and rows[0].deadline is not None
