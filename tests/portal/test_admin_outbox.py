"""Admin console: the outbox page, with retry and cancel through the outbox service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Message, Role, SendStatus
from portal.services import outbox as outbox_service
from portal.services import outbox_delivery
from portal.sqltypes import utcnow
from tests.helpers import csrf_token_from

SMTP_ERROR = "550 5.1.1 <jane@marketplace.amazon.co.uk>: Recipient address rejected"


@pytest.fixture
def reply(app, make_thread, make_channel, make_user):
    """A queued reply in the state asked for, as the sender would have left it."""

    def factory(status: SendStatus = SendStatus.FAILED, *, attempts: int = 3) -> Message:
        channel = make_channel("UK", address=f"uk-{attempts}-{status.value}@helpdesk.test")
        thread = make_thread(channel, buyer_address="jane@marketplace.amazon.co.uk")
        author = make_user(Role.AGENT, assigned=[channel.organisation])
        message = outbox_service.queue_reply(thread, body="Your parcel left today.", author=author)
        message.send_status = status
        message.send_attempts = attempts
        message.last_send_error = SMTP_ERROR if status != SendStatus.SENT else None
        message.next_attempt_at = utcnow() + timedelta(minutes=8)
        if status == SendStatus.FAILED:
            message.next_attempt_at = None
        db.session.commit()
        return message

    return factory


def post(client, path):
    token = csrf_token_from(client.get("/admin/outbox").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token})


def sent_files(app) -> list[Path]:
    return sorted(Path(app.config["SMTP_URL"].removeprefix("outbox:")).glob("*.eml"))


def test_outbox_lists_pending_and_failed_replies_with_the_smtp_error(client, admin, reply):
    failed = reply(SendStatus.FAILED, attempts=3)
    pending = reply(SendStatus.PENDING, attempts=2)
    sent = reply(SendStatus.SENT, attempts=1)
    cancelled = reply(SendStatus.CANCELLED, attempts=4)
    page = client.get("/admin/outbox").get_data(as_text=True)
    assert f'id="reply-{failed.id}"' in page
    assert f'id="reply-{pending.id}"' in page
    assert f'id="reply-{sent.id}"' not in page
    assert f'id="reply-{cancelled.id}"' not in page
    row = page.split(f'id="reply-{pending.id}"', 1)[1].split("</tr>", 1)[0]
    assert "pending" in row
    assert '<td class="num">2</td>' in row
    assert pending.next_attempt_at.strftime("%d %b %Y, %H:%M UTC") in row
    assert "Recipient address rejected" in row
    assert f"/threads/{pending.thread_id}" in row


def test_retry_a_failed_reply_sends_it_at_the_next_pass(app, client, admin, reply):
    message = reply(SendStatus.FAILED)
    response = post(client, f"/admin/outbox/{message.id}/retry")
    assert response.status_code == 302
    db.session.refresh(message)
    assert message.send_status == SendStatus.PENDING
    assert message.next_attempt_at <= utcnow()
    [event] = db.session.scalars(
        select(AuditEvent).where(AuditEvent.kind == "thread.reply_retried")
    ).all()
    assert event.target_id == message.id
    assert event.details["was"] == "failed"
    assert outbox_delivery.deliver_pending().sent == 1
    db.session.refresh(message)
    assert message.send_status == SendStatus.SENT
    assert len(sent_files(app)) == 1


def test_cancel_a_reply(client, admin, reply):
    message = reply(SendStatus.PENDING)
    response = post(client, f"/admin/outbox/{message.id}/cancel")
    assert response.status_code == 302
    db.session.refresh(message)
    assert message.send_status == SendStatus.CANCELLED
    assert [e.kind for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))][
        -1
    ] == "thread.reply_cancelled"
    assert outbox_delivery.deliver_pending().sent == 0
    assert f'id="reply-{message.id}"' not in client.get("/admin/outbox").get_data(as_text=True)


def test_a_sent_reply_cannot_be_retried_or_cancelled(client, admin, reply):
    message = reply(SendStatus.SENT)
    for action in ("retry", "cancel"):
        page = post(client, f"/admin/outbox/{message.id}/{action}")
        assert page.status_code == 302
        db.session.refresh(message)
        assert message.send_status == SendStatus.SENT
    # Each refusal is flashed on the next page.
    assert "Only a failed or pending reply can be cancelled." in client.get(
        "/admin/outbox"
    ).get_data(as_text=True)


def test_a_reply_being_sent_is_left_to_its_sender(client, admin, reply):
    message = reply(SendStatus.PENDING)
    message.send_claimed_until = utcnow() + timedelta(minutes=3)
    db.session.commit()
    post(client, f"/admin/outbox/{message.id}/cancel")
    db.session.refresh(message)
    assert message.send_status == SendStatus.PENDING
    assert "being sent right now" in client.get("/admin/outbox").get_data(as_text=True)


def test_outbox_actions_need_csrf_and_an_outbound_message(client, admin, reply, make_thread):
    message = reply(SendStatus.FAILED)
    assert client.post(f"/admin/outbox/{message.id}/retry").status_code == 400
    inbound = make_thread().messages[0]
    assert post(client, f"/admin/outbox/{inbound.id}/retry").status_code == 404
