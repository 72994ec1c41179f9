"""Replies: the outbox service and its claims (no network); the MIME it sends is built and
checked by ingest/mail/compose.py, tested in tests/ingest/mail/test_compose.py.

Delivery here goes to an `outbox:` folder; the real SMTP server is exercised in
tests/integration/test_replies.py.
"""

from __future__ import annotations

from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest.mail import smtp
from ingest.scheduler import build_scheduler, outbox_job
from portal.extensions import db
from portal.models import (
    AuditEvent,
    ChannelStatus,
    Direction,
    Message,
    Role,
    SendStatus,
    Thread,
    ThreadStatus,
)
from portal.services import outbox, outbox_delivery
from portal.services import threads as thread_service
from portal.sqltypes import utcnow
from tests.helpers import dsn

LONG_ID = "<0100018c9a7b2c3d-4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8-000000@eu-west-1.amazonses.com>"


def parse(raw: bytes):
    # SMTP's CRLF as LF, so decoded bodies compare to Python text.
    return BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))


@pytest.fixture
def buyer_thread(app, make_channel):
    """A UK thread with two buyer messages; the newest carries References."""
    channels = []

    def factory(
        channel=None, *, subject="Inquiry from Amazon customer Jane (Order: 203-1234567-1234567)"
    ):
        if channel is None:
            if not channels:
                channels.append(make_channel("UK", address="uk-shop@helpdesk.test"))
            channel = channels[0]
        received = utcnow() - timedelta(hours=2)
        thread = Thread(
            channel=channel,
            organisation_id=channel.organisation_id,
            subject=subject,
            normalized_subject=subject.lower(),
            buyer_name="Jane",
            buyer_address="jane123@marketplace.amazon.co.uk",
            order_id="203-1234567-1234567",
            last_message_at=received,
            awaiting_reply_since=received,
        )
        for i, (message_id, refs) in enumerate(
            [("<first@amazon.co.uk>", ""), (LONG_ID, "<first@amazon.co.uk>")]
        ):
            db.session.add(
                Message(
                    thread=thread,
                    channel=channel,
                    direction=Direction.IN,
                    message_id=message_id,
                    references=refs,
                    content_hash=f"hash-{i}",
                    subject=subject if i == 0 else f"RE: {subject}",
                    from_address=thread.buyer_address,
                    to_addresses=channel.helpdesk_address,
                    text_body="Where is my parcel?",
                    created_at=received + timedelta(minutes=i),
                )
            )
        db.session.commit()
        return thread

    return factory


@pytest.fixture
def agent(make_user):
    return make_user(Role.ADMIN, email="agent@example.com")


@pytest.fixture
def outbox_dir(app) -> Path:
    return Path(app.config["SMTP_URL"].removeprefix("outbox:"))


def queue(thread, agent, body="Hello Jane,\nit left our warehouse today.\n", **kwargs):
    message = outbox.queue_reply(thread, body=body, author=agent, **kwargs)
    db.session.commit()
    return message


def test_retry_delay_grows_and_is_capped():
    delays = [outbox_delivery.retry_delay(n).total_seconds() for n in range(1, 10)]
    assert delays[:4] == [30, 60, 120, 240]
    assert max(delays) == 3600 and delays == sorted(delays)


# --- queue_reply ------------------------------------------------------------------------


def test_queue_reply_stores_a_pending_message_ready_to_send(app, buyer_thread, agent):
    thread = buyer_thread()
    message = queue(thread, agent, attachments=[("Rechnung.pdf", "application/pdf", b"%PDF-1.4")])
    assert message.direction == Direction.OUT
    assert message.send_status == SendStatus.PENDING
    assert message.send_attempts == 0 and message.send_claimed_until is None
    assert message.next_attempt_at is not None
    assert message.channel_id == thread.channel_id and message.thread_id == thread.id
    assert message.from_address == "uk-shop@helpdesk.test"
    assert message.to_addresses == "jane123@marketplace.amazon.co.uk"
    assert message.author_id == agent.id
    # It answers the newest buyer message, whose subject already had a prefix.
    assert message.subject == "Re: Inquiry from Amazon customer Jane (Order: 203-1234567-1234567)"
    assert message.in_reply_to == LONG_ID
    assert message.references == f"<first@amazon.co.uk> {LONG_ID}"
    assert message.text_body == message.visible_text == "Hello Jane,\nit left our warehouse today."
    assert message.snippet == "Hello Jane, it left our warehouse today."
    assert [(a.filename, a.size, a.data) for a in message.attachments] == [
        ("Rechnung.pdf", 8, b"%PDF-1.4")
    ]
    stored = parse(message.raw)
    assert stored["Message-ID"] == message.message_id
    assert message.size == len(message.raw)
    assert thread.awaiting_reply_since is None
    assert thread.last_message_at >= message.created_at
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "thread.reply_queued"))
    assert event.actor_id == agent.id and event.target_id == message.id
    assert event.organisation_id == thread.organisation_id
    assert event.details["message_id"] == message.message_id


