"""The pipeline end to end on a Maildir source: routing, threading, dedup, quarantine."""

from __future__ import annotations

import pytest

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Channel, Mailbox, Message, Thread, ThreadStatus


@pytest.fixture
def uk(make_channel, make_org) -> Channel:
    return make_channel("UK", organisation=make_org("Acme"), address="uk-chan01@helpdesk.test")


def messages():
    return db.session.scalars(db.select(Message).order_by(Message.id)).all()


def test_poll_stores_routes_and_threads(uk, drop_mail, maildir):
    drop_mail("amazon_uk_inquiry.eml")
    drop_mail("amazon_uk_followup.eml")
    summary = poll_all()
    assert summary.line() == "fetched=2 stored=2 duplicate=0 unrouted=0 quarantined=0 errors=0"
    first, second = messages()
    assert first.channel_id == second.channel_id == uk.id
    # Different subjects, same buyer alias and order: one conversation.
    assert first.thread_id == second.thread_id
    thread = db.session.get(Thread, first.thread_id)
    assert thread.order_id == "203-1234567-1234567"
    assert thread.buyer_name == "Jane Doe"
    assert thread.status == ThreadStatus.OPEN
    assert first.raw.startswith(b"Return-Path:")
    assert first.visible_text.startswith("Hello, my parcel")
    db.session.refresh(uk)
    assert uk.first_message_at is not None
    # Processed mail leaves new/ for cur/ with the Seen flag; a second poll finds nothing.
    assert list((maildir / "new").iterdir()) == []
    assert sorted(p.name.split(":")[1] for p in (maildir / "cur").iterdir()) == ["2,S", "2,S"]
    assert poll_all().line() == "fetched=0 stored=0 duplicate=0 unrouted=0 quarantined=0 errors=0"


