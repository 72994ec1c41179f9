"""Each message keeps whether it needs an answer and whether it is its thread's first
that does (messages.needs_answer, first_need; the triggers of migration e9c4a2f7b1d5),
which the reports read: every writer that can change them, through the real services
where there is one (ingest, an internal note, "no response needed" one by one and in
bulk), and by hand where there is none (a mark removed, a message flagged, quarantined,
moved, re-dated or deleted). After each step the stored flags are compared with the
definition computed from scratch, as reports.py computed it before they were stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import and_, delete, insert, or_, select, text, update
from sqlalchemy.orm import aliased

from ingest.pipeline import ingest_batch
from portal.extensions import db
from portal.models import Direction, Message, NoResponseMark, Role, Thread
from portal.services import bulk as bulk_service
from portal.services import threads as thread_service
from portal.sqltypes import utcnow
from tests.helpers import mail_bytes


def _needs(message) -> list:
    """reports.py's definition, from the message's columns and the marks."""
    marked = select(NoResponseMark.message_id).where(NoResponseMark.message_id == message.id)
    return [
        message.direction == Direction.IN,
        message.is_internal_note.is_(False),
        message.is_autoreply.is_(False),
        message.is_bounce.is_(False),
        message.is_amazon_notification.is_(False),
        message.is_seller_central_copy.is_(False),
        message.quarantine_reason.is_(None),
        ~marked.exists(),
    ]


def expected() -> dict[int, tuple[bool, bool]]:
    """(needs_answer, first_need) of every message, computed from scratch."""
    earlier = aliased(Message)
    before = select(earlier.id).where(
        earlier.thread_id == Message.thread_id,
        or_(
            earlier.created_at < Message.created_at,
            and_(earlier.created_at == Message.created_at, earlier.id < Message.id),
        ),
        *_needs(earlier),
    )
    needs = and_(*_needs(Message))
    first = and_(needs, Message.thread_id.is_not(None), ~before.exists())
    rows = db.session.execute(select(Message.id, needs, first))
    return {pk: (bool(n), bool(f)) for pk, n, f in rows}


def stored() -> dict[int, tuple[bool, bool]]:
    db.session.expire_all()
    rows = db.session.execute(select(Message.id, Message.needs_answer, Message.first_need))
    return {pk: (n, f) for pk, n, f in rows}


def check() -> dict[int, tuple[bool, bool]]:
    """The stored flags, after asserting they are the definition's."""
    flags = stored()
    assert flags == expected()
    return flags


def firsts(thread: Thread) -> list[int]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Message.id).where(Message.thread_id == thread.id, Message.first_need)
        )
    )


def buyer_messages(thread: Thread) -> list[Message]:
    return list(
        db.session.scalars(
            select(Message).where(Message.thread_id == thread.id).order_by(Message.id)
        )
    )


def add_message(thread: Thread, n: int, at, **values) -> Message:
    message = Message(
        thread=thread,
        channel=thread.channel,
        message_id=f"<n{n}@example.com>",
        content_hash=f"n{n}",
        created_at=at,
        **{"direction": Direction.IN, **values},
    )
    db.session.add(message)
    db.session.commit()
    return message


def set_values(message: Message, **values) -> None:
    db.session.execute(update(Message).where(Message.id == message.id).values(**values))
    db.session.commit()


@pytest.fixture
def agent(make_user):
    return make_user(Role.ADMIN, email="agent@example.com")


def test_marked_then_unmarked(make_channel, make_thread, agent):
    start = utcnow() - timedelta(hours=5)
    thread = make_thread(make_channel(), received_at=start, texts=("one", "two"))
    one, two = buyer_messages(thread)
    other = make_thread(thread.channel, received_at=start)
    assert check()[one.id] == (True, True) and check()[two.id] == (True, False)

    thread_service.mark_no_response_needed(thread, actor=agent)
    db.session.commit()
    flags = check()
    assert flags[one.id] == flags[two.id] == (False, False)
    assert firsts(thread) == [] and len(firsts(other)) == 1

    # A mark removed (by hand: there is no service for it): needed again, first again.
    db.session.execute(delete(NoResponseMark).where(NoResponseMark.message_id == two.id))
    db.session.commit()
    assert check()[two.id] == (True, True)
    db.session.execute(delete(NoResponseMark).where(NoResponseMark.message_id == one.id))
    db.session.commit()
    assert check()[one.id] == (True, True) and check()[two.id] == (True, False)

    # One message marked by hand: the other becomes the first.
    db.session.add(NoResponseMark(message_id=one.id, thread_id=thread.id, marked_by_id=agent.id))
    db.session.commit()
    assert check()[one.id] == (False, False) and firsts(thread) == [two.id]

    # A mark moved to the other message.
    db.session.execute(
        update(NoResponseMark).where(NoResponseMark.message_id == one.id).values(message_id=two.id)
    )
    db.session.commit()
    assert firsts(thread) == [one.id] and check()[two.id] == (False, False)