def test_queue_reply_to_a_chosen_message(app, buyer_thread, agent):
    thread = buyer_thread()
    first = thread.messages[0]
    message = queue(thread, agent, reply_to=first)
    assert message.in_reply_to == "<first@amazon.co.uk>"
    assert message.references == "<first@amazon.co.uk>"
    other = buyer_thread()
    with pytest.raises(outbox.ReplyError, match="not part of this conversation"):
        outbox.queue_reply(thread, body="Hi", author=agent, reply_to=other.messages[0])


def test_queue_reply_answers_only_the_buyers_mail(app, buyer_thread, agent):
    # A note's id is <note-…@sellerdesk.invalid> and its subject empty: the buyer got
    # that In-Reply-To and a reply with its subject lost.
    thread = buyer_thread()
    buyers = {m.id for m in thread.messages}  # two
    note = thread_service.add_internal_note(thread, "Check the warehouse first", actor=agent)
    earlier = queue(thread, agent)
    db.session.flush()
    for ours in (note, earlier):
        with pytest.raises(outbox.ReplyError, match="Only a message from the buyer"):
            outbox.queue_reply(thread, body="Hi", author=agent, reply_to=ours)
    assert outbox.answerable_message_ids(thread) == buyers
    assert outbox.default_reply_to(thread).message_id == LONG_ID  # the newest buyer's


def test_stored_subject_with_line_breaks_is_folded_not_injected(app, buyer_thread, agent):
    thread = buyer_thread(subject="Question\r\nBcc: victim@example.com")
    message = queue(thread, agent, reply_to=thread.messages[0])
    assert message.subject == "Re: Question Bcc: victim@example.com"
    assert "Bcc" not in parse(message.raw)


def _raises(message_fragment):
    return pytest.raises(outbox.ReplyError, match=message_fragment)


@pytest.mark.parametrize(
    ("change", "kwargs", "error"),
    [
        (None, {"body": "  \r\n \n"}, "Write a reply"),
        ("no_buyer", {}, "no buyer address"),
        ("disabled", {}, "disabled"),
        (
            None,
            {"attachments": [("a.pdf", "application/pdf", b"x" * (6 * 1024 * 1024))] * 2},
            "at most 10 MB",
        ),
        (None, {"subject": "Re: x\r\nBcc: victim@example.com"}, "subject contains a line break"),
        (None, {"attachments": [("a\n.pdf", "application/pdf", b"x")]}, "file name contains"),
        ("bad_name", {}, "sender name contains"),
        # A canned reply's placeholder the thread had no value for, left in the text.
        (None, {"body": "Tracking: {tracking_number}"}, r"no value for \{tracking_number\}"),
    ],
)
def test_queue_reply_refuses_bad_input(app, buyer_thread, agent, change, kwargs, error):
    thread = buyer_thread()
    if change == "no_buyer":
        thread.buyer_address = ""
    elif change == "disabled":
        thread.channel.status = ChannelStatus.DISABLED
    elif change == "bad_name":
        thread.channel.organisation.name = "Acme\r\nBcc: x@example.com"
    db.session.commit()
    kwargs = {"body": "Hello", **kwargs}
    with _raises(error):
        outbox.queue_reply(thread, author=agent, **kwargs)
    db.session.rollback()
    assert db.session.scalar(select(Message).where(Message.direction == Direction.OUT)) is None


def test_attachments_of_exactly_10_mb_are_accepted(app, buyer_thread, agent):
    data = b"x" * outbox.MAX_ATTACHMENTS_BYTES
    message = queue(buyer_thread(), agent, attachments=[("big.pdf", "application/pdf", data)])
    assert message.attachments[0].size == len(data)


# --- delivery through an outbox: folder ------------------------------------------------------


