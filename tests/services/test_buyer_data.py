"""Buyer data kept no longer than needed (services/buyer_data.py, ingest/retention.py):
the retention pass over closed threads and the erasure of one buyer. The clock is always
passed in and the closing dates set by hand: nothing here waits. Runs on SQLite and,
with --postgres, on PostgreSQL (the search documents are kept by database triggers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ingest.retention import run_retention
from portal.config import ConfigError, config_from_env
from portal.crypto import encrypt_secret
from portal.extensions import db
from portal.models import (
    Attachment,
    AuditEvent,
    Direction,
    Draft,
    Mailbox,
    Message,
    Order,
    Role,
    Thread,
    ThreadStatus,
)
from portal.services import buyer_data
from portal.services import export as export_service
from portal.services import threads as thread_service
from portal.services.drafts import save_draft
from portal.services.export import iter_message_records
from portal.services.inbox import InboxQuery, list_inbox
from portal.services.orders import purge_order_data
from portal.sqltypes import utcnow
from tests.helpers import store_order

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
BUYER = "q7xk2mfv9d3lp0b@marketplace.amazon.co.uk"


def closed(thread: Thread, days_ago: float) -> Thread:
    thread.status = ThreadStatus.CLOSED
    thread.closed_at = NOW - timedelta(days=days_ago)
    db.session.commit()
    return thread


def with_raw_and_attachment(thread: Thread) -> Message:
    message = thread.messages[0]
    message.raw = b"From: buyer\r\n\r\nWhere is my parcel?"
    message.attachments.append(
        Attachment(filename="photo.jpg", content_type="image/jpeg", size=3, data=b"jpg")
    )
    db.session.commit()
    return message


def found(admin, q: str) -> set[int]:
    return {row.id for row in list_inbox(admin, InboxQuery(status="all", q=q)).rows}


def message_row(message_id: int) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message_id)


def audit(kind: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.kind == kind)))


# --- closed_at --------------------------------------------------------------------------


def test_closing_a_thread_records_when_and_reopening_forgets_it(make_thread, make_user):
    thread = make_thread()
    agent = make_user(Role.ADMIN)
    thread_service.set_thread_status(thread, ThreadStatus.CLOSED, actor=agent)
    assert thread.closed_at is not None and thread.closed_at <= utcnow()
    thread_service.set_thread_status(thread, ThreadStatus.OPEN, actor=agent)
    assert thread.closed_at is None


def test_a_buyer_writing_to_a_closed_thread_reopens_it_and_clears_closed_at(uk, ingest):
    ingest("amazon_uk_inquiry.eml")
    thread = db.session.scalar(select(Thread))
    closed(thread, 10)
    ingest("amazon_uk_followup.eml")
    db.session.refresh(thread)
    assert thread.status == ThreadStatus.OPEN and thread.closed_at is None


# --- retention ----------------------------------------------------------------------------


def test_raw_mail_and_attachments_go_after_the_first_period_texts_stay(make_thread):
    due = closed(make_thread(), 91)
    kept = closed(make_thread(), 89)
    open_thread = make_thread()
    due_msg, kept_msg, open_msg = (with_raw_and_attachment(t) for t in (due, kept, open_thread))

    counts = run_retention(now=NOW, raw_days=90, text_days=730)

    assert (counts.raw_messages, counts.attachments) == (1, 1)
    assert counts.erased.threads == 0
    gone = message_row(due_msg.id)
    assert gone.raw is None and gone.attachments == [] and gone.text_body == "Where is my parcel?"
    assert gone.erased_at is None
    for message_id in (kept_msg.id, open_msg.id):
        assert message_row(message_id).raw is not None
        assert len(message_row(message_id).attachments) == 1
    [event] = audit("retention.run")
    assert event.details["raw_messages"] == 1 and event.details["attachments"] == 1
    assert event.details["raw_days"] == 90 and event.details["threads"] == 0


def test_texts_go_after_the_second_period_leaving_a_tombstone(make_thread, make_user):
    admin = make_user(Role.ADMIN)
    due = closed(
        make_thread(
            buyer_address=BUYER, subject="Dehumidifier", texts=("too small", "refund please")
        ),
        731,
    )
    kept = closed(make_thread(subject="Kettle", texts=("kettle leaks",)), 729)
    save_draft(admin, due, body="Dear Jane, sorry about the dehumidifier")
    db.session.commit()
    due_ids = [m.id for m in due.messages]
    assert found(admin, "dehumidifier") == {due.id}

    counts = run_retention(now=NOW, raw_days=90, text_days=730)

    assert (counts.erased.threads, counts.erased.messages, counts.erased.drafts) == (1, 2, 1)
    db.session.expire_all()
    tombstone = db.session.get(Thread, due.id)
    assert tombstone.erased_at == NOW and tombstone.status == ThreadStatus.CLOSED
    assert (tombstone.subject, tombstone.buyer_name, tombstone.buyer_address) == ("", "", "")
    assert tombstone.order_id is None and tombstone.closed_at is not None
    assert db.session.scalar(select(Thread.snippet).where(Thread.id == due.id)) in ("", None)
    for message_id in due_ids:
        message = db.session.get(Message, message_id)
        assert message.erased_at == NOW and message.direction == Direction.IN
        assert (message.text_body, message.visible_text, message.snippet) == ("", "", "")
        assert (message.from_address, message.subject, message.raw) == ("", "", None)
        assert message.message_id and message.content_hash  # the dedup keys stay
    assert db.session.scalar(select(func.count(Draft.id))) == 0
    assert db.session.get(Thread, kept.id).erased_at is None
    assert db.session.get(Thread, kept.id).messages[0].text_body == "kettle leaks"
    # Neither the search nor the export finds the erased texts any more.
    assert found(admin, "dehumidifier") == set() and found(admin, "refund") == set()
    assert found(admin, BUYER) == set()
    assert found(admin, "kettle") == {kept.id}
    texts = [r["text"] for r in iter_message_records(organisation=None)]
    assert texts == ["kettle leaks"]
    [event] = audit("retention.run")
    assert event.details["threads"] == 1 and event.details["messages"] == 2


def test_a_second_pass_finds_nothing_and_records_nothing(make_thread):
    with_raw_and_attachment(closed(make_thread(), 800))
    first = run_retention(now=NOW, raw_days=90, text_days=730)
    again = run_retention(now=NOW, raw_days=90, text_days=730)
    assert first.total and not again.total
    assert len(audit("retention.run")) == 1


def test_the_pass_works_in_batches(make_thread):
    threads = [closed(make_thread(), 800) for _ in range(5)]
    for thread in threads:
        with_raw_and_attachment(thread)
    counts = run_retention(now=NOW, raw_days=90, text_days=730, batch_size=2)
    assert counts.raw_messages == 5 and counts.erased.threads == 5
    db.session.expire_all()
    assert all(db.session.get(Thread, t.id).erased_at == NOW for t in threads)


def test_the_buyer_writing_again_after_erasure_starts_a_new_thread(uk, ingest):
    ingest("amazon_uk_inquiry.eml")
    tombstone = closed(db.session.scalar(select(Thread)), 800)
    run_retention(now=NOW, raw_days=90, text_days=730)
    ingest("amazon_uk_followup.eml")
    db.session.expire_all()
    threads = db.session.scalars(select(Thread).order_by(Thread.id)).all()
    assert [t.id for t in threads][0] == tombstone.id and len(threads) == 2
    assert threads[0].status == ThreadStatus.CLOSED and threads[0].erased_at == NOW
    assert threads[1].status == ThreadStatus.OPEN and threads[1].messages[0].text_body


def test_a_reply_to_an_erased_message_starts_a_new_thread(uk, ingest):
    original = "<0100018c.amazon-uk-1@email.amazonses.com>"
    ingest("amazon_uk_inquiry.eml")
    tombstone = closed(db.session.scalar(select(Thread)), 800)
    run_retention(now=NOW, raw_days=90, text_days=730)
    reply = f"Message-ID: <0100018c.amazon-uk-9@email.amazonses.com>\nIn-Reply-To: {original}"
    ingest("amazon_uk_inquiry.eml", replace={f"Message-ID: {original}": reply})
    db.session.expire_all()
    threads = db.session.scalars(select(Thread).order_by(Thread.id)).all()
    assert [t.id for t in threads][0] == tombstone.id and len(threads) == 2
    assert [m.erased_at is not None for m in threads[0].messages] == [True]
    assert threads[1].messages[0].in_reply_to == original


def test_a_tombstone_that_got_content_again_is_erased_again(make_thread):
    thread = closed(make_thread(), 800)
    run_retention(now=NOW, raw_days=90, text_days=730)
    db.session.add(
        Message(
            thread_id=thread.id,
            channel_id=thread.channel_id,
            direction=Direction.IN,
            message_id="<again@example.com>",
            content_hash="again",
            text_body="a reply to the old mail",
        )
    )
    closed(db.session.get(Thread, thread.id), 800)
    counts = run_retention(now=NOW, raw_days=90, text_days=730)
    assert counts.erased.messages == 1
    db.session.expire_all()
    assert all(m.erased_at is not None for m in db.session.get(Thread, thread.id).messages)


def test_order_purge_is_audited(uk):
    store_order(uk, "203-1234567-1234567", delivered_at=NOW - timedelta(days=31))
    store_order(uk, "203-7654321-7654321", delivered_at=NOW - timedelta(days=29))
    assert purge_order_data(now=NOW, days=30) == 1
    [event] = audit("orders.purged")
    assert event.details == {"orders": 1, "days": 30}
    assert purge_order_data(now=NOW, days=30) == 0
    assert len(audit("orders.purged")) == 1


# --- erasure of one buyer -------------------------------------------------------------


@pytest.fixture
def buyer_threads(uk, make_thread):
    """Two threads of BUYER in Acme (one with an order, raw mail, an attachment and a
    draft) and one of another buyer."""
    first = make_thread(uk, buyer_address=BUYER, texts=("dehumidifier too small", "refund?"))
    second = make_thread(uk, buyer_address=BUYER.upper(), order_id=None, texts=("also this",))
    other = make_thread(uk, texts=("kettle leaks",))
    with_raw_and_attachment(first)
    store_order(uk, "203-1234567-1234567")
    return first, second, other


def test_erasing_a_buyer_counts_and_erases_only_their_data(uk, buyer_threads, make_user):
    first, second, other = buyer_threads
    admin = make_user(Role.ADMIN)
    save_draft(admin, first, body="Dear Jane")
    db.session.commit()

    preview = buyer_data.find_buyer_data(uk.organisation, f"  {BUYER.title()} ")
    assert (len(preview.thread_ids), preview.messages) == (2, 3)

    counts = buyer_data.erase_buyer(uk.organisation, BUYER, actor=admin, now=NOW)
    db.session.commit()

    assert (counts.threads, counts.messages, counts.attachments) == (2, 3, 1)
    assert (counts.orders, counts.drafts) == (1, 1)
    assert db.session.scalar(select(func.count(Order.id))) == 0
    assert db.session.scalar(select(func.count(Attachment.id))) == 0
    assert db.session.get(Thread, first.id).erased_at == NOW
    assert db.session.get(Thread, second.id).erased_at == NOW
    assert db.session.get(Thread, other.id).erased_at is None
    assert db.session.get(Thread, other.id).messages[0].text_body == "kettle leaks"
    assert found(admin, "dehumidifier") == set() and found(admin, "kettle") == {other.id}
    assert [r["text"] for r in iter_message_records(organisation=uk.organisation)] == [
        "kettle leaks"
    ]
    [event] = audit("buyer.erased")
    assert event.organisation_id == uk.organisation_id and event.actor_id == admin.id
    assert event.details["address_sha256"] == buyer_data.address_digest(BUYER)
    assert event.details["messages"] == 3
    assert BUYER not in str(event.details).lower()
    # Nothing left to erase: a second attempt says so.
    with pytest.raises(buyer_data.BuyerDataError, match="Nothing is stored"):
        buyer_data.erase_buyer(uk.organisation, BUYER, actor=admin, now=NOW)


def test_erasure_stays_in_its_organisation(uk, make_channel, make_org, make_thread):
    elsewhere = make_channel("DE", organisation=make_org("Beta GmbH"))
    theirs = make_thread(elsewhere, buyer_address=BUYER)
    ours = make_thread(uk, buyer_address=BUYER)
    buyer_data.erase_buyer(uk.organisation, BUYER, actor=None, now=NOW)
    db.session.commit()
    assert db.session.get(Thread, ours.id).erased_at == NOW
    assert db.session.get(Thread, theirs.id).erased_at is None
    assert db.session.get(Thread, theirs.id).buyer_address == BUYER


def test_the_buyers_messages_in_other_threads_are_erased_too(uk, make_thread):
    other = make_thread(uk, texts=("first",))
    stray = Message(
        thread=other,
        channel=uk,
        direction=Direction.IN,
        message_id="<stray@example.com>",
        content_hash="stray",
        from_address=BUYER,
        text_body="I am the same buyer writing here",
    )
    db.session.add(stray)
    db.session.commit()
    counts = buyer_data.erase_buyer(uk.organisation, BUYER, actor=None, now=NOW)
    db.session.commit()
    assert (counts.threads, counts.messages) == (0, 1)
    assert message_row(stray.id).text_body == "" and message_row(stray.id).erased_at == NOW
    assert db.session.get(Thread, other.id).erased_at is None


@pytest.mark.parametrize("address", ["", "   ", "no-at-sign", "two words@example.com"])
def test_erasure_refuses_what_is_not_an_address(uk, address):
    with pytest.raises(buyer_data.BuyerDataError, match="e-mail address"):
        buyer_data.find_buyer_data(uk.organisation, address)


@pytest.mark.parametrize(
    ("name", "default"), [("RAW_RETENTION_DAYS", 90), ("TEXT_RETENTION_DAYS", 730)]
)
def test_retention_periods_are_read_from_the_environment(monkeypatch, tmp_path, name, default):
    monkeypatch.delenv(name, raising=False)
    assert config_from_env(str(tmp_path))[name] == default
    monkeypatch.setenv(name, "30")
    assert config_from_env(str(tmp_path))[name] == 30
    monkeypatch.setenv(name, "0")
    with pytest.raises(ConfigError, match=name):
        config_from_env(str(tmp_path))


# --- subject access export of one buyer -------------------------------------------------


def test_the_buyer_export_holds_their_messages_and_orders_with_the_export_keys(
    uk, buyer_threads, make_thread, make_user
):
    first, second, other = buyer_threads
    stray = Message(
        thread=other,
        channel=uk,
        direction=Direction.IN,
        message_id="<stray@example.com>",
        content_hash="stray",
        from_address=BUYER,
        text_body="the same buyer in another thread",
    )
    db.session.add(stray)
    db.session.commit()
    note = thread_service.add_internal_note(first, "staff only", actor=make_user(Role.ADMIN))
    order = db.session.scalar(select(Order))
    order.pii_encrypted = encrypt_secret('{"buyer_name": "Jane Doe", "ship_to": ["1 High St"]}')
    db.session.commit()

    export = export_service.find_buyer_export(uk.organisation, BUYER.title())
    records = list(export.records())

    keys = set(next(iter_message_records(organisation=uk.organisation)))
    messages, orders = records[:-1], records[-1:]
    assert [r["text"] for r in messages] == [
        "dehumidifier too small",
        "refund?",
        "also this",
        "the same buyer in another thread",
    ]
    assert all(set(r) == keys for r in messages)
    assert note.text_body not in str(records)
    [line] = orders
    assert set(line) == keys | {"order"} and line["direction"] is None
    assert line["order_id"] == "203-1234567-1234567" and line["channel"] == uk.helpdesk_address
    assert line["order"]["total_amount"] == "36.97"
    assert (line["order"]["buyer_name"], line["order"]["ship_to"]) == ("Jane Doe", ["1 High St"])

    export_service.record_buyer_export(uk.organisation, export, actor=None)
    db.session.commit()
    [event] = audit("buyer.exported")
    assert event.details["messages"] == 4 and event.details["orders"] == 1
    assert event.details["address_sha256"] == buyer_data.address_digest(BUYER)
    assert BUYER not in str(event.details).lower()


def test_the_buyer_export_skips_what_is_erased_and_other_organisations(
    uk, make_channel, make_org, make_thread
):
    elsewhere = make_channel("DE", organisation=make_org("Beta GmbH"))
    make_thread(elsewhere, buyer_address=BUYER, texts=("other seller",))
    make_thread(uk, buyer_address=BUYER, texts=("ours",))
    assert [r["text"] for r in export_service.find_buyer_export(uk.organisation, BUYER).records()]
    buyer_data.erase_buyer(uk.organisation, BUYER, actor=None, now=NOW)
    db.session.commit()
    export = export_service.find_buyer_export(uk.organisation, BUYER)
    assert export.is_empty and list(export.records()) == []


def test_an_admins_erasure_covers_the_buyers_unrouted_and_quarantined_mail(uk, make_thread):
    thread = make_thread(uk, buyer_address=BUYER)
    unrouted = Message(
        direction=Direction.IN,
        message_id="<unrouted@example.com>",
        content_hash="u" * 64,
        from_address=BUYER.upper(),
        text_body="to an address no channel has",
        raw=b"From: x\r\n\r\nto an address no channel has",
    )
    quarantined = Message(
        direction=Direction.IN,
        message_id="<q@quarantine.sellerdesk>",
        content_hash="q" * 64,
        quarantine_reason="malformed",
        raw=f"From: Jane <{BUYER.upper()}>\r\nbroken".encode(),
    )
    someone_else = Message(
        direction=Direction.IN,
        message_id="<q2@quarantine.sellerdesk>",
        content_hash="r" * 64,
        quarantine_reason="malformed",
        raw=b"From: other@example.com\r\nbroken",
    )
    db.session.add_all([unrouted, quarantined, someone_else])
    db.session.commit()

    # An owner's erasure keeps to their organisation's mail.
    owner_view = buyer_data.find_buyer_data(uk.organisation, BUYER)
    assert owner_view.stray_message_ids == []
    admin_view = buyer_data.find_buyer_data(uk.organisation, BUYER, include_unassigned=True)
    assert admin_view.stray_message_ids == [unrouted.id, quarantined.id]

    exported = export_service.find_buyer_export(uk.organisation, BUYER, include_unassigned=True)
    # The thread's message, then the two that reached no organisation.
    assert [r["flags"] for r in exported.records()] == [[], ["unrouted"], ["quarantined"]]

    counts = buyer_data.erase_buyer(
        uk.organisation, BUYER, actor=None, now=NOW, include_unassigned=True
    )
    db.session.commit()
    assert (counts.threads, counts.messages, counts.orders) == (1, 3, 0)
    assert message_row(unrouted.id).erased_at == NOW and message_row(unrouted.id).raw is None
    assert message_row(quarantined.id).raw is None
    assert message_row(someone_else.id).raw == b"From: other@example.com\r\nbroken"
    assert db.session.get(Thread, thread.id).erased_at == NOW


def test_erasure_queues_the_fetched_mail_for_removal_at_its_source(uk, make_thread):
    mailbox = Mailbox(name="inbox", source_url="maildir:/nowhere")
    db.session.add(mailbox)
    thread = make_thread(uk, buyer_address=BUYER, texts=("one", "two"))
    first, second = thread.messages
    first.mailbox, first.uidvalidity, first.uid = mailbox, 7, 41
    db.session.commit()
    buyer_data.erase_buyer(uk.organisation, BUYER, actor=None, now=NOW)
    db.session.commit()
    [removal] = buyer_data.pending_source_removals(mailbox.id)
    assert (removal.uidvalidity, removal.uid) == (7, 41)
    assert (removal.message_id, removal.content_hash) == (first.message_id, first.content_hash)
    [event] = audit("buyer.erased")
    assert event.details["source_removals"] == 1
    buyer_data.source_removals_done([removal])
    db.session.commit()
    assert buyer_data.pending_source_removals(mailbox.id) == []
