"""The inbox row's snippet and tags: kept on the thread by triggers, whatever changes.

threads.snippet (the newest message that is not an internal note) and
threads.tag_names are kept by database triggers (migration c3d9a5f1e7b2), so these
tests change messages and tags every way the application or an operator can, on
both databases, and read what the inbox shows.
"""

from __future__ import annotations

from datetime import timedelta

from flask_migrate import downgrade, upgrade
from sqlalchemy import column, insert, select, table

from ingest.pipeline import poll_all
from portal import create_app
from portal.extensions import db
from portal.models import Direction, Message, Role, Tag, thread_tags
from portal.services import threads as thread_service
from portal.services.inbox import FilterOptions, InboxQuery, list_inbox
from portal.services.outbox import queue_reply
from portal.sqltypes import utcnow
from tests.helpers import app_config_for


def rows(user) -> dict:
    """The inbox rows by subject, read afresh."""
    db.session.expire_all()
    return {row.subject: row for row in list_inbox(user, InboxQuery(status="all")).rows}


def message_with(text: str) -> Message:
    return db.session.scalar(select(Message).where(Message.text_body == text))


def test_snippet_is_the_newest_message_that_is_not_a_note(admin, channel, make_thread):
    thread = make_thread(channel, subject="Question", texts=("First words", "Second words"))
    assert rows(admin)["Question"].snippet == "Second words"
    thread_service.add_internal_note(thread, "Only for the team", actor=admin)
    db.session.commit()
    assert rows(admin)["Question"].snippet == "Second words"
    queue_reply(thread, body="Your   parcel\nships today.", author=admin)
    db.session.commit()
    assert rows(admin)["Question"].snippet == "Your parcel ships today."


def test_snippet_follows_edits_moves_dates_notes_and_deletions(admin, channel, make_thread):
    first = make_thread(channel, subject="First", texts=("One", "Two"))
    second = make_thread(channel, subject="Second", texts=("Three",))
    two = message_with("Two")
    two.snippet = "Two, edited"
    db.session.commit()
    assert rows(admin)["First"].snippet == "Two, edited"

    two.thread_id = second.id  # moved: both threads change
    db.session.commit()
    shown = rows(admin)
    assert (shown["First"].snippet, shown["Second"].snippet) == ("One", "Three")

    two.created_at = message_with("Three").created_at + timedelta(hours=1)  # re-dated
    db.session.commit()
    assert rows(admin)["Second"].snippet == "Two, edited"

    db.session.delete(two)
    db.session.commit()
    assert rows(admin)["Second"].snippet == "Three"

    message_with("Three").is_internal_note = True  # a message that becomes a note
    db.session.commit()
    assert rows(admin)["Second"].snippet == ""  # only a note is left

    one = message_with("One")
    one.thread_id = None  # back among the unrouted
    db.session.commit()
    assert rows(admin)["First"].snippet == ""
    one.thread_id = first.id
    db.session.commit()
    assert rows(admin)["First"].snippet == "One"


def test_snippet_is_set_when_the_search_document_is_full(admin, channel, make_thread):
    # PostgreSQL caps a tsvector at 1 MB: past it the search trigger keeps the message
    # out of the thread's document (a warning) and must still set the snippet.
    def words(start: int) -> str:  # 20,000 distinct words, 300 KB
        return " ".join(f"w{n:013d}" for n in range(start, start + 20_000))

    thread = make_thread(channel, subject="Long", texts=(words(0), words(20_000)))
    for start in (40_000, 60_000):  # one INSERT each, so each one's trigger decides
        text = words(start)
        db.session.add(
            Message(
                thread=thread,
                channel=channel,
                direction=Direction.IN,
                message_id=f"<long-{start}@example.com>",
                content_hash=f"long-{start}",
                text_body=text,
                snippet=text[:300],
            )
        )
        db.session.commit()
        assert rows(admin)["Long"].snippet == text[:300]
    if db.engine.dialect.name == "postgresql":  # the last messages did not fit
        assert list_inbox(admin, InboxQuery(status="all", q="w0000000060001")).rows == []


