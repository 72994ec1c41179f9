"""Each buyer message keeps its answer (messages.answer_id, answered_at; the triggers of
migration b7e2c4a9d1f3), which the reports read: every writer that can change it,
through the real services where there is one (queue, send, bounce, retry, ingest), and
by hand where there is none (a reply deleted, a message moved or re-dated)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import Direction, Message, Role, SendStatus, Thread
from portal.services import outbox, outbox_delivery
from portal.sqltypes import utcnow
from tests.helpers import add_sent_reply, dsn


def answer(message_or_id: Message | int) -> tuple[int | None, datetime | None]:
    """(answer_id, answered_at) as stored now."""
    pk = message_or_id if isinstance(message_or_id, int) else message_or_id.id
    db.session.expire_all()
    row = db.session.execute(
        select(Message.answer_id, Message.answered_at).where(Message.id == pk)
    ).one()
    return row.answer_id, row.answered_at


def sent(message: Message) -> tuple[int, datetime]:
    db.session.expire_all()
    reply = db.session.get(Message, message.id)
    assert reply.send_status == SendStatus.SENT and reply.sent_at is not None
    return reply.id, reply.sent_at


def buyer_messages(thread: Thread) -> list[Message]:
    return list(
        db.session.scalars(
            select(Message)
            .where(Message.thread_id == thread.id, Message.direction == Direction.IN)
            .order_by(Message.created_at, Message.id)
        )
    )


@pytest.fixture
def agent(make_user):
    return make_user(Role.ADMIN, email="agent@example.com")


@pytest.fixture
def waiting(make_channel, make_thread):
    """A UK thread whose one buyer message came in two hours ago."""
    channel = make_channel("UK", address="uk-shop@helpdesk.test")
    thread = make_thread(channel, received_at=utcnow() - timedelta(hours=2))
    return thread, buyer_messages(thread)[0]


def queue(thread: Thread, agent) -> Message:
    reply = outbox.queue_reply(thread, body="It left our warehouse today.", author=agent)
    db.session.commit()
    return reply


def _sent(thread: Thread, at: datetime, n: int) -> Message:
    reply = add_sent_reply(thread, at=at, number=n)
    db.session.commit()
    return reply


def buyer_reply_to(reply: Message, n: int) -> bytes:
    """The buyer writes again, in reply to ours."""
    return f"""\
From: Jane <jane123@marketplace.amazon.co.uk>
To: uk-shop@helpdesk.test
Subject: Re: Where is my parcel?
Message-ID: <again-{n}@marketplace.amazon.co.uk>
In-Reply-To: {reply.message_id}
References: {reply.message_id}
Date: Sat, 05 Dec 2026 11:00:00 +0000
Content-Type: text/plain; charset=utf-8

