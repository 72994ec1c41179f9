"""Inbox search: words and prefixes, IDs and aliases, AND, hostile input, freshness.

SQLite searches FTS5 tables, PostgreSQL a tsvector document per thread; both are
kept by triggers (migrations 5e4a1c7d9b20, 4f7b2c9e8d15), so these tests run on both
databases.
"""

from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import event, func, select, text

from ingest.mail.parse_result import parse_inbound
from ingest.pipeline import poll_all
from portal import create_app
from portal.extensions import db
from portal.models import Direction, Message, Role, Thread
from portal.services import threads as thread_service
from portal.services.inbound import InboundMail, store_inbound
from portal.services.inbox import InboxQuery, list_inbox, search
from portal.services.outbox import queue_reply
from portal.sqltypes import utcnow
from tests.helpers import app_config_for


@pytest.fixture
def threads(channel, make_thread):
    make_thread(
        channel,
        subject="Wrong size",
        buyer_name="Max Mustermann",
        buyer_address="q7xk2mfv9d3lp0b@marketplace.amazon.co.uk",
        order_id="111-2222222-3333333",
        texts=("The dehumidifier is too small", "Can I get a refund?"),
    )
    make_thread(
        channel,
        subject="Parcel late",
        buyer_name="Jane Müller",
        order_id="204-7654321-7654321",
        texts=("It never came", "Still waiting for the parcel"),
    )
    make_thread(channel, subject="Kaputt", order_id=None, texts=("Defekt angekommen",))


def subjects(user, q: str) -> set[str]:
    return {row.subject for row in list_inbox(user, InboxQuery(status="all", q=q)).rows}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("dehumidifier", {"Wrong size"}),
        ("DEHUMID", {"Wrong size"}),  # a word prefix, any case
        ("refunds", set()),  # prefixes only: a longer word is not found
        ("parcel", {"Parcel late"}),  # in the subject and a message
        ("never came", {"Parcel late"}),
        ("mustermann", {"Wrong size"}),
        ("müller", {"Parcel late"}),
        ("kaputt", {"Kaputt"}),
        ("angekommen", {"Kaputt"}),
    ],
)
def test_words_and_prefixes(admin, threads, q, expected):
    assert subjects(admin, q) == expected


@pytest.mark.parametrize(
    "q",
    [
        "111-2222222-3333333",  # the full order ID
        "111-2222222",  # its start
        "111-22",
        "3333333",  # a later group of digits
        "q7xk2mfv9d3lp0b@marketplace.amazon.co.uk",  # the buyer's relay alias
        "q7xk2mfv9d3lp0b",
        "q7xk2mf",  # the start of the alias
    ],
)
def test_order_ids_and_aliases_full_or_partial(admin, threads, q):
    assert subjects(admin, q) == {"Wrong size"}


def test_terms_are_anded_across_fields_and_messages(admin, threads):
    assert subjects(admin, "mustermann refund") == {"Wrong size"}  # buyer name + message
    assert subjects(admin, "111-2222222 dehumidifier") == {"Wrong size"}
    assert subjects(admin, "mustermann parcel") == set()
    assert subjects(admin, "waiting parcel 204") == {"Parcel late"}


@pytest.mark.parametrize(
    "q",
    [
        '"',
        '"dehumidifier',
        "*",
        "dehumid*",
        "OR",
        "dehumidifier OR parcel",
        "NEAR(",
        "NEAR(dehumidifier parcel)",
        "-",
        "-parcel",
        ":",
        "text_body:parcel",
        "subject:kaputt",
        "^parcel",
        "(",
        ")",
        "AND NOT",
        "'",
        "\\",
        "%_",
        "100%_",
        "{subject}: x",
        "a & b | !c",
        "<->",
        "x:*",
        "'a':* & b",
    ],
)
def test_query_syntax_in_user_input_is_plain_text(admin, threads, q):
    found = subjects(admin, q)
    # Nothing errors; words still match as words, operators match nothing of their own.
    assert found <= {"Wrong size", "Parcel late", "Kaputt"}
    assert subjects(admin, "dehumidifier OR parcel") == set()  # OR is a word here, ANDed
    assert subjects(admin, "100%_") == set()


def test_punctuation_only_query_does_not_filter(admin, threads):
    assert subjects(admin, '" * - :') == {"Wrong size", "Parcel late", "Kaputt"}


def test_internal_notes_are_not_searched(admin, channel, make_thread):
    thread = make_thread(channel, subject="Question", texts=("Hello",))
    thread_service.add_internal_note(thread, "secretword in a note", actor=admin)
    db.session.commit()
    assert subjects(admin, "secretword") == set()
    note = db.session.scalar(select(Message).where(Message.is_internal_note.is_(True)))
    note.is_internal_note = False  # a message that stops being a note becomes searchable
    db.session.commit()
    assert subjects(admin, "secretword") == {"Question"}
    db.session.delete(note)
    db.session.commit()
    assert subjects(admin, "secretword") == set()


