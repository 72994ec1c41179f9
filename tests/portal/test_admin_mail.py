"""Admin console: unrouted mail (view, assign, discard) and quarantine (download, retry)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

import ingest.mail.parse
from ingest.mail.parse import UnparseableMessage
from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import AuditEvent, Message, Role, Thread
from portal.services import admin_mail
from tests.helpers import csrf_token_from
from tests.mailgen import runaway_message

ROOT = Path(__file__).resolve().parents[2]


def post(client, path, data=None, *, page, **kwargs):
    token = csrf_token_from(client.get(page).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)


def only(stmt):
    # The requests ran in their own sessions (and SQLite may reuse a deleted row's id).
    db.session.expire_all()
    rows = db.session.scalars(stmt).all()
    assert len(rows) == 1, rows
    return rows[0]


def unrouted_message() -> Message:
    return only(
        select(Message).where(Message.channel_id.is_(None), Message.quarantine_reason.is_(None))
    )


def message_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Message))


def events(kind: str) -> list[AuditEvent]:
    return db.session.scalars(select(AuditEvent).where(AuditEvent.kind == kind)).all()


# --- access and layering -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/unrouted", "/admin/quarantine", "/admin/outbox"])
@pytest.mark.parametrize("role", [Role.AGENT, Role.SELLER])
def test_only_admins_see_waiting_mail(client, login_as, path, role):
    login_as(role)
    assert client.get(path).status_code == 403


def test_admin_pages_and_services_load_the_mail_package_only():
    # The admin actions reach the parser and the IMAP source through the mail package
    # (`ingest.mail`), which imports nothing of the portal: loading the web side never
    # loads the pipeline.
    code = (
        "import sys\n"
        "import portal.admin.views, portal.services.admin_mail, portal.services.mailbox_config\n"
        "import portal.services.health\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('ingest.')"
        " and m != 'ingest.mail' and not m.startswith('ingest.mail.'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


# --- unrouted ---------------------------------------------------------------------------


def test_unrouted_list_and_sanitised_view(app, client, admin, drop_mail):
    drop_mail("hostile_html.eml", replace={"@helpdesk.test": "@elsewhere.test"})
    assert poll_all().unrouted == 1
    message = unrouted_message()
    listing = client.get("/admin/unrouted").get_data(as_text=True)
    assert f"/admin/unrouted/{message.id}" in listing
    page = client.get(f"/admin/unrouted/{message.id}").get_data(as_text=True)
    assert "<script" not in page.split("</head>", 1)[1].replace('<script src="/static', "")
    frame = client.get(f"/admin/unrouted/{message.id}/html")
    assert frame.status_code == 200
    assert frame.headers["Content-Security-Policy"].startswith("sandbox")
    body = frame.get_data(as_text=True).lower()
    assert "<script" not in body
    assert "onerror" not in body and "javascript:" not in body


def test_assign_threads_into_a_new_thread_of_the_channel(app, client, admin, uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml", replace={"uk-chan01@helpdesk.test": "old@helpdesk.test"})
    poll_all()
    message = unrouted_message()
    former_id, received, uid_key = message.id, message.created_at, message.content_hash
    assert uk.first_message_at is None
    page = f"/admin/unrouted/{message.id}"
    assert "Acme · UK · uk-chan01@helpdesk.test" in client.get(page).get_data(as_text=True)
    response = post(client, f"{page}/assign", {"channel": str(uk.id)}, page=page)
    assert response.status_code == 302

    stored = only(select(Message).where(Message.channel_id == uk.id))
    thread = db.session.get(Thread, stored.thread_id)
    assert response.headers["Location"].endswith(f"/threads/{thread.id}")
    assert thread.channel_id == uk.id
    assert thread.order_id == "203-1234567-1234567"
    assert thread.buyer_name == "Jane Doe"
    assert thread.awaiting_reply_since is not None
    assert stored.delivered_to == "uk-chan01@helpdesk.test"
    assert stored.visible_text.startswith("Hello, my parcel")
    # The same mail, kept once: arrival time, bytes and mailbox carried over.
    assert message_count() == 1
    assert db.session.get(Message, former_id) is None or stored.id == former_id
    assert stored.created_at == received
    assert stored.content_hash == uid_key
    assert stored.mailbox.name == "default"
    db.session.refresh(uk)
    assert uk.first_message_at is not None
    [event] = events("message.assigned")
    assert event.target_id == stored.id
    assert event.organisation_id == uk.organisation_id
    assert event.details["former_message_id"] == former_id
    assert event.details["new_thread"] is True
    # Delivered again later: recognised as the same mail, not stored twice.
    drop_mail("amazon_uk_inquiry.eml", replace={"uk-chan01@helpdesk.test": "old@helpdesk.test"})
    assert poll_all().duplicate == 1
    assert message_count() == 1


def test_assign_joins_the_thread_its_references_name(app, client, admin, uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    first = only(select(Message))
    # A reply to that conversation, sent to an address of no channel, another sender
    # and subject: only References ties it to the thread.
    drop_mail(
        b"Delivered-To: typo@helpdesk.test\nTo: typo@helpdesk.test\n"
        b"From: someone@example.com\nSubject: something else entirely\n"
        b"Message-ID: <late-reply@example.com>\n"
        b"References: <unknown@x> " + first.message_id.encode() + b"\n\nAny news?\n"
    )
    assert poll_all().unrouted == 1
    message = unrouted_message()
    page = f"/admin/unrouted/{message.id}"
    post(client, f"{page}/assign", {"channel": str(uk.id)}, page=page)
    second = only(select(Message).where(Message.message_id == "<late-reply@example.com>"))
    assert second.channel_id == uk.id
    assert second.thread_id == first.thread_id
    assert db.session.scalar(select(func.count()).select_from(Thread)) == 1
    [event] = events("message.assigned")
    assert event.details["new_thread"] is False


def test_assign_needs_a_channel(client, admin, uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml", replace={"uk-chan01@helpdesk.test": "x@helpdesk.test"})
    poll_all()
    message = unrouted_message()
    page = f"/admin/unrouted/{message.id}"
    response = post(client, f"{page}/assign", {"channel": "0"}, page=page)
    assert response.status_code == 422
    assert 'id="channel-error">Choose a channel.' in response.get_data(as_text=True)
    assert unrouted_message().id == message.id


def _in_digits(number: int, zero: str) -> str:
    return str(number).translate({ord("0") + n: ord(zero) + n for n in range(10)})


@pytest.mark.parametrize(
    "written",
    [
        lambda uk: _in_digits(uk.id, "\uff10"),  # full-width: int() reads it as uk.id
        lambda uk: _in_digits(uk.id, "\u0660"),  # Arabic-Indic, likewise
        lambda uk: "\u00b2",
        lambda uk: str(2**31),
        lambda uk: str(10**30),
    ],
    ids=["full-width", "arabic-indic", "superscript", "2**31", "10**30"],
)
def test_assign_takes_only_an_ascii_channel_id(client, admin, uk, drop_mail, written):
    drop_mail("amazon_uk_inquiry.eml", replace={"uk-chan01@helpdesk.test": "x@helpdesk.test"})
    poll_all()
    message = unrouted_message()
    page = f"/admin/unrouted/{message.id}"
    response = post(client, f"{page}/assign", {"channel": written(uk)}, page=page)
    assert response.status_code == 422
    assert 'id="channel-error">' in response.get_data(as_text=True)
    assert unrouted_message().id == message.id


def test_discard_keeps_the_row_flagged_and_audited(client, admin, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    message = unrouted_message()
    page = f"/admin/unrouted/{message.id}"
    response = post(client, f"/admin/mail/{message.id}/discard", {"reason": "  "}, page=page)
    assert response.status_code == 422
    assert 'id="reason-error">Say why this message is discarded.' in response.get_data(as_text=True)

    response = post(
        client, f"/admin/mail/{message.id}/discard", {"reason": "test mail from Amazon"}, page=page
    )
    assert response.status_code == 302
    db.session.refresh(message)
    assert message.discarded_reason == "test mail from Amazon"
    assert message_count() == 1
    [event] = events("message.discarded")
    assert event.target_id == message.id
    assert event.details["reason"] == "test mail from Amazon"
    # Gone from the unrouted list, shown (with its reason) under "discarded".
    assert f"/admin/unrouted/{message.id}" not in client.get("/admin/unrouted").get_data(
        as_text=True
    )
    discarded = client.get("/admin/unrouted?show=discarded").get_data(as_text=True)
    assert f"/admin/unrouted/{message.id}" in discarded
    assert "test mail from Amazon" in discarded
    # Discarding twice is refused; the first reason stays.
    with pytest.raises(admin_mail.MailActionError):
        admin_mail.discard_message(message, "again", actor=None)


def test_a_discarded_message_can_still_be_assigned(client, admin, uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml", replace={"uk-chan01@helpdesk.test": "x@helpdesk.test"})
    poll_all()
    message = unrouted_message()
    admin_mail.discard_message(message, "looked like spam", actor=None)
    db.session.commit()
    page = f"/admin/unrouted/{message.id}"
    post(client, f"{page}/assign", {"channel": str(uk.id)}, page=page)
    stored = only(select(Message))
    assert stored.channel_id == uk.id
    assert stored.discarded_reason is None
    assert events("message.assigned")[0].details["was_discarded"] is True


def test_routed_messages_are_not_waiting(client, admin, uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    message = only(select(Message))
    assert client.get(f"/admin/unrouted/{message.id}").status_code == 404
    assert client.get(f"/admin/mail/{message.id}/raw").status_code == 404
    with pytest.raises(admin_mail.MailActionError):
        admin_mail.assign_to_channel(message, uk, actor=None, max_attachment_bytes=10**6)


# --- quarantine -------------------------------------------------------------------------


def quarantined_message() -> Message:
    return only(select(Message).where(Message.quarantine_reason.is_not(None)))


def test_quarantine_list_and_raw_download(client, admin, drop_mail):
    path = drop_mail("not_mail.eml")
    raw = path.read_bytes()
    assert poll_all().quarantined == 1
    message = quarantined_message()
    listing = client.get("/admin/quarantine").get_data(as_text=True)
    assert "no From, To, Date, Subject or Message-ID header" in listing
    response = client.get(f"/admin/mail/{message.id}/raw")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert (
        response.headers["Content-Disposition"]
        == f'attachment; filename="message-{message.id}.eml"'
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.get_data() == raw
    detail = client.get(f"/admin/quarantine/{message.id}").get_data(as_text=True)
    assert "this is not mail at all" in detail


@pytest.fixture
def parser_bug(monkeypatch):
    """Ingestion runs with a parser that fails on every message (the bug of the day)."""

    def broken(raw, **kwargs):
        raise UnparseableMessage("parser bug: cannot decode this charset")

    monkeypatch.setattr("ingest.mail.parse.parse_message", broken)


def test_retry_parsing_after_an_upgrade_threads_the_message(
    client, admin, uk, drop_mail, parser_bug, monkeypatch
):
    drop_mail("amazon_uk_inquiry.eml")
    assert poll_all().quarantined == 1
    message = quarantined_message()
    former_id, received = message.id, message.created_at
    assert message.quarantine_reason == "parser bug: cannot decode this charset"
    page = f"/admin/quarantine/{message.id}"

    # The "upgrade" is not in yet: the current parser still fails, now for another reason.
    calls = []

    def still_broken(raw, **kwargs):
        calls.append(raw)
        raise ValueError("still broken")

    monkeypatch.setattr(ingest.mail.parse, "parse_message", still_broken)
    response = post(client, f"{page}/retry", page=page)
    assert response.status_code == 302
    db.session.refresh(message)
    assert calls == [message.raw]
    assert message.quarantine_reason == "ValueError: still broken"
    assert message.channel_id is None
    [failed] = events("message.reparse_failed")
    assert failed.details["previous_reason"] == "parser bug: cannot decode this charset"

    # Upgraded: the real parser reads it; it is routed and threaded as fresh mail.
    monkeypatch.undo()
    response = post(client, f"{page}/retry", page=page)
    assert response.status_code == 302
    stored = only(select(Message))
    assert stored.quarantine_reason is None
    assert stored.channel_id == uk.id
    assert stored.thread_id is not None
    assert response.headers["Location"].endswith(f"/threads/{stored.thread_id}")
    assert stored.message_id == "<0100018c.amazon-uk-1@email.amazonses.com>"
    assert stored.subject.startswith("Inquiry from Amazon customer Jane Doe")
    assert stored.created_at == received
    db.session.refresh(uk)
    assert uk.first_message_at is not None
    [event] = events("message.reparsed")
    assert event.details["outcome"] == "stored"
    assert event.details["former_message_id"] == former_id
    assert event.target_id == stored.id


def test_retry_parsing_mail_for_no_channel_leaves_it_unrouted(
    client, admin, drop_mail, parser_bug, monkeypatch
):
    drop_mail("amazon_uk_inquiry.eml")  # no channel has this address
    poll_all()
    message = quarantined_message()
    monkeypatch.undo()
    page = f"/admin/quarantine/{message.id}"
    response = post(client, f"{page}/retry", page=page)
    stored = unrouted_message()
    assert response.headers["Location"].endswith(f"/admin/unrouted/{stored.id}")
    assert stored.subject.startswith("Inquiry from Amazon customer")
    assert events("message.reparsed")[0].details["outcome"] == "unrouted"


def test_retry_parsing_real_garbage_keeps_it_quarantined(client, admin, drop_mail):
    drop_mail("not_mail.eml")
    poll_all()
    message = quarantined_message()
    page = f"/admin/quarantine/{message.id}"
    response = post(client, f"{page}/retry", page=page, follow_redirects=True)
    assert "Still cannot be parsed" in response.get_data(as_text=True)
    assert quarantined_message().id == message.id


def test_retry_parsing_is_bounded_like_the_worker(client, app, admin, uk, drop_mail):
    """A mail the worker gave up on as too slow cannot hold up the admin's request
    either: the retry stops at INGEST_PARSE_SECONDS and the mail stays quarantined."""
    app.config["INGEST_PARSE_SECONDS"] = 0.3
    drop_mail(runaway_message("uk-chan01@helpdesk.test"))
    assert poll_all().quarantined == 1
    message = quarantined_message()
    assert message.quarantine_reason.startswith("too slow to parse")
    page = f"/admin/quarantine/{message.id}"
    response = post(client, f"{page}/retry", page=page, follow_redirects=True)
    assert "Still cannot be parsed: too slow to parse" in response.get_data(as_text=True)
    assert quarantined_message().id == message.id
    assert events("message.reparse_failed")[0].details["reason"].startswith("too slow")


def test_retry_parsing_a_copy_already_stored_discards_it(
    client, admin, uk, drop_mail, parser_bug, monkeypatch
):
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    monkeypatch.undo()
    drop_mail("amazon_uk_inquiry.eml")  # the same mail again, parsed fine this time
    assert poll_all().stored == 1
    message = quarantined_message()
    page = f"/admin/quarantine/{message.id}"
    post(client, f"{page}/retry", page=page)
    db.session.refresh(message)
    assert message.discarded_reason.startswith("duplicate")
    assert message_count() == 2
    assert "Nothing in quarantine" in client.get("/admin/quarantine").get_data(as_text=True)


def test_quarantined_junk_can_be_discarded(client, admin, drop_mail):
    drop_mail("not_mail.eml")
    poll_all()
    message = quarantined_message()
    page = f"/admin/quarantine/{message.id}"
    response = post(client, f"/admin/mail/{message.id}/discard", {"reason": "junk"}, page=page)
    assert response.headers["Location"].endswith("/admin/quarantine")
    db.session.refresh(message)
    assert message.discarded_reason == "junk"
    assert "Nothing in quarantine" in client.get("/admin/quarantine").get_data(as_text=True)
    assert "junk" in client.get("/admin/unrouted?show=discarded").get_data(as_text=True)