def test_deliver_one_writes_the_stored_bytes_once(app, buyer_thread, agent, outbox_dir):
    message = queue(buyer_thread(), agent)
    assert outbox_delivery.deliver_one(message.id) is True
    files = list(outbox_dir.glob("*.eml"))
    assert [f.name for f in files] == [smtp.outbox_filename(message.message_id)]
    db.session.refresh(message)
    assert files[0].read_bytes() == message.raw
    assert message.send_status == SendStatus.SENT
    assert message.sent_at is not None and message.send_claimed_until is None
    assert message.send_attempts == 1 and message.last_send_error is None
    # Nothing left to do: a second try or a worker pass sends nothing.
    assert outbox_delivery.deliver_one(message.id) is False
    assert outbox_delivery.deliver_pending().line() == "sent=0 failed=0 retrying=0"
    assert len(list(outbox_dir.iterdir())) == 1


def test_deliver_pending_sends_each_reply_once(app, buyer_thread, agent, outbox_dir):
    messages = [queue(buyer_thread(), agent, body=f"Reply {i}") for i in range(5)]
    assert outbox_delivery.deliver_pending().line() == "sent=5 failed=0 retrying=0"
    assert outbox_delivery.deliver_pending().line() == "sent=0 failed=0 retrying=0"
    assert sorted(f.name for f in outbox_dir.glob("*.eml")) == sorted(
        smtp.outbox_filename(m.message_id) for m in messages
    )


def test_a_claimed_reply_is_left_to_its_sender(app, buyer_thread, agent, outbox_dir):
    message = queue(buyer_thread(), agent)
    now = utcnow()
    # Another sender (the web request, another worker) holds it.
    assert outbox_delivery.claim_reply(message.id, now) is not None
    assert outbox_delivery.claim_reply(message.id, now) is None
    assert outbox_delivery.deliver_one(message.id, now=now) is False
    assert outbox_delivery.deliver_pending(now=now).line() == "sent=0 failed=0 retrying=0"
    assert not outbox_dir.exists() or not list(outbox_dir.iterdir())
    # That sender died: once its claim runs out, the message goes out.
    later = now + outbox_delivery.CLAIM_TTL + timedelta(seconds=1)
    assert outbox_delivery.deliver_pending(now=later).line() == "sent=1 failed=0 retrying=0"
    db.session.refresh(message)
    assert message.send_attempts == 2 and message.send_status == SendStatus.SENT


def test_unwritable_outbox_retries_with_backoff_then_delivers(app, buyer_thread, agent, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    app.config["SMTP_URL"] = f"outbox:{blocked}"
    message = queue(buyer_thread(), agent)
    now = utcnow()
    assert outbox_delivery.deliver_one(message.id, now=now) is False
    db.session.refresh(message)
    assert message.send_status == SendStatus.PENDING
    assert message.last_send_error.startswith("outbox:")
    assert outbox.describe_status(message).startswith("queued, retrying (outbox:")
    assert message.next_attempt_at == now + timedelta(seconds=30)
    assert message.send_claimed_until is None
    # Backing off: not due yet.
    assert outbox_delivery.deliver_pending(now=now + timedelta(seconds=10)).retrying == 0
    summary = outbox_delivery.deliver_pending(now=now + timedelta(seconds=31))
    assert summary.line() == "sent=0 failed=0 retrying=1"
    db.session.refresh(message)
    assert message.send_attempts == 2
    assert message.next_attempt_at == now + timedelta(seconds=31 + 60)
    # Fixed: the next due pass delivers it.
    blocked.unlink()
    assert outbox_delivery.deliver_pending(now=now + timedelta(minutes=5)).sent == 1
    assert (blocked / smtp.outbox_filename(message.message_id)).read_bytes() == message.raw


def test_bad_smtp_url_keeps_replies_pending(app, buyer_thread, agent):
    app.config["SMTP_URL"] = "smtpx://mail.example.com"
    message = queue(buyer_thread(), agent)
    assert outbox_delivery.deliver_one(message.id) is False
    db.session.refresh(message)
    assert message.send_status == SendStatus.PENDING
    assert message.last_send_error.startswith("SMTP_URL: unsupported SMTP_URL scheme")


# --- retry and cancel -------------------------------------------------------------------


def test_cancel_a_pending_reply_restores_the_response_clock(app, buyer_thread, agent, outbox_dir):
    thread = buyer_thread()
    waiting_since = thread.awaiting_reply_since
    message = queue(thread, agent)
    assert thread.awaiting_reply_since is None
    outbox.cancel(message, agent)
    db.session.commit()
    assert message.send_status == SendStatus.CANCELLED
    assert outbox.describe_status(message) == "cancelled"
    assert thread.awaiting_reply_since == waiting_since
    assert outbox_delivery.deliver_pending().sent == 0
    assert not outbox_dir.exists()
    kinds = db.session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id)).all()
    assert kinds[-1] == "thread.reply_cancelled"
    with _raises("Only a failed or pending reply"):
        outbox.cancel(message, agent)
    with _raises("Only a failed or pending reply"):
        outbox.retry(message, agent)


