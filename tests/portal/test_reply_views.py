"""Replying from the thread page: compliance check, outbox, who may reply."""

from __future__ import annotations

import email
from email import policy

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Direction, Message, Role, SendStatus
from portal.services import canned as canned_service
from portal.services import threads as thread_service
from tests.helpers import csrf_token_from, sent_files, store_order


@pytest.fixture
def thread(buyer_thread):
    return buyer_thread


def reply(client, thread, **data):
    token = csrf_token_from(client.get(f"/threads/{thread.id}").get_data(as_text=True))
    return client.post(f"/threads/{thread.id}/reply", data={"csrf_token": token, **data})


def test_agent_reply_goes_out_from_the_helpdesk_address(app, client, login_as, thread):
    login_as(Role.AGENT, assigned=[thread.channel.organisation])
    response = reply(
        client, thread, body="Hello Jane, your parcel for order 203-1234567-1234567 left today."
    )
    assert response.status_code == 302
    out = db.session.scalar(select(Message).where(Message.direction == Direction.OUT))
    assert out.send_status == SendStatus.SENT
    [path] = sent_files(app)
    mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert mail["From"].addresses[0].addr_spec == "uk-kite@helpdesk.test"
    assert mail["To"].addresses[0].addr_spec == "jane123@marketplace.amazon.co.uk"
    assert mail["Subject"].startswith("Re: ")
    assert mail["In-Reply-To"] == thread.messages[0].message_id
    assert mail["Auto-Submitted"] == "no"
    db.session.refresh(thread)
    assert thread.awaiting_reply_since is None
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert "your parcel" in page and "Sent" in page


def test_a_reply_cannot_answer_a_note_or_another_reply(app, client, login_as, thread):
    agent = login_as(Role.AGENT, assigned=[thread.channel.organisation])
    note = thread_service.add_internal_note(thread, "Ask the warehouse", actor=agent)
    db.session.commit()
    first = reply(client, thread, body="Hello Jane, order 203-1234567-1234567 is on its way.")
    assert first.status_code == 302
    ours = db.session.scalar(
        select(Message).where(Message.direction == Direction.OUT, ~Message.is_internal_note)
    )
    for answered in (note, ours):
        response = reply(
            client, thread, body="Order 203-1234567-1234567: more news.", reply_to=str(answered.id)
        )
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert 'id="reply_to-error">Only a message from the buyer' in page
    assert len(sent_files(app)) == 1
    # The buyer's own message may be answered by id.
    buyer = thread.messages[0]
    response = reply(
        client, thread, body="Order 203-1234567-1234567 again.", reply_to=str(buyer.id)
    )
    assert response.status_code == 302
    mail = email.message_from_bytes(sent_files(app)[-1].read_bytes(), policy=policy.default)
    assert mail["In-Reply-To"] == buyer.message_id
    assert mail["Subject"] == f"Re: {buyer.subject}"


def test_compliance_warnings_need_confirmation(app, client, login_as, thread):
    login_as(Role.AGENT, assigned=[thread.channel.organisation])
    body = "See https://my-shop.example/returns for order 203-1234567-1234567."
    response = reply(client, thread, body=body)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Check before sending" in page and "my-shop.example" in page
    assert "send anyway" in page
    assert db.session.scalar(select(Message).where(Message.direction == Direction.OUT)) is None
    response = reply(client, thread, body=body, confirm_warnings="y")
    assert response.status_code == 302
    assert len(sent_files(app)) == 1
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.kind == "thread.compliance_confirmed")
    )
    assert event.details["warnings"] == ["outside_link"]


def test_missing_order_reference_is_flagged(client, login_as, thread):
    login_as(Role.AGENT, assigned=[thread.channel.organisation])
    response = reply(client, thread, body="Thanks, it is on its way.")
    assert response.status_code == 422
    assert "order" in response.get_data(as_text=True).lower()


def test_empty_reply_error_beside_the_field(client, login_as, thread):
    login_as(Role.AGENT, assigned=[thread.channel.organisation])
    response = reply(client, thread, body="   ")
    assert response.status_code == 422
    assert 'id="body-error"' in response.get_data(as_text=True)


@pytest.mark.smtp  # a real refused connection on loopback
def test_smtp_down_leaves_the_reply_queued(app, client, login_as, thread):
    app.config["SMTP_URL"] = "smtp://127.0.0.1:9"  # nothing listens on the discard port
    login_as(Role.AGENT, assigned=[thread.channel.organisation])
    response = reply(client, thread, body="On its way, order 203-1234567-1234567.")
    assert response.status_code == 302
    out = db.session.scalar(select(Message).where(Message.direction == Direction.OUT))
    assert out.send_status == SendStatus.PENDING and out.last_send_error
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert "Queued, retrying" in page


def test_sellers_reply_only_when_allowed(client, login_as, thread):
    organisation = thread.channel.organisation
    login_as(Role.SELLER, organisation=organisation)
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert "Send reply" not in page
    assert reply(client, thread, body="Hi, order 203-1234567-1234567").status_code == 403
    organisation.sellers_can_reply = True
    db.session.commit()
    assert "Send reply" in client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert (
        reply(client, thread, body="Hi, order 203-1234567-1234567 ships today.").status_code == 302
    )


def test_canned_reply_fills_the_composer_without_javascript(client, login_as, thread):
    agent = login_as(Role.AGENT, assigned=[thread.channel.organisation])
    canned = canned_service.create_canned_reply(
        organisation=thread.channel.organisation,
        title="Shipped",
        body="Dear {buyer_name}, order {order_id} has shipped. {agent_name}",
        actor=agent,
    )
    db.session.commit()
    page = client.get(f"/threads/{thread.id}?canned={canned.id}").get_data(as_text=True)
    assert "Dear Jane, order 203-1234567-1234567 has shipped." in page