def test_same_mail_delivered_twice_is_stored_once(uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    drop_mail("amazon_uk_inquiry.eml")
    assert poll_all().line() == "fetched=2 stored=1 duplicate=1 unrouted=0 quarantined=0 errors=0"
    drop_mail("amazon_uk_inquiry.eml")
    assert poll_all().duplicate == 1
    assert len(messages()) == 1


def test_different_mail_sharing_a_message_id_is_kept(uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    drop_mail("amazon_uk_inquiry.eml", replace={"not arrived yet": "still not arrived"})
    assert poll_all().stored == 2
    assert len({m.content_hash for m in messages()}) == 2


@pytest.mark.parametrize(
    "header",
    [
        "Delivered-To: {addr}",
        "X-Original-To: {addr}",
        "Envelope-To: {addr}",
        "To: {addr}",
        "Cc: {addr}",
    ],
)
def test_routing_by_each_header(make_channel, drop_mail, header):
    channel = make_channel("DE", address="de-route@helpdesk.test")
    other = "To: someone@example.com" if not header.startswith("To") else "Cc: x@example.com"
    raw = (
        f"{header.format(addr='DE-Route+tag@Helpdesk.test')}\n{other}\nFrom: b@example.com\n"
        "Subject: routing\nMessage-ID: <route@example.com>\n\nhello\n"
    ).encode()
    drop_mail(raw)
    assert poll_all().stored == 1
    assert messages()[0].channel_id == channel.id


def test_delivered_to_wins_over_to(make_channel, drop_mail):
    uk = make_channel("UK", address="uk-a@helpdesk.test")
    make_channel("DE", address="de-b@helpdesk.test")
    drop_mail(
        b"Delivered-To: uk-a@helpdesk.test\nTo: de-b@helpdesk.test\nFrom: b@example.com\nSubject: x\n\nhi\n"
    )
    poll_all()
    assert messages()[0].channel_id == uk.id


def test_unrouted_mail_is_kept(uk, drop_mail):
    drop_mail("no_message_id.eml")
    assert poll_all().line() == "fetched=1 stored=0 duplicate=0 unrouted=1 quarantined=0 errors=0"
    (message,) = messages()
    assert message.is_unrouted and message.thread_id is None and message.raw


def test_unparseable_mail_is_quarantined_and_poll_goes_on(uk, drop_mail):
    drop_mail("not_mail.eml")
    drop_mail("amazon_uk_inquiry.eml")
    assert poll_all().line() == "fetched=2 stored=1 duplicate=0 unrouted=0 quarantined=1 errors=0"
    quarantined = db.session.scalar(
        db.select(Message).where(Message.quarantine_reason.is_not(None))
    )
    assert "not an e-mail" in quarantined.quarantine_reason
    assert quarantined.raw.startswith(b"\x00\x01")
    drop_mail("not_mail.eml")
    assert poll_all().duplicate == 1


def test_broken_mime_is_stored_not_dropped(uk, drop_mail):
    drop_mail("broken_mime.eml")
    assert poll_all().stored == 1


def test_automatic_mail_never_opens_a_thread(uk, drop_mail):
    for name in (
        "autoreply.eml",
        "bounce.eml",
        "amazon_notification.eml",
        "seller_central_copy.eml",
    ):
        drop_mail(name)
    assert poll_all().stored == 4
    threads = db.session.scalars(db.select(Thread)).all()
    assert threads and all(t.status == ThreadStatus.CLOSED for t in threads)
    assert all(t.awaiting_reply_since is None for t in threads)


def test_autoreply_does_not_reopen_a_closed_thread(uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    thread = db.session.scalar(db.select(Thread))
    thread.status = ThreadStatus.CLOSED
    db.session.commit()
    drop_mail("autoreply.eml")
    poll_all()
    db.session.refresh(thread)
    assert thread.status == ThreadStatus.CLOSED
    assert len(thread.messages) == 2
    drop_mail("amazon_uk_followup.eml")
    poll_all()
    db.session.refresh(thread)
    assert thread.status == ThreadStatus.OPEN


def test_threading_by_references(uk, drop_mail):
    drop_mail(
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: a@example.com\nSubject: first\nMessage-ID: <t1@example.com>\n\none\n"
    )
    drop_mail(
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: other@example.com\nSubject: totally different\n"
        b"Message-ID: <t2@example.com>\nReferences: <unknown@x> <t1@example.com>\n\ntwo\n"
    )
    poll_all()
    first, second = messages()
    assert first.thread_id == second.thread_id


def test_threading_by_subject_from_same_sender(uk, drop_mail):
    drop_mail(
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: a@example.com\nSubject: Question about size\nMessage-ID: <s1@example.com>\n\none\n"
    )
    drop_mail(
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: a@example.com\nSubject: AW: RE[2]: Question about size\nMessage-ID: <s2@example.com>\n\ntwo\n"
    )
    drop_mail(
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: b@example.com\nSubject: Re: Question about size\nMessage-ID: <s3@example.com>\n\nthree\n"
    )
    poll_all()
    first, second, third = messages()
    assert first.thread_id == second.thread_id
    assert third.thread_id != first.thread_id  # another sender: another conversation


def test_same_alias_different_order_is_another_thread(uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    drop_mail("amazon_uk_followup.eml", replace={"203-1234567-1234567": "203-9999999-9999999"})
    poll_all()
    first, second = messages()
    assert first.thread_id != second.thread_id


def test_never_threads_across_channels(make_channel, drop_mail):
    make_channel("UK", address="uk-chan01@helpdesk.test")
    make_channel("DE", address="de-chan02@helpdesk.test")
    drop_mail("amazon_uk_inquiry.eml")
    drop_mail(
        "amazon_uk_followup.eml",
        replace={"uk-chan01@helpdesk.test": "de-chan02@helpdesk.test"},
    )
    poll_all()
    first, second = messages()
    assert first.channel_id != second.channel_id
    assert first.thread_id != second.thread_id


def test_bad_mail_source_is_an_error_not_a_crash(app, uk):
    app.config["MAIL_SOURCE"] = "pop3://nope"
    summary = poll_all()
    assert summary.errors == 1


def test_mailbox_health_is_recorded(uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    mailbox = db.session.scalar(db.select(Mailbox))
    assert mailbox.last_success_at is not None
    assert mailbox.last_poll_summary.startswith("fetched=1 stored=1")
    assert mailbox.lease_owner is None  # released after the pass


def test_ingest_poll_cli_prints_summary(runner, uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    result = runner.invoke(args=["ingest", "poll"])
    assert result.exit_code == 0, result.output
    assert (
        result.output.strip() == "fetched=1 stored=1 duplicate=0 unrouted=0 quarantined=0 errors=0"
    )
