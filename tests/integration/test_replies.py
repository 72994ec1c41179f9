"""Replies against the real servers the suite starts: aiosmtpd for SMTP, Dovecot for IMAP."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import AuditEvent, Direction, Message, Role, SendStatus, Thread
from portal.services import outbox, outbox_delivery
from portal.sqltypes import utcnow
from tests.helpers import parse_mail, run_together, worker_environment
from tests.mailgen import amazon_message
from tests.servers import SmtpServer, free_port

ROOT = Path(__file__).resolve().parents[2]
HELPDESK = "uk-replies@helpdesk.test"
_numbers = itertools.count(1)


@pytest.fixture
def smtp_url(app, smtp):
    url = f"smtp://127.0.0.1:{smtp.port}"
    app.config["SMTP_URL"] = url
    return url


@pytest.fixture
def agent(make_user):
    return make_user(Role.ADMIN, email="agent@example.com")


@pytest.fixture
def channel(make_channel):
    return make_channel("UK", address=HELPDESK)


@pytest.fixture
def buyer_thread(app, channel):
    """A thread with one buyer message, as ingestion would have stored it."""

    def factory() -> Thread:
        n = next(_numbers)
        subject = f"Inquiry from Amazon customer Jane (Order: 203-1234567-{n:07d})"
        when = utcnow() - timedelta(hours=1)
        thread = Thread(
            channel=channel,
            organisation_id=channel.organisation_id,
            subject=subject,
            normalized_subject=subject.lower(),
            buyer_address=f"jane{n}@marketplace.amazon.co.uk",
            order_id=f"203-1234567-{n:07d}",
            last_message_at=when,
            awaiting_reply_since=when,
        )
        db.session.add(
            Message(
                thread=thread,
                channel=channel,
                direction=Direction.IN,
                message_id=f"<buyer-{n}@amazonses.example>",
                references=f"<root-{n}@amazonses.example>",
                content_hash=f"h{n}",
                subject=subject,
                from_address=thread.buyer_address,
                to_addresses=HELPDESK,
                created_at=when,
            )
        )
        db.session.commit()
        return thread

    return factory


def queue(thread, agent, body="Hello Jane,\nyour parcel left today.\n", **kwargs) -> Message:
    message = outbox.queue_reply(thread, body=body, author=agent, **kwargs)
    db.session.commit()
    return message


def received_ids(smtp: SmtpServer) -> list[str]:
    return [mail.message["Message-ID"] for mail in smtp.messages]


@pytest.mark.smtp
def test_reply_reaches_the_smtp_server_with_threading_headers(
    app, smtp, smtp_url, buyer_thread, agent
):
    thread = buyer_thread()
    message = queue(thread, agent, attachments=[("Invoice 1.pdf", "application/pdf", b"%PDF-1.4")])
    assert outbox_delivery.deliver_one(message.id) is True

    [received] = smtp.messages
    assert received.mail_from == HELPDESK
    assert received.rcpt_tos == [thread.buyer_address]
    msg = received.message
    assert msg["From"].addresses[0].addr_spec == HELPDESK
    assert msg["To"] == thread.buyer_address
    assert msg["Subject"] == f"Re: {thread.subject}"
    assert msg["Message-ID"] == message.message_id
    assert msg["In-Reply-To"] == thread.messages[0].message_id
    assert msg["References"].split() == [
        thread.messages[0].references,
        thread.messages[0].message_id,
    ]
    assert msg["Auto-Submitted"] == "no"
    assert "Precedence" not in msg and not [k for k in msg if k.lower().startswith("list-")]
    assert msg.get_body(("plain",)).get_content() == "Hello Jane,\nyour parcel left today.\n"
    [attachment] = msg.iter_attachments()
    assert attachment.get_filename() == "Invoice 1.pdf"
    assert attachment.get_content() == b"%PDF-1.4"
    # The server got exactly the bytes stored with the message.
    assert received.raw == message.raw

    db.session.refresh(message)
    assert message.send_status == SendStatus.SENT and message.send_attempts == 1
    assert outbox_delivery.deliver_pending().line() == "sent=0 failed=0 retrying=0"
    assert len(smtp.messages) == 1


@pytest.mark.smtp
def test_smtp_login_with_url_encoded_credentials(app, buyer_thread, agent):
    server = SmtpServer(users={"mailer@shop": "p@ss:w/rd"})
    server.start()
    try:
        app.config["SMTP_URL"] = f"smtp://mailer%40shop:p%40ss%3Aw%2Frd@127.0.0.1:{server.port}"
        message = queue(buyer_thread(), agent)
        assert outbox_delivery.deliver_one(message.id) is True
        assert [m.auth_user for m in server.messages] == ["mailer@shop"]

        app.config["SMTP_URL"] = f"smtp://mailer%40shop:wrong@127.0.0.1:{server.port}"
        second = queue(buyer_thread(), agent)
        assert outbox_delivery.deliver_one(second.id) is False
        db.session.refresh(second)
        # A refused login is our configuration, not the message: it stays queued.
        assert second.send_status == SendStatus.PENDING
        assert second.last_send_error.startswith("session: 535")
    finally:
        server.stop()


@pytest.mark.smtp
def test_smtp_down_queues_then_delivers_exactly_once(app, smtp, smtp_url, buyer_thread, agent):
    thread = buyer_thread()
    smtp.stop()
    message = queue(thread, agent)
    now = utcnow()
    assert outbox_delivery.deliver_one(message.id, now=now) is False
    db.session.refresh(message)
    assert message.send_status == SendStatus.PENDING
    assert "Connection refused" in message.last_send_error
    assert outbox.describe_status(message).startswith("queued, retrying (connect:")
    assert message.send_attempts == 1 and message.send_claimed_until is None
    # The reply counts as the answer while it waits.
    assert thread.awaiting_reply_since is None

    # Still down at the next due pass: another attempt, a longer wait.
    summary = outbox_delivery.deliver_pending(now=now + timedelta(seconds=31))
    assert summary.line() == "sent=0 failed=0 retrying=1"
    db.session.refresh(message)
    assert message.send_attempts == 2
    assert message.next_attempt_at == now + timedelta(seconds=31 + 60)

    smtp.start()
    # Back up, but the reply is backing off: nothing is sent before it is due.
    assert outbox_delivery.deliver_pending(now=now + timedelta(seconds=40)).sent == 0
    assert smtp.messages == []
    later = now + timedelta(minutes=5)
    assert outbox_delivery.deliver_pending(now=later).line() == "sent=1 failed=0 retrying=0"
    assert outbox_delivery.deliver_pending(now=later + timedelta(hours=2)).sent == 0
    assert received_ids(smtp) == [message.message_id]
    db.session.refresh(message)
    assert message.send_status == SendStatus.SENT and message.last_send_error is None


@pytest.mark.smtp
@pytest.mark.parametrize(
    ("at", "code", "text", "stage"),
    [
        ("data", 554, "5.7.1 Message rejected: outside links are not allowed", "DATA"),
        ("rcpt", 550, "5.1.1 No such buyer", "RCPT"),
        ("mail", 553, "5.7.1 Sender not an approved sender", "MAIL"),
    ],
)
def test_permanent_rejection_fails_with_the_servers_reason(
    app, smtp, smtp_url, buyer_thread, agent, at, code, text, stage
):
    thread = buyer_thread()
    waiting_since = thread.awaiting_reply_since
    message = queue(thread, agent)
    smtp.reject_next(code, text, at=at)
    assert outbox_delivery.deliver_one(message.id) is False
    db.session.refresh(message)
    assert message.send_status == SendStatus.FAILED
    assert message.last_send_error == f"{stage}: {code} {text}"
    assert outbox.describe_status(message) == f"failed: {stage}: {code} {text}"
    # Not answered after all: the buyer's 24-hour clock is back.
    db.session.refresh(thread)
    assert thread.awaiting_reply_since == waiting_since
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "thread.reply_failed"))
    assert event.target_id == message.id and str(code) in event.details["reason"]
    # Never retried on its own …
    later = utcnow() + timedelta(days=1)
    assert outbox_delivery.deliver_pending(now=later).line() == "sent=0 failed=0 retrying=0"
    assert smtp.messages == []
    # … only when an admin asks.
    outbox.retry(message, agent)
    db.session.commit()
    assert outbox_delivery.deliver_pending().sent == 1
    assert received_ids(smtp) == [message.message_id]


@pytest.mark.smtp
def test_temporary_rejection_is_retried(app, smtp, smtp_url, buyer_thread, agent):
    message = queue(buyer_thread(), agent)
    smtp.reject_next(451, "4.3.0 Try again later", at="data")
    now = utcnow()
    assert outbox_delivery.deliver_one(message.id, now=now) is False
    db.session.refresh(message)
    assert message.send_status == SendStatus.PENDING
    assert message.last_send_error == "DATA: 451 4.3.0 Try again later"
    assert outbox_delivery.deliver_pending(now=now + timedelta(minutes=1)).sent == 1
    assert received_ids(smtp) == [message.message_id]


@pytest.mark.smtp
def test_concurrent_senders_in_threads_send_each_reply_once(
    app, smtp, smtp_url, buyer_thread, agent
):
    messages = [queue(buyer_thread(), agent, body=f"Reply {i}") for i in range(30)]
    # The web request's own try and three workers, all at once.
    first = messages[0].id
    summaries = run_together(
        app,
        lambda: outbox_delivery.OutboxSummary(sent=int(outbox_delivery.deliver_one(first))),
        *[outbox_delivery.deliver_pending] * 3,
    )
    assert sum(s.sent for s in summaries) == 30
    assert sum(s.failed + s.retrying for s in summaries) == 0
    ids = received_ids(smtp)
    assert sorted(ids) == sorted(m.message_id for m in messages)
    db.session.expire_all()
    statuses = db.session.scalars(
        select(Message.send_status).where(Message.direction == Direction.OUT)
    ).all()
    assert statuses == [SendStatus.SENT] * 30


@pytest.mark.smtp
def test_concurrent_worker_processes_send_each_reply_once(
    app, smtp, smtp_url, buyer_thread, agent, database_url
):
    count = 60
    messages = [queue(buyer_thread(), agent, body=f"Reply {i}") for i in range(count)]
    env = worker_environment(app.config, database_url, SMTP_URL=smtp_url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "outbox", "send"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    sent = [int(out.split()[0].removeprefix("sent=")) for out in outputs]
    assert sum(sent) == count, outputs
    ids = received_ids(smtp)
    assert len(ids) == count and set(ids) == {m.message_id for m in messages}


@pytest.mark.smtp
@pytest.mark.parametrize(
    ("scheme", "error"), [("smtp+starttls", "STARTTLS extension not supported"), ("smtps", "SSL")]
)
def test_tls_against_a_plain_server_keeps_the_reply_queued(
    app, smtp, buyer_thread, agent, scheme, error
):
    app.config["SMTP_URL"] = f"{scheme}://user:pass@127.0.0.1:{smtp.port}"
    message = queue(buyer_thread(), agent)
    assert outbox_delivery.deliver_one(message.id, timeout=5) is False
    db.session.refresh(message)
    assert message.send_status == SendStatus.PENDING
    assert error in message.last_send_error
    assert "pass" not in message.last_send_error
    assert smtp.messages == []


@pytest.mark.smtp
def test_timeout_is_temporary(app, buyer_thread, agent):
    # A server that accepts the connection and never greets.
    import socket

    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        app.config["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
        message = queue(buyer_thread(), agent)
        assert outbox_delivery.deliver_one(message.id, timeout=0.5) is False
    db.session.refresh(message)
    assert message.send_status == SendStatus.PENDING
    assert "timed out" in message.last_send_error


# --- round trip: Dovecot in, aiosmtpd out, Dovecot in again ----------------------------------


@pytest.mark.imap
@pytest.mark.smtp
def test_buyers_answer_to_our_reply_lands_in_the_same_thread(
    app, smtp, smtp_url, dovecot, channel, agent
):
    user = f"replies{next(_numbers)}-{os.getpid()}"
    dovecot.add_user(user, "imap-pass")
    app.config["MAIL_SOURCE"] = f"imap://{user}:imap-pass@127.0.0.1:{dovecot.port}/INBOX"
    imap = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    imap.login(user, "imap-pass")
    try:
        imap.append("INBOX", amazon_message(1, HELPDESK))
        assert poll_all().stored == 1
        thread = db.session.scalar(select(Thread))
        assert thread.awaiting_reply_since is not None
        inquiry = thread.messages[0]

        reply = queue(thread, agent, body="Dear buyer,\nthe parcel is on its way.\n")
        assert outbox_delivery.deliver_one(reply.id) is True
        [received] = smtp.messages
        ours = parse_mail(received.raw)
        assert ours["In-Reply-To"] == inquiry.message_id
        assert ours["Message-ID"] == reply.message_id

        # The buyer answers through Amazon's relay: new subject, threading headers only.
        answer = EmailMessage()
        answer["From"] = f"Jane - Amazon Marketplace <{thread.buyer_address}>"
        answer["To"] = HELPDESK
        answer["Subject"] = "One more question"
        answer["Message-ID"] = "<answer-1@amazonses.example>"
        answer["In-Reply-To"] = ours["Message-ID"]
        answer["References"] = f"{ours['References']} {ours['Message-ID']}"
        answer["Date"] = format_datetime(utcnow())
        answer.set_content("Can you also send an invoice?\n")
        # The same question with no threading headers starts a conversation of its own.
        control = EmailMessage()
        for header in ("From", "To", "Subject", "Date"):
            control[header] = answer[header]
        control["Message-ID"] = "<control-1@amazonses.example>"
        control.set_content("Can you also send an invoice?\n")
        imap.append("INBOX", answer.as_bytes())
        imap.append("INBOX", control.as_bytes())
    finally:
        imap.logout()

    assert poll_all().stored == 2
    db.session.expire_all()
    stored_answer = db.session.scalar(
        select(Message).where(Message.message_id == "<answer-1@amazonses.example>")
    )
    stored_control = db.session.scalar(
        select(Message).where(Message.message_id == "<control-1@amazonses.example>")
    )
    assert stored_answer.thread_id == thread.id
    assert stored_control.thread_id != thread.id
    assert [m.direction for m in thread.messages] == [Direction.IN, Direction.OUT, Direction.IN]
    # The buyer wrote again: the conversation waits for us once more.
    assert thread.awaiting_reply_since is not None