def test_replies_edits_and_ingested_mail_are_searchable_at_once(admin, channel, make_thread):
    thread = make_thread(channel, subject="Question", texts=("Hello",))
    queue_reply(thread, body="Your kettle ships tomorrow.", author=admin)
    db.session.commit()
    assert subjects(admin, "kettle") == {"Question"}

    thread.subject = "Renamed conversation"
    thread.order_id = "305-1111111-2222222"
    db.session.commit()
    assert subjects(admin, "renamed 305-1111111") == {"Renamed conversation"}
    assert subjects(admin, "question") == set()

    message = db.session.scalar(select(Message).where(Message.thread_id == thread.id).limit(1))
    message.text_body = "Goodbye teapot"
    db.session.commit()
    assert subjects(admin, "teapot") == {"Renamed conversation"}


def test_a_message_moved_or_deleted_is_found_where_it_is(admin, channel, make_thread):
    first = make_thread(channel, subject="First", texts=("About the zebra lamp",))
    second = make_thread(channel, subject="Second", texts=("Hello",))
    assert subjects(admin, "zebra") == {"First"}
    message = db.session.scalar(select(Message).where(Message.thread_id == first.id))
    message.thread_id = second.id
    db.session.commit()
    assert subjects(admin, "zebra") == {"Second"}
    message.thread_id = None  # back among the unrouted: in no thread, found in none
    db.session.commit()
    assert subjects(admin, "zebra") == set()
    message.thread_id = first.id
    db.session.commit()
    assert subjects(admin, "zebra lamp") == {"First"}
    db.session.delete(first)
    db.session.commit()
    assert subjects(admin, "zebra") == set()
    if db.engine.dialect.name == "sqlite":  # every removal took out what was indexed
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')"
            )
            assert conn.exec_driver_sql("SELECT count(*) FROM messages_fts").scalar() == 1


def test_postgresql_searches_the_thread_fields_through_their_trigram_index(admin, threads):
    # The planner takes ix_threads_search_fields_trgm only for the very expression it
    # indexes (migration 8b5e1f3a7c29): a query written differently scans instead.
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's trigram index; SQLite has FTS5 (the other pass runs this)")
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "search_document" in statement:
            captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert subjects(admin, "ustermann") == {"Wrong size"}  # inside a word: trigrams
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    ((statement, parameters),) = captured
    connection = db.session.connection()
    # A handful of threads: make index scans in activity order and sequential scans
    # dear, so that the plan shows whether the search condition can use the index.
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    connection.exec_driver_sql("SET LOCAL enable_indexscan = off")
    plan = "\n".join(
        row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters)
    )
    db.session.rollback()
    assert "ix_threads_search_fields_trgm" in plan, plan


