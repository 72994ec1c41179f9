"""Reply drafts (/threads/<id>/draft): kept per user and thread on the server, with
their attachments, through a refused send, another device, and until sent or discarded."""

from __future__ import annotations

import email
import io
from email import policy

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Draft, DraftAttachment, Role
from tests.helpers import AuthActions, FreshContextClient, csrf_token_from, sent_files

BODY = "Hello Jane, order 203-1234567-1234567 left today."


@pytest.fixture
def thread(buyer_thread):
    return buyer_thread


def token(client, thread) -> str:
    return csrf_token_from(client.get(f"/threads/{thread.id}").get_data(as_text=True))


def post(client, thread, path, data, **kwargs):
    data = {"csrf_token": token(client, thread), **data}
    return client.post(f"/threads/{thread.id}/{path}", data=data, **kwargs)


def file(name: str, content: bytes = b"%PDF-1.4 receipt") -> tuple[io.BytesIO, str, str]:
    return (io.BytesIO(content), name, "application/pdf")


def drafts() -> int:
    return db.session.scalar(select(func.count()).select_from(Draft))


def test_autosave_then_another_device_then_send_with_the_files(app, client, login_as, thread):
    agent = login_as(Role.AGENT, assigned=[thread.channel.organisation])
    response = post(
        client,
        thread,
        "draft",
        {"body": BODY, "attachments": [file("receipt.pdf")]},
        headers={"Accept": "application/json"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    saved = response.get_json()
    assert saved["saved_at"].endswith("UTC")
    assert [(a["filename"], a["size"]) for a in saved["attachments"]] == [("receipt.pdf", 16)]

    # The same agent on another device (its own session) finds text and file.
    other = FreshContextClient(app, app.response_class, use_cookies=True)
    AuthActions(other).login(agent.email)
    page = other.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert f"\n{BODY}</textarea>" in page
    assert "receipt.pdf" in page and "Draft saved" in page

    # Sent from there: the draft's file goes out with the reply, and the draft is gone.
    response = post(other, thread, "reply", {"body": BODY})
    assert response.status_code == 302
    [path] = sent_files(app)
    mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert [a.get_filename() for a in mail.iter_attachments()] == ["receipt.pdf"]
    assert drafts() == 0
    assert (
        BODY not in client.get(f"/threads/{thread.id}").get_data(as_text=True).split("<textarea")[1]
    )


def test_a_compliance_warning_keeps_text_and_files(app, client, login_as, thread):
    login_as(Role.AGENT, assigned=[thread.channel.organisation])
    text = "See https://example.com for order 203-1234567-1234567."
    response = post(
        client,
        thread,
        "reply",
        {"body": text, "attachments": [file("label.pdf")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and sent_files(app) == []
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert f"\n{text}</textarea>" in page and "label.pdf" in page
    # Confirmed without choosing the file again: it still goes out.
    response = post(client, thread, "reply", {"body": text, "confirm_warnings": "y"})
    assert response.status_code == 302
    mail = email.message_from_bytes(sent_files(app)[0].read_bytes(), policy=policy.default)
    assert [a.get_filename() for a in mail.iter_attachments()] == ["label.pdf"]
    assert drafts() == 0


def test_save_remove_and_discard_without_javascript(client, login_as, thread):
    login_as(Role.AGENT, assigned=[thread.channel.organisation])
    data = {"body": "First words", "attachments": [file("a.pdf"), file("b.pdf")]}
    response = post(client, thread, "draft", data, content_type="multipart/form-data")
    assert response.status_code == 302 and response.headers["Location"].endswith("#composer")
    [a, b] = db.session.scalars(select(DraftAttachment).order_by(DraftAttachment.id))
    response = post(client, thread, "draft", {"body": "Second words", "remove_attachment": a.id})
    assert response.status_code == 302
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert "\nSecond words</textarea>" in page and "b.pdf" in page and "a.pdf" not in page
    assert post(client, thread, "draft/discard", {}).status_code == 302
    assert drafts() == 0
    assert "Discard draft" not in client.get(f"/threads/{thread.id}").get_data(as_text=True)


def test_drafts_are_per_user(app, client, login_as, thread, make_user):
    org = thread.channel.organisation
    colleague = make_user(Role.AGENT, assigned=[org])
    login_as(Role.AGENT, assigned=[org])
    post(client, thread, "draft", {"body": "Mine only"})
    other = FreshContextClient(app, app.response_class, use_cookies=True)
    AuthActions(other).login(colleague.email)
    assert "Mine only" not in other.get(f"/threads/{thread.id}").get_data(as_text=True)


def test_too_large_attachments_are_refused_beside_the_field(client, login_as, thread, monkeypatch):
    # A small limit: the test client leaves a temporary file open for a 10 MB upload.
    monkeypatch.setattr("portal.services.drafts.MAX_ATTACHMENTS_BYTES", 100)
    login_as(Role.AGENT, assigned=[thread.channel.organisation])
    big = file("huge.pdf", b"x" * 101)
    response = post(client, thread, "draft", {"body": "x", "attachments": [big]},
                    content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 422
    assert 'id="attachments-error">Attachments may total 10 MB' in response.get_data(as_text=True)
    assert drafts() == 0
