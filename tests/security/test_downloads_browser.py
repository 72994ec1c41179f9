"""Every download route, clicked in a real Chromium, saves the file under its real name.

Buyer attachments named in Japanese, with accents and with a right-to-left override
arrive through the real pipeline (RFC 2231 names); an agent attaches a Japanese-named
file to a reply; the same mail reaches no channel, for the admin's raw `.eml`; and the
organisation is named in Japanese, for the export. Chromium follows each link the page
offers and must finish the download, with the name it saves under being the name
shown on the page (never one reordered by bidirectional controls) and the bytes intact.

A response whose Content-Disposition the server cannot encode dies after its status
line and the browser waits forever: each download has a short timeout here.
"""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from ingest.mail.parse import MAX_BODY_CHARS
from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Message, Role, Thread
from portal.services import outbox as outbox_service
from tests.helpers import DOWNLOAD_ENDPOINTS, PASSWORD, browser_log_in
from tests.security.conftest import record

pytestmark = pytest.mark.browser

HELPDESK = "jp-downloads@helpdesk.test"
#: Stored name -> the name the browser must save it under (and the page must show).
BUYER_FILES = {
    "請求書.pdf": "請求書.pdf",
    "résumé ü.txt": "résumé ü.txt",
    "photo\u202egpj.exe": "photogpj.exe",
    "注文 #12; 50%.pdf": "注文 #12; 50%.pdf",
}
REPLY_FILE = "見積書 2026年.pdf"


def _part(name: str, data: bytes) -> bytes:
    encoded = quote(name, safe="")
    return (
        b"--outer\r\n"
        + f"Content-Type: application/octet-stream; name*=utf-8''{encoded}\r\n".encode()
        + f"Content-Disposition: attachment; filename*=utf-8''{encoded}\r\n".encode()
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(data)
    )


def buyer_mail(to: str) -> bytes:
    head = (
        "From: =?utf-8?b?5bGx55Sw?= <buyer-dl@marketplace.amazon.co.jp>\r\n"
        f"To: {to}\r\n"
        "Subject: Inquiry from Amazon customer Yamada (Order: 503-1234567-1234567)\r\n"
        f"Message-ID: <downloads-{to.split('@')[0]}@example.com>\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        "--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Please see the attached files.\r\n"
    ).encode()
    parts = b"".join(_part(name, name.encode() * 3) for name in BUYER_FILES)
    return head + parts + b"--outer--\r\n"


def long_mail(to: str) -> bytes:
    """A buyer mail whose text is longer than the parser keeps (MAX_BODY_CHARS)."""
    line = "注文の件、詳細をお送りします。 order details line\r\n"
    return (
        "From: =?utf-8?b?5bGx55Sw?= <buyer-dl@marketplace.amazon.co.jp>\r\n"
        f"To: {to}\r\n"
        "Subject: =?utf-8?b?6ZW344GE44Oh44O844Or?=\r\n"
        "Message-ID: <downloads-long@example.com>\r\n"
        "Date: Fri, 27 Nov 2026 11:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" + line * (MAX_BODY_CHARS // len(line) + 1000)
    ).encode()


def _download(page: Page, link, tmp: Path) -> tuple[str, bytes]:
    with page.expect_download(timeout=10_000) as info:
        link.click()
    download = info.value
    assert download.failure() is None, download.failure()
    target = tmp / f"{len(list(tmp.iterdir()))}-{download.suggested_filename}"
    download.save_as(target)
    record("downloads: files saved by Chromium")
    return download.suggested_filename, target.read_bytes()


def test_every_download_route_saves_non_latin1_names_in_chromium(
    browser: Browser,
    live_server: str,
    make_org,
    make_user,
    make_channel,
    drop_mail,
    tmp_path: Path,
) -> None:
    org = make_org("株式会社テスト商事")
    make_channel("JP", organisation=org, address=HELPDESK)
    agent = make_user(Role.AGENT, assigned=[org], password=PASSWORD)
    admin = make_user(Role.ADMIN, password=PASSWORD)
    drop_mail(buyer_mail(HELPDESK))
    drop_mail(buyer_mail("nobody-downloads@helpdesk.test"))
    summary = poll_all()
    assert (summary.stored, summary.unrouted, summary.errors) == (1, 1, 0), summary.line()
    thread = db.session.scalar(select(Thread))
    outbox_service.queue_reply(
        thread,
        body="見積書を添付します。",
        author=agent,
        attachments=[(REPLY_FILE, "application/pdf", b"%PDF-1.4 reply")],
    )
    db.session.commit()
    unrouted = db.session.scalar(select(Message).where(Message.thread_id.is_(None)))
    drop_mail(long_mail(HELPDESK))
    summary = poll_all()
    assert (summary.stored, summary.errors) == (1, 0), summary.line()
    cut = db.session.scalar(
        select(Message).where(Message.message_id == "<downloads-long@example.com>")
    )
    assert cut.body_cut
    tried: set[str] = set()

    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    browser_log_in(page, live_server, admin.email)

    # inbox.attachment: the buyer's files and the agent's own, from the thread page.
    page.goto(f"{live_server}/threads/{thread.id}")
    links = page.locator("ul.attachments a[download]")
    expected = {shown: name.encode() * 3 for name, shown in BUYER_FILES.items()}
    expected[REPLY_FILE] = b"%PDF-1.4 reply"
    assert sorted(links.all_inner_texts()) == sorted(expected)
    for n in range(links.count()):
        link = links.nth(n)
        shown = link.inner_text()
        name, data = _download(page, link, tmp_path)
        assert (name, data) == (shown, expected[shown])
    tried.add("inbox.attachment")

    # admin.raw_message: the unrouted copy, as received.
    page.goto(f"{live_server}/admin/unrouted/{unrouted.id}")
    name, data = _download(page, page.get_by_role("link", name="Download .eml"), tmp_path)
    assert name == f"message-{unrouted.id}.eml"
    assert data == unrouted.raw
    tried.add("admin.raw_message")

    # inbox.message_original: the whole of a mail the thread page shows only the start of.
    page.goto(f"{live_server}/threads/{cut.thread_id}")
    link = page.get_by_role("link", name="Download the original mail (.eml)")
    name, data = _download(page, link, tmp_path)
    assert name == f"message-{cut.id}.eml"
    assert data == cut.raw
    assert len(data.decode()) > MAX_BODY_CHARS
    tried.add("inbox.message_original")

    # orgs.export_messages: an organisation named in Japanese.
    page.goto(f"{live_server}/orgs/{org.id}")
    link = page.get_by_role("link", name="Download messages (JSON Lines)")
    name, data = _download(page, link, tmp_path)
    assert name.startswith(f"sellerdesk-org-{org.id}-") and name.endswith(".jsonl")
    assert "Yamada" in data.decode()
    tried.add("orgs.export_messages")

    # reports.download: the report as CSV, its columns in the header line.
    page.goto(f"{live_server}/reports?period=30")
    name, data = _download(page, page.get_by_role("link", name="Download as CSV"), tmp_path)
    assert name == "report.csv"
    assert data.decode().startswith("scope,messages,answered_24h,answered_24h_pct,")
    tried.add("reports.download")
    context.close()

    assert tried == DOWNLOAD_ENDPOINTS