def test_marked_in_bulk(make_channel, make_thread, agent):
    channel = make_channel()
    threads = [make_thread(channel, received_at=utcnow() - timedelta(hours=3)) for _ in range(3)]
    assert bulk_service.apply_bulk(threads[:2], "no_response", actor=agent) == 2
    db.session.commit()
    check()
    assert firsts(threads[0]) == firsts(threads[1]) == [] and len(firsts(threads[2])) == 1


def test_an_earlier_message_becomes_the_first(make_channel, make_thread):
    start = utcnow() - timedelta(hours=5)
    thread = make_thread(make_channel(), received_at=start)
    (first,) = buyer_messages(thread)
    assert firsts(thread) == [first.id]
    later = add_message(thread, 1, start + timedelta(hours=1))
    assert firsts(thread) == [first.id]
    earlier = add_message(thread, 2, start - timedelta(hours=1))
    assert firsts(thread) == [earlier.id]
    # Same time as the first: the lower id stays first.
    add_message(thread, 3, start - timedelta(hours=1))
    assert firsts(thread) == [earlier.id]
    # A message that needs no answer does not become the first.
    add_message(thread, 4, start - timedelta(hours=2), is_autoreply=True)
    add_message(thread, 5, start - timedelta(hours=2), direction=Direction.OUT)
    assert firsts(thread) == [earlier.id]
    check()
    assert later.id in stored()


def test_several_in_one_statement_in_any_order(make_channel, make_thread):
    """One INSERT of several messages of a thread, the latest first."""
    start = utcnow() - timedelta(hours=5)
    thread = make_thread(make_channel(), received_at=start)
    rows = [
        {
            "thread_id": thread.id,
            "channel_id": thread.channel_id,
            "direction": Direction.IN,
            "message_id": f"<many{i}@example.com>",
            "content_hash": f"many{i}",
            "created_at": start - timedelta(hours=i),
        }
        for i in (1, 3, 2)
    ]
    db.session.execute(insert(Message).values(rows))
    db.session.commit()
    (first,) = firsts(thread)
    assert db.session.get(Message, first).message_id == "<many3@example.com>"
    check()


def test_flags_quarantine_and_notes(make_channel, make_thread, agent):
    start = utcnow() - timedelta(hours=5)
    thread = make_thread(make_channel(), received_at=start, texts=("one", "two"))
    one, two = buyer_messages(thread)
    for column in (
        "is_autoreply",
        "is_bounce",
        "is_amazon_notification",
        "is_seller_central_copy",
        "is_internal_note",
    ):
        set_values(one, **{column: True})
        assert check()[one.id] == (False, False) and firsts(thread) == [two.id], column
        set_values(one, **{column: False})
        assert firsts(thread) == [one.id], column
    set_values(one, quarantine_reason="could not parse")
    assert firsts(thread) == [two.id]
    set_values(one, quarantine_reason=None)
    set_values(one, direction=Direction.OUT)
    assert firsts(thread) == [two.id]
    set_values(one, direction=Direction.IN)
    assert firsts(thread) == [one.id]
    note = thread_service.add_internal_note(thread, "Called the buyer.", actor=agent)
    db.session.commit()
    assert check()[note.id] == (False, False)


