"""System mail: queued in the outbox, sent by the worker's pass to the real SMTP server,
from MAIL_FROM, its links on PUBLIC_URL whatever host a request came in on."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Message, SendStatus
from portal.services import outbox_delivery, system_mail


@pytest.fixture
def smtp_url(app, smtp):
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{smtp.port}"
    return app.config["SMTP_URL"]


def test_links_are_built_on_public_url_without_a_request(app):
    app.config["PUBLIC_URL"] = "https://desk.example.com/support"
    url = system_mail.external_url("auth.login", next="/inbox")
    assert url == "https://desk.example.com/support/login?next=/inbox"


def test_links_ignore_the_host_a_request_names(app):
    app.config["PUBLIC_URL"] = "https://desk.example.com"
    with app.test_request_context("/login", headers={"Host": "evil.example"}):
        assert system_mail.external_url("auth.login") == "https://desk.example.com/login"


@pytest.mark.smtp
def test_the_worker_sends_it_from_mail_from_and_forgets_its_bytes(app, smtp, smtp_url):
    app.config["MAIL_FROM"] = "Acme Desk <desk@mail.example.com>"
    message = system_mail.queue_system_mail(
        "Kim@Example.com",
        subject="Your link",
        body=f"Open {system_mail.external_url('auth.login')} within the hour.\n",
        kind="test",
    )
    db.session.commit()
    assert message.thread_id is None and message.send_status == SendStatus.PENDING

    summary = outbox_delivery.deliver_pending()

    assert summary.line() == "sent=1 failed=0 retrying=0"
    [received] = smtp.messages
    assert received.mail_from == "desk@mail.example.com"
    assert received.rcpt_tos == ["kim@example.com"]
    mail = received.message
    assert mail["From"] == "Acme Desk <desk@mail.example.com>"
    assert mail["Subject"] == "Your link"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert f"Open {app.config['PUBLIC_URL']}/login within" in mail.get_content()
    db.session.expire_all()
    sent = db.session.get(Message, message.id)
    assert sent.send_status == SendStatus.SENT
    assert sent.raw is None  # the link it carried is not kept
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "system_mail.queued"))
    assert event.details == {"kind": "test", "message_id": message.message_id}


@pytest.mark.smtp
def test_a_refused_system_mail_is_failed_and_keeps_its_bytes_for_a_retry(app, smtp, smtp_url):
    smtp.reject_next(550, "no such user", at="rcpt")
    message = system_mail.queue_system_mail(
        "gone@example.com", subject="Hello", body="Hi.\n", kind="test"
    )
    db.session.commit()

    assert outbox_delivery.deliver_pending().failed == 1

    db.session.expire_all()
    failed = db.session.get(Message, message.id)
    assert failed.send_status == SendStatus.FAILED
    assert failed.raw and "550" in failed.last_send_error


def test_a_malformed_recipient_is_refused_before_queueing(app):
    with pytest.raises(system_mail.SystemMailError, match="not an e-mail address"):
        system_mail.queue_system_mail("no address", subject="Hi", body="Hi", kind="test")