ORDER_REPLY = "Your {item_title} goes with {carrier}, tracking {tracking_number}."


def unfilled_notice(page: str) -> str:
    return page.split('id="unfilled-placeholders"', 1)[1].split("</p>", 1)[0]


def test_order_placeholders_fill_the_composer_from_the_stored_order(client, login_as, thread):
    agent = login_as(Role.AGENT, assigned=[thread.channel.organisation])
    store_order(thread.channel, thread.order_id)
    canned = canned_service.create_canned_reply(
        organisation=thread.channel.organisation, title="Where", body=ORDER_REPLY, actor=agent
    )
    db.session.commit()
    page = client.get(f"/threads/{thread.id}?canned={canned.id}").get_data(as_text=True)
    assert (
        "Your Garden Kneeler Pad, Green and Silicone Baking Mats (2-pack) goes with "
        "Royal Mail, tracking RR123456789GB." in page
    )
    assert 'data-unfilled="" hidden' in page


def test_a_placeholder_without_a_value_is_flagged_and_never_sent(app, client, login_as, thread):
    agent = login_as(Role.AGENT, assigned=[thread.channel.organisation])
    # The order is stored, but no package yet: no carrier, no tracking number.
    store_order(thread.channel, thread.order_id, fulfillment_status="UNSHIPPED", packages=[])
    canned = canned_service.create_canned_reply(
        organisation=thread.channel.organisation, title="Where", body=ORDER_REPLY, actor=agent
    )
    db.session.commit()
    page = client.get(f"/threads/{thread.id}?canned={canned.id}").get_data(as_text=True)
    text = (
        "Your Garden Kneeler Pad, Green and Silicone Baking Mats (2-pack) goes with "
        "{carrier}, tracking {tracking_number}."
    )
    assert text in page  # left in the text, never an empty string
    notice = unfilled_notice(page)
    assert 'data-unfilled="carrier tracking_number">' in notice  # shown, not hidden
    assert "<code>{carrier}</code>, <code>{tracking_number}</code>" in notice
    # Sending it as it is, even with Amazon's warnings confirmed, is refused beside the field.
    response = reply(client, thread, body=text, confirm_warnings="y")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert (
        '<p class="error" id="body-error">This thread has no value for {carrier}, '
        "{tracking_number}: replace them with the words to send, or delete them.</p>"
    ) in page
    assert text in page  # what was written is kept
    assert db.session.scalar(select(Message).where(Message.direction == Direction.OUT)) is None
    assert sent_files(app) == []
    # Replaced, it goes.
    replaced = text.replace("{carrier}, tracking {tracking_number}", "Royal Mail")
    response = reply(client, thread, body=replaced, confirm_warnings="y")
    assert response.status_code == 302
    assert len(sent_files(app)) == 1


def test_the_seller_business_decides_whether_its_sellers_reply(client, login_as, thread, make_user):
    organisation = thread.channel.organisation
    login_as(Role.SELLER, organisation=organisation)
    page = client.get(f"/orgs/{organisation.id}").get_data(as_text=True)
    assert "Only the support team replies" in page
    token = csrf_token_from(page)
    response = client.post(
        f"/orgs/{organisation.id}/reply-permission", data={"csrf_token": token, "allowed": "1"}
    )
    assert response.status_code == 302
    db.session.refresh(organisation)
    assert organisation.sellers_can_reply
    assert "Send reply" in client.get(f"/threads/{thread.id}").get_data(as_text=True)
    event = db.session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()))
    assert event.organisation_id == organisation.id


def test_agents_and_other_sellers_cannot_change_reply_permission(
    client, auth, thread, make_user, make_org
):
    organisation = thread.channel.organisation
    for user in (
        make_user(Role.AGENT, assigned=[organisation]),
        make_user(Role.SELLER, organisation=make_org("Other Ltd")),
    ):
        auth.login(user.email)
        token = csrf_token_from(client.get("/dashboard").get_data(as_text=True))
        response = client.post(
            f"/orgs/{organisation.id}/reply-permission", data={"csrf_token": token, "allowed": "1"}
        )
        assert response.status_code in (403, 404)
        auth.logout()
    db.session.refresh(organisation)
    assert not organisation.sellers_can_reply


@pytest.mark.parametrize(
    ("button", "status"), [("send_close", "closed"), ("send_pending", "pending")]
)
def test_send_and_close_or_set_pending(app, client, login_as, thread, button, status):
    login_as(Role.AGENT, assigned=[thread.channel.organisation])
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert 'value="Send and close"' in page and 'value="Send and set pending"' in page
    body = "Hello Jane, order 203-1234567-1234567 left today."
    response = reply(client, thread, body=body, **{button: "y"})
    assert response.status_code == 302
    assert len(sent_files(app)) == 1
    db.session.refresh(thread)
    assert thread.status.value == status and thread.awaiting_reply_since is None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "thread.status_changed"))
    assert event.details == {"from": "open", "to": status}


def test_a_refused_send_and_close_changes_no_status(app, client, login_as, thread):
    login_as(Role.AGENT, assigned=[thread.channel.organisation])
    response = reply(client, thread, body="Visit https://example.com", send_close="y")
    assert response.status_code == 422  # the compliance warning stops it
    db.session.refresh(thread)
    assert thread.status.value == "open" and sent_files(app) == []