def test_cancel_refused_while_a_sender_holds_the_reply(app, buyer_thread, agent):
    message = queue(buyer_thread(), agent)
    assert outbox_delivery.claim_reply(message.id, utcnow()) is not None
    with _raises("being sent right now"):
        outbox.cancel(message, agent)
    db.session.rollback()
    db.session.refresh(message)
    assert message.send_status == SendStatus.PENDING


def test_retry_a_failed_reply(app, buyer_thread, agent, outbox_dir):
    thread = buyer_thread()
    message = queue(thread, agent)
    message.send_status = SendStatus.FAILED
    message.last_send_error = "DATA: 554 5.7.1 rejected"
    message.next_attempt_at = None
    db.session.commit()
    assert outbox.describe_status(message) == "failed: DATA: 554 5.7.1 rejected"
    outbox.retry(message, agent)
    db.session.commit()
    assert message.send_status == SendStatus.PENDING and message.next_attempt_at is not None
    assert outbox_delivery.deliver_pending().sent == 1
    db.session.refresh(message)
    assert message.send_status == SendStatus.SENT
    assert outbox.describe_status(message) == "sent"
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "thread.reply_retried"))
    assert event.details["was"] == "failed" and event.actor_id == agent.id
    with _raises("Only a failed or pending reply"):
        outbox.retry(message, agent)


def test_list_outbox_shows_what_is_stuck(app, buyer_thread, agent):
    sent = queue(buyer_thread(), agent)
    outbox_delivery.deliver_one(sent.id)
    pending = queue(buyer_thread(), agent)
    assert outbox.list_outbox() == [pending]
    assert set(outbox.list_outbox(statuses=list(SendStatus))) == {sent, pending}


def test_thread_status_is_left_to_the_agent(app, buyer_thread, agent):
    thread = buyer_thread()
    queue(thread, agent)
    assert thread.status == ThreadStatus.OPEN


# --- the CLI and the worker job -------------------------------------------------------------


def test_cli_outbox_send_and_list(app, runner, buyer_thread, agent, tmp_path):
    message = queue(buyer_thread(), agent)
    result = runner.invoke(args=["outbox", "list"])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith(f"{message.id}\tpending\tattempts=0\t")
    assert message.message_id in line and "jane123@marketplace.amazon.co.uk" in line

    blocked = tmp_path / "blocked"
    blocked.write_text("")
    app.config["SMTP_URL"] = f"outbox:{blocked}"
    result = runner.invoke(args=["outbox", "send"])
    assert result.exit_code == 1
    assert result.output.strip() == "sent=0 failed=0 retrying=1"
    result = runner.invoke(args=["outbox", "list"])
    assert "attempts=1" in result.output and "outbox: " in result.output

    blocked.unlink()
    db.session.execute(db.update(Message).values(next_attempt_at=utcnow()))
    db.session.commit()
    result = runner.invoke(args=["outbox", "send"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "sent=1 failed=0 retrying=0"
    assert runner.invoke(args=["outbox", "list"]).output == ""
    assert "\tsent\t" in runner.invoke(args=["outbox", "list", "--all"]).output


def test_worker_schedules_the_outbox_job(app):
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = build_scheduler(app, BackgroundScheduler)
    job = scheduler.get_job("send-replies")
    assert job is not None
    assert job.max_instances == 1 and job.coalesce is True
    assert job.trigger.interval == timedelta(seconds=5)


def test_outbox_job_sends_in_its_own_app_context(app, buyer_thread, agent, outbox_dir):
    message = queue(buyer_thread(), agent)
    outbox_job(app)
    assert (outbox_dir / smtp.outbox_filename(message.message_id)).exists()
    db.session.refresh(message)
    assert message.send_status == SendStatus.SENT


# --- a sent reply that bounces ----------------------------------------------------------------


def test_a_bounce_marks_our_sent_reply_failed_and_restarts_the_buyers_clock(
    app, buyer_thread, agent, ingest
):
    thread = buyer_thread()
    waiting_since = thread.awaiting_reply_since
    reply = queue(thread, agent)
    assert outbox_delivery.deliver_one(reply.id) is True
    db.session.refresh(thread)
    assert thread.awaiting_reply_since is None  # answered

    assert ingest(dsn(reply.message_id)) == "stored"
    db.session.expire_all()
    reply = db.session.get(Message, reply.id)
    assert reply.send_status == SendStatus.FAILED
    assert reply.last_send_error == ("bounced: 550 5.1.1 Recipient address rejected: alias expired")
    assert outbox.describe_status(reply).startswith("failed: bounced: 550 5.1.1")
    assert reply in outbox.list_outbox()
    # It no longer answers the buyer: the clock runs from their oldest message again.
    thread = db.session.get(Thread, thread.id)
    assert thread.awaiting_reply_since == waiting_since
    # The bounce is on the reply's thread, for the agent to read.
    bounce = db.session.scalar(
        select(Message).where(Message.message_id == "<dsn-1@mx.example.net>")
    )
    assert bounce.thread_id == thread.id and bounce.is_bounce
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "thread.reply_bounced"))
    assert event.details["reason"] == "550 5.1.1 Recipient address rejected: alias expired"

    # A second bounce for the same reply changes nothing more.
    assert ingest(dsn(reply.message_id, n=2)) == "stored"
    assert (
        db.session.scalar(
            select(db.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.kind == "thread.reply_bounced")
        )
        == 1
    )


