"""Storing inbound mail (services/inbound.py): dedup, quarantine, route, thread, record.

The worker's batches and an admin's decisions store through `store_inbound` alike;
the pipeline's own tests (tests/ingest/) feed it through a real poll.
"""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

import pytest

from ingest.mail.parse_result import parse_inbound
from portal.extensions import db
from portal.models import Direction, Mailbox, Message, Thread, ThreadStatus
from portal.services.inbound import InboundMail, Outcome, store_inbound
from portal.sqltypes import utcnow
from tests.helpers import mail_bytes
from tests.helpers import stored_messages as messages


def inbound(name_or_bytes: str | bytes, *, uid: int | None = None, **options) -> InboundMail:
    replace = options.pop("replace", None)
    raw = mail_bytes(name_or_bytes, replace=replace)
    return InboundMail(raw, parse_inbound(raw, max_attachment_bytes=10**7), uid, **options)


def store(*mails: InboundMail | str | bytes, mailbox=None, uidvalidity=None) -> list[Outcome]:
    """Store `mails` in one call, committed as the worker would; their outcomes."""
    results = store_inbound(
        [m if isinstance(m, InboundMail) else inbound(m) for m in mails],
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        inbound_domain="helpdesk.test",
        now=utcnow(),
    )
    db.session.commit()
    return [result.outcome for result in results]


@pytest.fixture
def mailbox(app) -> Mailbox:
    mailbox = Mailbox(name="test", source_url="maildir:/nonexistent")
    db.session.add(mailbox)
    db.session.commit()
    return mailbox


# --- dedup -------------------------------------------------------------------------------


def test_the_same_mail_is_stored_once_in_one_call_and_in_the_next(uk):
    assert store("amazon_uk_inquiry.eml", "amazon_uk_inquiry.eml") == [
        Outcome.STORED,
        Outcome.DUPLICATE,
    ]
    assert store("amazon_uk_inquiry.eml") == [Outcome.DUPLICATE]
    assert len(messages()) == 1


def test_different_mail_sharing_a_message_id_is_kept(uk):
    assert store(
        "amazon_uk_inquiry.eml",
        inbound("amazon_uk_inquiry.eml", replace={"not arrived yet": "still not arrived"}),
    ) == [Outcome.STORED, Outcome.STORED]
    assert len({m.content_hash for m in messages()}) == 2


def test_a_uid_stored_under_the_same_uidvalidity_is_a_duplicate(uk, mailbox):
    assert store(inbound("amazon_uk_inquiry.eml", uid=7), mailbox=mailbox, uidvalidity=1) == [
        Outcome.STORED
    ]
    other = inbound("amazon_uk_followup.eml", uid=7)
    assert store(other, mailbox=mailbox, uidvalidity=1) == [Outcome.DUPLICATE]
    # The same UID under a new UIDVALIDITY is another mail.
    assert store(other, mailbox=mailbox, uidvalidity=2) == [Outcome.STORED]


def test_content_dedup_spans_mailboxes_but_uids_are_per_mailbox(uk, mailbox):
    # Issue 24: the same mail through two mailboxes (or IMAP and HTTP) is one mail.
    assert store("amazon_uk_inquiry.eml", mailbox=mailbox) == [Outcome.STORED]
    assert store("amazon_uk_inquiry.eml") == [Outcome.DUPLICATE]
    other = inbound("amazon_uk_followup.eml", uid=1)
    assert store(other, mailbox=mailbox, uidvalidity=1) == [Outcome.STORED]
    # UID 1 of another mailbox is another mail.
    assert store(inbound("amazon_de_presale.eml", uid=1), uidvalidity=1) != [Outcome.DUPLICATE]


# --- quarantine --------------------------------------------------------------------------


def test_unparseable_mail_is_quarantined_raw_and_once(uk):
    assert store("not_mail.eml", "amazon_uk_inquiry.eml", "not_mail.eml") == [
        Outcome.QUARANTINED,
        Outcome.STORED,
        Outcome.DUPLICATE,
    ]
    quarantined = db.session.scalar(
        db.select(Message).where(Message.quarantine_reason.is_not(None))
    )
    assert "not an e-mail" in quarantined.quarantine_reason
    assert quarantined.raw.startswith(b"\x00\x01")
    assert quarantined.message_id.endswith("@quarantine.sellerdesk>")
    assert quarantined.channel_id is None and quarantined.thread_id is None