Still nothing here.
""".encode()


def test_queued_is_not_an_answer_sent_is_and_bounced_is_not_again(
    app, waiting, agent, ingest, tmp_path
):
    thread, message = waiting
    assert answer(message) == (None, None)
    reply = queue(thread, agent)
    assert answer(message) == (None, None)  # queued: not yet

    assert outbox_delivery.deliver_one(reply.id) is True
    assert answer(message) == sent(reply)

    assert ingest(dsn(reply.message_id)) == "stored"
    db.session.expire_all()
    assert db.session.get(Message, reply.id).send_status == SendStatus.FAILED
    assert answer(message) == (None, None)  # the buyer's clock runs again

    # Retried: pending is still no answer; sent again, it is, with its new time.
    reply = db.session.get(Message, reply.id)
    outbox.retry(reply, agent)
    db.session.commit()
    assert answer(message) == (None, None)
    later = utcnow() + timedelta(minutes=5)
    assert outbox_delivery.deliver_pending(now=later).sent == 1
    assert answer(message) == sent(reply)
    assert answer(message)[1] == later


def test_a_refused_reply_answers_nothing(app, waiting, agent, tmp_path):
    thread, message = waiting
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the outbox folder should be")
    app.config["SMTP_URL"] = f"outbox:{blocked}"
    reply = queue(thread, agent)
    assert outbox_delivery.deliver_one(reply.id) is False  # retrying
    assert answer(message) == (None, None)
    outbox.cancel(db.session.get(Message, reply.id), agent)
    db.session.commit()
    assert answer(message) == (None, None)


def test_a_later_buyer_message_waits_for_the_next_reply(app, waiting, agent, ingest):
    thread, first = waiting
    reply = queue(thread, agent)
    assert outbox_delivery.deliver_one(reply.id) is True
    answered = sent(reply)

    assert ingest(buyer_reply_to(reply, 1)) == "stored"
    first, again = buyer_messages(thread)
    assert answer(first) == answered
    assert answer(again) == (None, None)

    second = queue(thread, agent)
    assert outbox_delivery.deliver_one(second.id, now=utcnow() + timedelta(minutes=1)) is True
    # The first keeps its own answer (the first reply at or after it), the second gets
    # the new one.
    assert answer(first) == answered
    assert answer(again) == sent(second)


def test_a_message_stored_before_a_reply_already_sent_gets_it(app, make_channel, make_thread):
    """A row inserted with an earlier arrival time (an admin's retry keeps the waiting
    row's time) finds the reply sent after that time."""
    thread = make_thread(make_channel(), received_at=utcnow() - timedelta(hours=5))
    reply = Message(
        thread=thread,
        channel=thread.channel,
        direction=Direction.OUT,
        message_id="<out@sellerdesk.test>",
        content_hash="out",
        send_status=SendStatus.SENT,
        sent_at=utcnow() - timedelta(hours=1),
        created_at=utcnow() - timedelta(hours=1),
    )
    db.session.add(reply)
    db.session.commit()
    late = Message(
        thread=thread,
        channel=thread.channel,
        direction=Direction.IN,
        message_id="<late@example.com>",
        content_hash="late",
        created_at=utcnow() - timedelta(hours=3),
    )
    after = Message(
        thread=thread,
        channel=thread.channel,
        direction=Direction.IN,
        message_id="<after@example.com>",
        content_hash="after",
        created_at=utcnow(),
    )
    db.session.add_all([late, after])
    db.session.commit()
    assert answer(late) == sent(reply)
    assert answer(buyer_messages(thread)[0]) == sent(reply)
    assert answer(after) == (None, None)


def test_deleting_moving_and_redating(app, make_channel, make_thread):
    start = utcnow() - timedelta(hours=10)
    thread = make_thread(make_channel(), received_at=start)
    other = make_thread(thread.channel, received_at=start)
    message = buyer_messages(thread)[0]
    first = _sent(thread, start + timedelta(hours=1), 1)
    second = _sent(thread, start + timedelta(hours=2), 2)
    elsewhere = _sent(other, start + timedelta(hours=3), 3)
    assert answer(message) == sent(first)

    # Its answer deleted: the next sent reply answers.
    db.session.delete(db.session.get(Message, first.id))
    db.session.commit()
    assert answer(message) == sent(second)

    # The message re-dated after that reply: unanswered.
    db.session.execute(
        update(Message)
        .where(Message.id == message.id)
        .values(created_at=start + timedelta(hours=2, minutes=30))
    )
    db.session.commit()
    assert answer(message) == (None, None)

    # Moved to the other thread: that thread's reply answers it.
    db.session.execute(update(Message).where(Message.id == message.id).values(thread_id=other.id))
    db.session.commit()
    assert answer(message) == sent(elsewhere)

    # The reply moved away from it: nothing answers it any more.
    db.session.execute(
        update(Message).where(Message.id == elsewhere.id).values(thread_id=thread.id)
    )
    db.session.commit()
    assert answer(message) == (None, None)


def test_an_internal_note_answers_nothing(app, make_channel, make_thread):
    start = utcnow() - timedelta(hours=3)
    thread = make_thread(make_channel(), received_at=start)
    message = buyer_messages(thread)[0]
    note = _sent(thread, start + timedelta(hours=1), 1)
    db.session.execute(update(Message).where(Message.id == note.id).values(is_internal_note=True))
    db.session.commit()
    assert answer(message) == (None, None)