def test_moving_redating_and_deleting(make_channel, make_thread):
    start = utcnow() - timedelta(hours=10)
    thread = make_thread(make_channel(), received_at=start, texts=("one", "two", "three"))
    other = make_thread(thread.channel, received_at=start + timedelta(hours=1))
    one, two, three = buyer_messages(thread)
    (theirs,) = buyer_messages(other)

    # Moving the first away: the next is first here, and it is first there (earlier).
    set_values(one, thread_id=other.id)
    assert firsts(thread) == [two.id] and firsts(other) == [one.id]
    check()
    # Moving it back, re-dated after the other thread's message.
    set_values(one, thread_id=thread.id, created_at=start + timedelta(hours=2))
    assert firsts(thread) == [two.id] and firsts(other) == [theirs.id]
    # Re-dating the last before all.
    set_values(three, created_at=start - timedelta(minutes=1))
    assert firsts(thread) == [three.id]
    check()

    # Deleting the first: the next is first; deleting another changes nothing.
    db.session.delete(db.session.get(Message, three.id))
    db.session.commit()
    assert firsts(thread) == [two.id]
    db.session.delete(db.session.get(Message, one.id))
    db.session.commit()
    assert firsts(thread) == [two.id]
    check()

    # Deleting the thread takes its messages; the other thread keeps its first.
    db.session.delete(db.session.get(Thread, thread.id))
    db.session.commit()
    assert firsts(other) == [theirs.id]
    check()


def test_ingest(uk, ingest):
    ingest("amazon_uk_inquiry.eml")
    ingest("amazon_uk_followup.eml")
    ingest("autoreply.eml", replace={"To: ": "Delivered-To: uk-chan01@helpdesk.test\nTo: "})
    flags = check()
    assert sorted(flags.values()) == [(False, False), (True, False), (True, True)]


@pytest.fixture
def rewrites(app):
    """The ids of messages whose needs_answer or first_need an UPDATE wrote (SQLite): a
    trigger of this test's own, dropped after it."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL sets both before the row is written (a BEFORE INSERT trigger)")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE test_rewrites (message_id INTEGER)")
        conn.exec_driver_sql(
            "CREATE TRIGGER test_rewrites_au AFTER UPDATE OF needs_answer, first_need"
            " ON messages BEGIN INSERT INTO test_rewrites VALUES (new.id); END"
        )

    def written() -> list[int]:
        db.session.commit()
        ids = db.session.scalars(text("SELECT message_id FROM test_rewrites")).all()
        db.session.execute(text("DELETE FROM test_rewrites"))
        db.session.commit()
        return list(ids)

    yield written
    db.session.rollback()
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER test_rewrites_au")
        conn.exec_driver_sql("DROP TABLE test_rewrites")


def test_ingest_inserts_both_flags_right_so_sqlite_rewrites_no_row(uk, ingest, rewrites):
    # Without the reckoning at INSERT, SQLite's trigger updated each new message that
    # needs an answer, rewriting the whole row with its raw mail (migration b8d4f6a2c1e7).
    ingest("amazon_uk_inquiry.eml")  # a new thread: needs an answer, its first
    ingest("amazon_uk_followup.eml")  # the same thread: needs one, not the first
    ingest("autoreply.eml", replace={"To: ": "Delivered-To: uk-chan01@helpdesk.test\nTo: "})
    assert rewrites() == []
    assert sorted(check().values()) == [(False, False), (True, False), (True, True)]


def test_a_batch_with_two_messages_of_a_new_thread(uk, rewrites, app):
    inquiry = mail_bytes("amazon_uk_inquiry.eml")
    followup = mail_bytes("amazon_uk_followup.eml")
    ingest_batch(
        [(None, inquiry), (None, followup)],
        mailbox=None,
        uidvalidity=None,
        inbound_domain=app.config["INBOUND_DOMAIN"],
        max_attachment_bytes=app.config["MAX_ATTACHMENT_BYTES"],
        now=utcnow(),
    )
    db.session.commit()
    assert rewrites() == []
    assert sorted(check().values()) == [(True, False), (True, True)]


def test_rows_inserted_without_the_flags_still_get_them(make_channel, make_thread, rewrites):
    # The trigger still sets them for any other writer (the ORM here), and the check
    # above would see those writes: it is not blind.
    thread = make_thread(make_channel(), texts=())
    message = add_message(thread, 1, utcnow())
    assert rewrites() == [message.id, message.id]
    assert check()[message.id] == (True, True)


def test_a_wrong_reckoning_is_corrected(make_channel, make_thread, rewrites):
    thread = make_thread(make_channel(), texts=())
    note = add_message(
        thread, 1, utcnow(), is_internal_note=True, needs_answer=True, first_need=True
    )
    assert check()[note.id] == (False, False)