# --- route -------------------------------------------------------------------------------


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
def test_routing_by_each_header(make_channel, header):
    channel = make_channel("DE", address="de-route@helpdesk.test")
    other = "To: someone@example.com" if not header.startswith("To") else "Cc: x@example.com"
    raw = (
        f"{header.format(addr='DE-Route+tag@Helpdesk.test')}\n{other}\nFrom: b@example.com\n"
        "Subject: routing\nMessage-ID: <route@example.com>\n\nhello\n"
    ).encode()
    assert store(raw) == [Outcome.STORED]
    assert messages()[0].channel_id == channel.id


def test_delivered_to_wins_over_to(make_channel):
    uk = make_channel("UK", address="uk-a@helpdesk.test")
    make_channel("DE", address="de-b@helpdesk.test")
    store(
        b"Delivered-To: uk-a@helpdesk.test\nTo: de-b@helpdesk.test\nFrom: b@example.com\nSubject: x\n\nhi\n"
    )
    assert messages()[0].channel_id == uk.id


def test_unrouted_mail_is_kept(uk):
    assert store("no_message_id.eml") == [Outcome.UNROUTED]
    (message,) = messages()
    assert message.is_unrouted and message.thread_id is None and message.raw


def test_the_channel_an_admin_chose_wins_over_the_addresses(uk, make_channel):
    de = make_channel("DE", address="de-chan02@helpdesk.test")
    assert store(inbound("amazon_uk_inquiry.eml", channel=de)) == [Outcome.STORED]
    assert messages()[0].channel_id == de.id
    assert messages()[0].delivered_to == "de-chan02@helpdesk.test"


# --- thread ------------------------------------------------------------------------------


def test_a_new_conversation_opens_a_thread_described_by_its_first_message(uk):
    results = store_inbound(
        [inbound("amazon_uk_inquiry.eml"), inbound("amazon_uk_followup.eml")],
        mailbox=None,
        uidvalidity=None,
        inbound_domain="helpdesk.test",
        now=utcnow(),
    )
    db.session.commit()
    assert [(r.outcome, r.is_new_thread) for r in results] == [
        (Outcome.STORED, True),
        (Outcome.STORED, False),
    ]
    assert results[0].thread is results[1].thread
    thread = db.session.get(Thread, messages()[0].thread_id)
    assert thread.order_id == "203-1234567-1234567"
    assert thread.buyer_name == "Jane Doe"
    assert thread.status == ThreadStatus.OPEN
    db.session.refresh(uk)
    assert uk.first_message_at is not None


def test_automatic_mail_never_opens_a_thread(uk):
    outcomes = store(
        "autoreply.eml", "bounce.eml", "amazon_notification.eml", "seller_central_copy.eml"
    )
    assert outcomes == [Outcome.STORED] * 4
    threads = db.session.scalars(db.select(Thread)).all()
    assert threads and all(t.status == ThreadStatus.CLOSED for t in threads)
    assert all(t.awaiting_reply_since is None for t in threads)


def test_autoreply_does_not_reopen_a_closed_thread(uk):
    store("amazon_uk_inquiry.eml")
    thread = db.session.scalar(db.select(Thread))
    thread.status = ThreadStatus.CLOSED
    db.session.commit()
    store("autoreply.eml")
    db.session.refresh(thread)
    assert thread.status == ThreadStatus.CLOSED
    assert len(thread.messages) == 2
    store("amazon_uk_followup.eml")
    db.session.refresh(thread)
    assert thread.status == ThreadStatus.OPEN


def test_threading_by_references(uk):
    store(
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: a@example.com\nSubject: first\nMessage-ID: <t1@example.com>\n\none\n",
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: other@example.com\nSubject: totally different\n"
        b"Message-ID: <t2@example.com>\nReferences: <unknown@x> <t1@example.com>\n\ntwo\n",
    )
    first, second = messages()
    assert first.thread_id == second.thread_id


def test_threading_by_subject_from_same_sender(uk):
    store(
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: a@example.com\nSubject: Question about size\nMessage-ID: <s1@example.com>\n\none\n",
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: a@example.com\nSubject: AW: RE[2]: Question about size\nMessage-ID: <s2@example.com>\n\ntwo\n",
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: b@example.com\nSubject: Re: Question about size\nMessage-ID: <s3@example.com>\n\nthree\n",
    )
    first, second, third = messages()
    assert first.thread_id == second.thread_id
    assert third.thread_id != first.thread_id  # another sender: another conversation


def test_the_subject_matches_only_within_the_window(uk):
    store("amazon_uk_inquiry.eml")
    thread = db.session.scalar(db.select(Thread))
    thread.last_message_at = utcnow() - timedelta(days=31)
    thread.order_id = None
    db.session.commit()
    store(inbound("amazon_uk_inquiry.eml", replace={"not arrived yet": "still not arrived"}))
    assert len(db.session.scalars(db.select(Thread)).all()) == 2