def test_ingested_mail_is_searchable_at_once(admin, channel, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    found = subjects(admin, "kneeler")
    assert len(found) == 1
    assert subjects(admin, "203-1234567-1234567 kneeler") == found


def _lamp_mail(i: int, *, attachment: bool = False) -> bytes:
    """Message `i` of one conversation (the first opens it, the rest refer to it)."""
    head = (
        "Delivered-To: uk-chan01@helpdesk.test\nFrom: lampbuyer@example.com\n"
        f"Subject: Re: Lamp\nMessage-ID: <lamp{i}@example.com>\n"
        + ("References: <lamp0@example.com>\n" if i else "")
    )
    body = f"Lampword{i} and the shade number {i}"
    if not attachment:
        return f"{head}\n{body}\n".encode()
    return (
        f'{head}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain\n\n{body}\n--b\nContent-Type: image/png\n"
        'Content-Disposition: attachment; filename="lamp.png"\n'
        "Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--b--\n"
    ).encode()


def _store(mails: list[bytes]) -> None:
    """Store `mails` in one call, as the worker stores a batch (no commit)."""
    store_inbound(
        [InboundMail(raw, parse_inbound(raw, max_attachment_bytes=10**6)) for raw in mails],
        mailbox=None,
        uidvalidity=None,
        inbound_domain="helpdesk.test",
        now=utcnow(),
    )


def test_a_batch_to_one_thread_is_found_by_every_message_and_shows_the_newest(admin, channel):
    _store([_lamp_mail(0)])
    db.session.commit()
    (thread,) = db.session.scalars(select(Thread)).all()
    before = _thread_row_updates()
    # The worker's batch: on PostgreSQL one INSERT, whose trigger takes all its rows.
    _store([_lamp_mail(i, attachment=i == 3) for i in range(1, 7)])
    if before is not None:
        # The flush's UPDATE of the thread (its last message, its status) and the
        # trigger's, which writes the search document and the snippet for all six.
        assert _thread_row_updates() - before == 2
    db.session.commit()
    assert db.session.scalar(select(func.count(Thread.id))) == 1
    for i in range(7):
        assert subjects(admin, f"lampword{i}") == {"Re: Lamp"}, i
    db.session.expire_all()
    assert db.session.get(Thread, thread.id).snippet == "Lampword6 and the shade number 6"
    if db.engine.dialect.name == "postgresql":
        # The document the row trigger built, one message at a time, in id order.
        connection = db.session.connection()
        expected = connection.scalar(
            text(
                "SELECT to_tsvector('simple', concat_ws(' ', CAST(:s AS text),"
                " CAST(:n AS text), CAST(:a AS text), CAST(:o AS text)))"
            ),
            {
                "s": thread.subject,
                "n": thread.buyer_name,
                "a": thread.buyer_address,
                "o": thread.order_id,
            },
        )
        for body in db.session.scalars(
            select(Message.text_body).where(Message.thread_id == thread.id).order_by(Message.id)
        ):
            expected = connection.scalar(
                text("SELECT CAST(:d AS tsvector) || to_tsvector('simple', left(:t, 300000))"),
                {"d": expected, "t": body},
            )
        document = connection.scalar(
            text("SELECT search_document FROM threads WHERE id = :id"), {"id": thread.id}
        )
        assert document == expected


def _thread_row_updates() -> int | None:
    """PostgreSQL: the rows of threads this transaction has updated so far."""
    if db.engine.dialect.name != "postgresql":
        return None
    return db.session.scalar(text("SELECT pg_stat_get_xact_tuples_updated('threads'::regclass)"))


def test_common_terms_fall_back_to_the_substring_scan(admin, threads, monkeypatch):
    # Over DENSE_MATCHES hits, SQLite scans newest first with LIKE (substrings too).
    monkeypatch.setattr(search, "DENSE_MATCHES", 0)
    assert subjects(admin, "parcel") == {"Parcel late"}
    assert subjects(admin, "mustermann refund") == {"Wrong size"}
    assert subjects(admin, "111-2222222") == {"Wrong size"}


def test_paging_through_search_results(admin, channel, make_thread):
    for i in range(7):
        make_thread(channel, subject=f"Thread {i}", texts=(f"widget number {i}",))
    make_thread(channel, subject="Other", texts=("nothing here",))
    seen, cursor = [], None
    while True:
        page = list_inbox(admin, InboxQuery(status="all", q="widget", cursor=cursor), page_size=3)
        seen += [row.subject for row in page.rows]
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(seen) == [f"Thread {i}" for i in range(7)]


def _backfill_check(url: str, tmp_path) -> None:
    """Rows stored before the search migration are found after it (downgrade, upgrade)."""
    app = create_app(app_config_for(url, tmp_path))
    with app.app_context():
        upgrade()
        from portal.services import channels as channel_service
        from portal.services import users as user_service

        org = user_service.get_or_create_organisation("Backfill Ltd", actor=None)
        channel = channel_service.create_channel(
            org, "UK", actor=None, inbound_domain="helpdesk.test"
        )
        admin = user_service.create_user(
            email="admin@example.com", password="plenty quiet lanterns", role=Role.ADMIN, actor=None
        )
        thread = Thread(
            channel=channel,
            organisation_id=org.id,
            subject="Old question",
            buyer_name="Ann",
            buyer_address="oldbuyer77@marketplace.amazon.co.uk",
            order_id="206-5555555-6666666",
        )
        db.session.add(thread)
        db.session.add(
            Message(
                thread=thread,
                channel=channel,
                direction=Direction.IN,
                message_id="<old@example.com>",
                content_hash="old",
                text_body="An old saxophone",
                snippet="An old saxophone",
            )
        )
        db.session.commit()
        admin_id = admin.id
        db.session.remove()
        # Down to before search, and down to its first form on SQLite: both come back.
        for revision in ("db845a1b5fb8", "3b8e6d2f0a91"):
            downgrade(revision=revision)
            upgrade()
            admin = db.session.get(type(admin), admin_id)
            for q in ("saxophone", "206-5555555", "oldbuyer77", "old question"):
                assert subjects(admin, q) == {"Old question"}, (revision, q)
            db.session.remove()
        db.session.remove()
        db.engine.dispose()


def test_migration_indexes_existing_rows(empty_database_url, tmp_path):
    _backfill_check(empty_database_url, tmp_path)