def test_ingested_mail_sets_the_snippet(admin, channel, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    (row,) = rows(admin).values()
    stored = db.session.scalar(select(Message).where(Message.thread_id == row.id))
    assert row.snippet and row.snippet == stored.snippet


def test_tags_follow_tagging_renames_and_deletions(admin, channel, make_thread):
    thread = make_thread(channel, subject="Question")
    other = make_thread(channel, subject="Other")
    for name in ("vip", "damaged"):
        thread_service.add_tag(thread, name, actor=admin)
    thread_service.add_tag(other, "vip", actor=admin)
    db.session.commit()
    shown = rows(admin)
    assert (shown["Question"].tags, shown["Other"].tags) == (("damaged", "vip"), ("vip",))

    vip = db.session.scalar(select(Tag).where(Tag.name == "vip"))
    vip.name = "key account"  # renamed: every thread with it
    db.session.commit()
    shown = rows(admin)
    assert shown["Question"].tags == ("damaged", "key account")
    assert shown["Other"].tags == ("key account",)

    thread_service.remove_tag(
        thread, db.session.scalar(select(Tag).where(Tag.name == "damaged")), actor=admin
    )
    db.session.commit()
    assert rows(admin)["Question"].tags == ("key account",)

    db.session.delete(vip)  # the database cascades to thread_tags
    db.session.commit()
    shown = rows(admin)
    assert (shown["Question"].tags, shown["Other"].tags) == ((), ())

    thread_service.add_tag(thread, "refund", actor=admin)
    db.session.commit()
    db.session.delete(thread)  # a tagged thread can be deleted
    db.session.commit()
    assert set(rows(admin)) == {"Other"}


def test_a_channel_missing_from_the_options_is_looked_up(admin, channel, make_thread):
    make_thread(channel, subject="Question")
    (row,) = list_inbox(admin, InboxQuery(status="all"), options=FilterOptions([], [])).rows
    assert (row.marketplace, row.organisation) == ("Amazon UK", "Alpha Ltd")
    (usual,) = list_inbox(admin, InboxQuery(status="all")).rows
    assert (usual.marketplace, usual.organisation) == ("Amazon UK", "Alpha Ltd")


def _backfill_check(url: str, tmp_path) -> None:
    """Threads stored before the migration show their snippet and tags after it."""
    app = create_app(app_config_for(url, tmp_path))
    with app.app_context():
        upgrade()
        downgrade(revision="8b5e1f3a7c29")
        # Core inserts naming their columns: the models describe columns this
        # revision does not have yet (threads.snippet, channels' authorisation flag,
        # users' and organisations' later columns); the channel as create_channel
        # would store it, the admin created once the schema is current.
        now = utcnow()
        organisations = table("organisations", *map(column, ("id", "name", "created_at")))
        db.session.execute(
            insert(organisations).values(
                id=1, name="Backfill Ltd", created_at=now.replace(tzinfo=None)
            )
        )
        org_id = 1
        channel_id = 1
        channels = table(
            "channels",
            *map(column, ("id", "organisation_id", "marketplace", "helpdesk_address")),
            *map(column, ("status", "status_reason", "is_professional_confirmed", "created_at")),
        )
        db.session.execute(
            insert(channels).values(
                id=channel_id,
                organisation_id=org_id,
                marketplace="UK",
                helpdesk_address="uk-backfil@helpdesk.test",
                status="awaiting_token",
                status_reason="",
                is_professional_confirmed=False,
                created_at=now.replace(tzinfo=None),
            )
        )
        # threads by name of column too (threads.updated_at is later).
        threads = table(
            "threads",
            *map(column, ("id", "channel_id", "organisation_id", "subject", "normalized_subject")),
            *map(column, ("buyer_name", "buyer_address", "status")),
            *map(column, ("created_at", "last_message_at")),
        )
        db.session.execute(
            insert(threads).values(
                id=1,
                channel_id=channel_id,
                organisation_id=org_id,
                subject="Old question",
                normalized_subject="",
                buyer_name="",
                buyer_address="",
                status="open",
                created_at=now.replace(tzinfo=None),
                last_message_at=now.replace(tzinfo=None),
            )
        )
        for number, (text, note) in enumerate(
            (("Older text", False), ("Newest text", False), ("A note", True)), 1
        ):
            db.session.execute(
                insert(Message.__table__).values(
                    thread_id=1,
                    channel_id=channel_id,
                    direction=Direction.IN,
                    message_id=f"<{number}@old>",
                    content_hash=str(number),
                    text_body=text,
                    snippet=text,
                    is_internal_note=note,
                    created_at=now + timedelta(seconds=number),
                )
            )
        db.session.execute(insert(Tag.__table__).values(id=1, organisation_id=org_id, name="vip"))
        db.session.execute(insert(thread_tags).values(thread_id=1, tag_id=1))
        db.session.commit()
        db.session.remove()
        upgrade()
        from portal.services import users as user_service

        admin = user_service.create_user(
            email="admin@example.com", password="plenty quiet lanterns", role=Role.ADMIN, actor=None
        )
        (row,) = list_inbox(admin, InboxQuery(status="all")).rows
        assert (row.snippet, row.tags) == ("Newest text", ("vip",))
        db.session.remove()
        downgrade(revision="8b5e1f3a7c29")  # and the downgrade leaves a working schema
        upgrade()
        db.session.remove()
        db.engine.dispose()


def test_migration_fills_existing_threads(empty_database_url, tmp_path):
    _backfill_check(empty_database_url, tmp_path)