def test_same_alias_different_order_is_another_thread(uk):
    store(
        "amazon_uk_inquiry.eml",
        inbound("amazon_uk_followup.eml", replace={"203-1234567-1234567": "203-9999999-9999999"}),
    )
    first, second = messages()
    assert first.thread_id != second.thread_id


def test_never_threads_across_channels(make_channel):
    make_channel("UK", address="uk-chan01@helpdesk.test")
    make_channel("DE", address="de-chan02@helpdesk.test")
    store(
        "amazon_uk_inquiry.eml",
        inbound(
            "amazon_uk_followup.eml",
            replace={"uk-chan01@helpdesk.test": "de-chan02@helpdesk.test"},
        ),
    )
    first, second = messages()
    assert first.channel_id != second.channel_id
    assert first.thread_id != second.thread_id


# --- in place of a waiting row -----------------------------------------------------------


def test_mail_replacing_its_waiting_row_is_no_duplicate_of_itself(uk, mailbox):
    raw = mail_bytes("amazon_uk_inquiry.eml", replace={"uk-chan01@": "typo@"})
    assert store(InboundMail(raw, parse_inbound(raw, max_attachment_bytes=10**7), 5),
                 mailbox=mailbox, uidvalidity=1) == [Outcome.UNROUTED]  # fmt: skip
    (waiting,) = messages()
    received = utcnow() - timedelta(hours=3)
    waiting.created_at = received
    db.session.commit()
    mail = inbound(raw, uid=5, channel=uk, replaces=waiting)
    (result,) = store_inbound(
        [mail], mailbox=mailbox, uidvalidity=1, inbound_domain="helpdesk.test", now=utcnow()
    )
    db.session.commit()
    assert result.outcome == Outcome.STORED and result.is_new_thread
    (stored,) = messages()
    assert result.message is stored
    assert (stored.channel_id, stored.uid, stored.mailbox_id) == (uk.id, 5, mailbox.id)
    assert stored.created_at == received
    assert stored.thread_id == result.thread.id


def test_mail_replacing_a_waiting_row_that_is_stored_already_leaves_the_row(uk, mailbox):
    store("amazon_uk_inquiry.eml", mailbox=mailbox)
    waiting = Message(
        direction=Direction.IN, message_id="<q@quarantine.sellerdesk>", content_hash="x", subject=""
    )
    waiting.mailbox = mailbox
    waiting.quarantine_reason = "parser bug"
    db.session.add(waiting)
    db.session.commit()
    (result,) = store_inbound(
        [inbound("amazon_uk_inquiry.eml", replaces=waiting)],
        mailbox=mailbox,
        uidvalidity=None,
        inbound_domain="helpdesk.test",
        now=utcnow(),
    )
    db.session.commit()
    assert result.outcome == Outcome.DUPLICATE and result.message is None
    assert len(messages()) == 2
    db.session.refresh(waiting)
    assert waiting.quarantine_reason == "parser bug"


# --- record ------------------------------------------------------------------------------


def test_a_batch_keeps_every_byte_of_its_mail_and_every_character_of_its_text(uk):
    # PostgreSQL writes a batch as arrays of values (one INSERT … unnest per table): the
    # characters an array's text form must escape, 8-bit text and binary attachments
    # come back exactly as they went in.
    awkward = 'quote " backslash \\ braces {a,b} comma , NULL semicolon ;'
    text = f"{awkward} Grüße 日本"
    data = bytes(range(256)) * 3
    raws = []
    for i in range(3):
        mail = EmailMessage()
        mail["From"] = f"Buyer {i} <buyer{i}@example.com>"
        mail["To"] = "uk-chan01@helpdesk.test"
        mail["Subject"] = f"{awkward} {i}"
        mail["Message-ID"] = f"<awkward-{i}@example.com>"
        mail.set_content(f"{text}\n{i}\n", cte="8bit")
        if i != 1:  # a batch mixing mail with and without attachments
            mail.add_attachment(
                data, maintype="application", subtype="octet-stream", filename=f"file-{i}.bin"
            )
        raws.append(mail.as_bytes())
    assert store(*raws) == [Outcome.STORED] * 3
    db.session.expire_all()
    stored = messages()
    assert [m.raw for m in stored] == raws
    for i, message in enumerate(stored):
        assert message.subject == f"{awkward} {i}"
        assert text in message.text_body
        assert message.direction == Direction.IN and message.created_at is not None
        files = [(a.filename, a.data, a.size) for a in message.attachments]
        assert files == ([] if i == 1 else [(f"file-{i}.bin", data, len(data))])