def test_a_bounce_on_another_channel_or_of_mail_not_ours_changes_no_reply(
    app, buyer_thread, agent, ingest, make_channel
):
    reply = queue(buyer_thread(), agent)
    outbox_delivery.deliver_one(reply.id)
    other = make_channel("DE", address="de-shop@helpdesk.test")
    # Our reply's id cited in a bounce that reached another seller's channel, and a
    # bounce citing an id we never sent: neither touches the reply.
    ingest(dsn(reply.message_id, to=other.helpdesk_address, n=3))
    ingest(dsn("<someone-else@example.com>", n=4))
    db.session.expire_all()
    assert db.session.get(Message, reply.id).send_status == SendStatus.SENT


def test_the_bounces_of_one_batch_are_looked_up_together_and_each_joins_its_reply(
    app, buyer_thread, agent, make_channel, monkeypatch
):
    from ingest.pipeline import ingest_batch

    first = buyer_thread()
    second = buyer_thread(subject="Inquiry from Amazon customer Jane (Order: 203-7654321-7654321)")
    replies = [queue(first, agent), queue(second, agent)]
    for reply in replies:
        assert outbox_delivery.deliver_one(reply.id) is True
    other = make_channel("DE", address="de-shop@helpdesk.test")
    lookups = []
    original = outbox.bounced_replies
    monkeypatch.setattr(
        outbox, "bounced_replies", lambda cited: lookups.append(cited) or original(cited)
    )
    # Each reply bounced, the first twice; and the first's id cited on another channel.
    mails = [
        dsn(replies[1].message_id, n=1),
        dsn(replies[0].message_id, n=2),
        dsn(replies[0].message_id, to=other.helpdesk_address, n=3),
        dsn(replies[0].message_id, n=4),
    ]
    outcomes = ingest_batch(
        [(None, raw) for raw in mails],
        mailbox=None,
        uidvalidity=None,
        inbound_domain=app.config["INBOUND_DOMAIN"],
        max_attachment_bytes=app.config["MAX_ATTACHMENT_BYTES"],
        now=utcnow(),
    )
    db.session.commit()
    assert outcomes == ["stored"] * 4
    assert len(lookups) == 1  # one query for the batch, not one per bounce
    db.session.expire_all()
    for reply in replies:
        assert db.session.get(Message, reply.id).send_status == SendStatus.FAILED
    thread_of = {
        m.message_id: m.thread_id
        for m in db.session.scalars(select(Message).where(Message.is_bounce.is_(True)))
    }
    assert thread_of["<dsn-1@mx.example.net>"] == second.id
    assert thread_of["<dsn-2@mx.example.net>"] == first.id
    assert thread_of["<dsn-3@mx.example.net>"] not in (first.id, second.id)
    # The second bounce of the same reply joins its thread and changes nothing more.
    assert thread_of["<dsn-4@mx.example.net>"] == first.id
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.kind == "thread.reply_bounced")
    ).all()
    assert len(events) == 2
