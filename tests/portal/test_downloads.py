"""Downloads under any file name: RFC 6266/5987 Content-Disposition, one helper for all.

A name that is not Latin-1 (`請求書.pdf`, `résumé ü.txt`) used to be written as a plain
`filename=`: the WSGI server could not encode the header and the response died after
its status line. Each header here must be Latin-1 (what HTTP/1.1 carries), say the exact
name in `filename*`, and hide nothing behind bidirectional controls.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from urllib.parse import unquote

import pytest

from portal.downloads import content_disposition, download_name
from portal.extensions import db
from portal.models import Attachment, Role
from portal.services import outbox as outbox_service
from tests.helpers import DOWNLOAD_ENDPOINTS

PORTAL = Path(__file__).resolve().parents[2] / "portal"

#: (stored name, Content-Disposition): the ASCII stand-in, then the exact UTF-8 name.
CASES = [
    ("invoice.pdf", 'attachment; filename="invoice.pdf"'),
    (
        "請求書.pdf",
        "attachment; filename=\"attachment.pdf\"; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf",
    ),
    (
        "résumé ü.txt",
        "attachment; filename=\"resume u.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%C3%BC.txt",
    ),
    ('say "hi".txt', "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt"),
    # U+202E would show `invoice<U+202E>fdp.exe` as `invoiceexe.pdf`: removed, the truth shows.
    ("invoice\u202efdp.exe", 'attachment; filename="invoicefdp.exe"'),
    ("a\r\nb\x00.txt", 'attachment; filename="ab.txt"'),
    ("../../etc/passwd", 'attachment; filename="passwd"'),
    ("", 'attachment; filename="attachment"'),
    (None, 'attachment; filename="attachment"'),
]


@pytest.mark.parametrize(("name", "expected"), CASES)
def test_content_disposition(name, expected):
    value = content_disposition(name)
    assert value == expected
    value.encode("latin-1")  # what the server writes on the wire


@pytest.mark.parametrize(
    "name", ["請求書.pdf", "résumé ü.txt", "注文 #12; 50%.pdf", "𝕏.png", "Ünïcödé \u2013 x.zip"]
)
def test_the_exact_name_travels_in_filename_star(name):
    value = content_disposition(name)
    value.encode("ascii")
    star = value.split("filename*=UTF-8''", 1)[1]
    assert unquote(star) == name
    assert ";" not in star and " " not in star and '"' not in star


@pytest.fixture
def thread_with_files(make_thread):
    """A buyer thread whose message carries attachments with the probe's names."""
    thread = make_thread()
    message = thread.messages[0]
    names = ["請求書.pdf", "résumé ü.txt", "photo\u202egpj.exe"]
    files = [
        Attachment(
            message=message,
            filename=name,
            content_type="application/pdf",
            size=7,
            data=f"data {n}".encode(),
        )
        for n, name in enumerate(names)
    ]
    db.session.add_all(files)
    db.session.commit()
    return thread, files


def test_buyer_attachments_with_any_name_download(client, login_as, thread_with_files):
    thread, files = thread_with_files
    login_as(Role.ADMIN)
    for n, attachment in enumerate(files):
        response = client.get(f"/threads/{thread.id}/attachments/{attachment.id}")
        assert response.status_code == 200
        disposition = response.headers["Content-Disposition"]
        disposition.encode("latin-1")
        assert disposition == content_disposition(attachment.filename)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.get_data() == f"data {n}".encode()


def test_the_thread_shows_names_without_bidirectional_controls(client, login_as, thread_with_files):
    thread, _ = thread_with_files
    login_as(Role.ADMIN)
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert "請求書.pdf" in page and "résumé ü.txt" in page
    assert "photogpj.exe" in page and "\u202e" not in page


def test_an_agents_japanese_reply_attachment_downloads(client, login_as, make_thread):
    thread = make_thread()
    agent = login_as(Role.AGENT, assigned=[thread.channel.organisation])
    reply = outbox_service.queue_reply(
        thread,
        body="請求書を添付します。",
        author=agent,
        attachments=[("請求書 2026年.pdf", "application/pdf", b"%PDF-1.4")],
    )
    db.session.commit()
    (attachment,) = reply.attachments
    response = client.get(f"/threads/{thread.id}/attachments/{attachment.id}")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    disposition.encode("latin-1")
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "請求書 2026年.pdf"


def test_download_name_is_the_shown_name():
    assert download_name("x\u2066y\u2069.pdf") == "xy.pdf"
    assert download_name("  ") == "attachment"
    assert download_name("C:\\Users\\me\\a.pdf") == "a.pdf"


def test_every_download_goes_through_the_one_helper(app):
    """No view writes Content-Disposition or calls send_file itself, and the routes that
    call `download` are exactly the ones the browser test clicks."""
    for path in PORTAL.rglob("*.py"):
        if path.name == "downloads.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "Content-Disposition" not in text and "send_file" not in text, path
    downloading = {
        endpoint
        for endpoint, view in app.view_functions.items()
        if "download(" in inspect.getsource(inspect.unwrap(view))
    }
    assert downloading == DOWNLOAD_ENDPOINTS
