"""Hostile mail, through the real pipeline, rendered in a real Chromium.

Every vector of tests/data/xss/vectors.txt (the OWASP XSS filter-evasion classes)
goes into one buyer mail five times: subject, sender name, text body, HTML body and
attachment name. The mail arrives three ways: to a channel (a thread), to no known
address (unrouted) and broken (quarantined, its raw headers shown to admins). The
same vector is also an agent's note and a canned reply's title. The pipeline ingests
all of it from the Maildir, then Chromium opens every page that shows it, as an agent
and as an admin: the inbox, each thread with its HTML frame, the unrouted and
quarantine lists and details with theirs, canned replies, the audit log; the export
is fetched and must be a download, never a page.

On every page: no dialog, no script error, no request to a host other than
loopback, and in the live DOM of every frame no script of ours missing and none of
theirs present, no event handler attribute, no javascript:/vbscript:/data:text URL.

The default run takes one vector of each class; `make verify` takes all of them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
from playwright.sync_api import Browser, BrowserContext, Frame, Page, Route
from sqlalchemy import select

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Role, Thread
from portal.services import canned as canned_service
from portal.services import threads as thread_service
from tests.helpers import PASSWORD, browser_log_in
from tests.security.conftest import record

pytestmark = pytest.mark.browser

CORPUS = Path(__file__).resolve().parent.parent / "data" / "xss" / "vectors.txt"
HELPDESK = "uk-xss@helpdesk.test"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PLACEMENTS = ("subject", "sender name", "text body", "HTML body", "attachment name")


def load_vectors() -> list[tuple[str, str]]:
    """(class, vector) pairs of the corpus, in file order."""
    vectors, current = [], "unclassified"
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
        elif line.strip() and not line.startswith("#"):
            vectors.append((current, line))
    return vectors


VECTORS = load_vectors()


def sample(per_class: int) -> list[tuple[str, str]]:
    taken: dict[str, int] = {}
    chosen = []
    for klass, vector in VECTORS:
        if taken.get(klass, 0) < per_class:
            taken[klass] = taken.get(klass, 0) + 1
            chosen.append((klass, vector))
    return chosen


# --- the mail -----------------------------------------------------------------------------


def _word(text: str) -> str:
    """An RFC 2047 encoded word: the header decodes to exactly `text`."""
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data)


def hostile_mail(n: int, vector: str, *, to: str) -> bytes:
    """A buyer message carrying `vector` in all five places."""
    text = (
        f"Order ID 203-0000000-{n:07d}\n\n------------- Begin message -------------\n\n"
        f"Hello, about my order: {vector}\n\n------------- End message -------------\n"
    )
    html = f"<html><body><p>Hello seller {n}</p><div>{vector}</div><p>{vector}</p></body></html>"
    head = (
        f"From: {_word(vector)} <buyer-{n}@marketplace.amazon.co.uk>\r\n"
        f"To: {to}\r\n"
        f"Subject: {_word(f'Inquiry from Amazon customer {vector} (Order: 203-0000000-{n:07d})')}\r\n"
        f"Message-ID: <xss-{n}-{to.split('@')[0]}@example.com>\r\n"
        f"Date: Fri, 27 Nov 2026 10:{n % 60:02d}:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    ).encode()
    filename = quote(f"{vector}.pdf", safe="")
    body = (
        b'--outer\r\nContent-Type: multipart/alternative; boundary="inner"\r\n\r\n'
        b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + _b64(text.encode()) + b"--inner\r\n"
        b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + _b64(html.encode())
        + b"--inner--\r\n--outer\r\n"
        + f"Content-Type: application/pdf; name*=utf-8''{filename}\r\n".encode()
        + f"Content-Disposition: attachment; filename*=utf-8''{filename}\r\n".encode()
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + _b64(b"%PDF-1.4 " + vector.encode())
        + b"--outer--\r\n"
    )
    return head + body


def broken_mail(n: int, vector: str) -> bytes:
    """Mail the parser refuses (none of From/To/Date/Subject/Message-ID): quarantined,
    and its header block shown to admins as text."""
    return f"X-Payload: {vector}\r\nX-Number: {n}\r\n\r\n{vector}\r\n".encode()


# --- watching the browser -------------------------------------------------------------------

#: Our own scripts, the only ones a page may carry (each is served from /static/js/).
OUR_SCRIPTS = sorted(
    f"/static/js/{path.name}"
    for path in (Path(__file__).resolve().parents[2] / "static" / "js").glob("*.js")
)

#: In the live DOM of any frame: what must not be there (checked by the browser itself).
DOM_CHECK = """(ours) => {
  const bad = [];
  const urlAttrs = ["href", "src", "action", "formaction", "xlink:href", "data", "poster"];
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on")) bad.push(`${el.tagName} ${name}`);
      const value = attr.value.replace(/[\\u0000-\\u0020]/g, "").toLowerCase();
      if (urlAttrs.includes(name) && /^(javascript|vbscript|data:text|data:image\\/svg)/.test(value))
        bad.push(`${el.tagName} ${name}=${attr.value.slice(0, 60)}`);
    }
    const src = (el.getAttribute("src") || "").split("?")[0];
    if (el.tagName === "SCRIPT" && (!ours.includes(src) || el.closest("article.message")))
      bad.push(`SCRIPT ${el.outerHTML.slice(0, 80)}`);
    if (["IFRAME", "FRAME", "OBJECT", "EMBED", "BASE", "FORM"].includes(el.tagName)
        && el.closest("article.message .body, .html-body, body.message-frame")) {
      bad.push(`${el.tagName} inside the message`);
    }
    if (el.tagName === "META" && (el.getAttribute("http-equiv") || "").toLowerCase() === "refresh")
      bad.push("META refresh");
  }
  return bad;
}"""


@dataclass
class Watch:
    """What a browser context did that it must not: dialogs, errors, outbound requests."""

    dialogs: list[str] = field(default_factory=list)
    outbound: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dom: list[str] = field(default_factory=list)
    blocked_by_csp: int = 0
    pages: int = 0

    def attach(self, context: BrowserContext) -> Page:
        context.route("**/*", self._route)
        page = context.new_page()
        page.on("dialog", lambda d: (self.dialogs.append(f"{page.url}: {d.message}"), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))
        page.on("console", self._console)
        return page

    def _route(self, route: Route) -> None:
        url = route.request.url
        host = urlparse(url).hostname
        if url.startswith(("data:", "blob:", "about:")) or host in LOOPBACK:
            route.continue_()
        else:
            self.outbound.append(url)
            route.abort()

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.blocked_by_csp += 1  # the second line of defence doing its work

    def check(self, page: Page) -> None:
        """The DOM check in every frame of `page` (after its frames loaded)."""
        self.pages += 1
        record("hostile mail: pages opened")
        for frame in page.frames:
            self._check_frame(page, frame)

    def _check_frame(self, page: Page, frame: Frame) -> None:
        if frame.url in ("", "about:blank"):
            return
        try:
            found = frame.evaluate(DOM_CHECK, OUR_SCRIPTS)
        except Exception as exc:  # a frame that navigated away meanwhile
            self.errors.append(f"{frame.url}: could not inspect the frame: {exc}")
            return
        self.dom += [f"{page.url} [{frame.url}]: {problem}" for problem in found]

    def assert_clean(self) -> None:
        problems = (
            [f"dialog: {d}" for d in self.dialogs]
            + [f"request to another host: {u}" for u in self.outbound]
            + [f"script error: {e}" for e in self.errors]
            + [f"in the DOM: {d}" for d in self.dom]
        )
        assert not problems, "\n".join(problems[:60])


def _open(page: Page, watch: Watch, url: str) -> None:
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    # Open every <details> (the HTML version sits in one), then let its frame load.
    opened = page.locator("details:not([open])")
    if opened.count():
        opened.evaluate_all("els => els.forEach(e => e.open = true)")
        for frame_element in page.locator("iframe").all():
            frame_element.evaluate("f => f.getAttribute('src')")  # attached
        page.wait_for_load_state("load")
        page.wait_for_timeout(150)
    watch.check(page)


def _links(page: Page, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("els => els.map(e => e.href)")


# --- the test -------------------------------------------------------------------------------


def run_corpus(browser, base, vectors, make_org, make_user, make_channel, drop_mail) -> None:
    org = make_org("Hostile Mail Ltd")
    make_channel("UK", organisation=org, address=HELPDESK)
    agent = make_user(Role.AGENT, assigned=[org], password=PASSWORD)
    admin = make_user(Role.ADMIN, password=PASSWORD)
    for n, (_, vector) in enumerate(vectors):
        drop_mail(hostile_mail(n, vector, to=HELPDESK))
        drop_mail(hostile_mail(n, vector, to="nobody-xss@helpdesk.test"))
        drop_mail(broken_mail(n, vector))
    summary = poll_all()
    count = len(vectors)
    assert (summary.stored, summary.unrouted, summary.quarantined, summary.errors) == (
        count,
        count,
        count,
        0,
    ), summary.line()
    record("hostile mail: vectors", count)
    record("hostile mail: classes", len({klass for klass, _ in vectors}))
    record("hostile mail: placements", count * len(PLACEMENTS))
    record("hostile mail: mails ingested", summary.fetched)

    # The vector arrived where it was put: the pages below really show it.
    threads = db.session.scalars(select(Thread).order_by(Thread.id)).all()
    by_number = {int(t.messages[0].message_id.split("-")[1]): t for t in threads}
    for n, (_, vector) in enumerate(vectors):
        thread = by_number[n]
        message = thread.messages[0]
        # Headers are unfolded with their whitespace runs made single spaces (a tab in
        # "jav\tascript:" arrives as a space), bodies keep every character.
        in_header = " ".join(vector.split())
        assert in_header in message.subject and message.from_name == in_header
        assert vector in (message.text_body or "")
        assert message.html_body and message.attachments
        thread_service.add_internal_note(thread, f"Note: {vector}", actor=agent)
        canned_service.create_canned_reply(
            organisation=org, title=f"{n} {vector}"[:120], body="Hello {buyer_name}", actor=agent
        )
    db.session.commit()

    # The agent's view.
    watch = Watch()
    agent_context = browser.new_context()
    page = watch.attach(agent_context)
    browser_log_in(page, base, agent.email)
    inbox = f"{base}/inbox"
    thread_urls: list[str] = []
    while inbox:
        _open(page, watch, inbox)
        thread_urls += _links(page, "table.inbox td.subject a")
        next_links = _links(page, "a[rel=next]")
        inbox = next_links[0] if next_links else ""
    assert len(set(thread_urls)) == count
    for url in sorted(set(thread_urls)):
        _open(page, watch, url)
    for url in (f"{base}/canned-replies", f"{base}/dashboard", f"{base}/orgs/{org.id}"):
        _open(page, watch, url)
    export = agent_context.request.get(f"{base}/orgs/{org.id}/export.jsonl")
    assert export.ok
    assert export.headers["content-type"].startswith("application/x-ndjson")
    assert export.headers["content-disposition"].startswith("attachment")
    assert export.headers["x-content-type-options"] == "nosniff"
    lines = [json.loads(line) for line in export.text().splitlines()]
    shown = {m.subject for t in threads for m in t.messages if not m.is_internal_note}
    assert {line["subject"] for line in lines} >= shown
    agent_context.close()

    # The admin's view.
    admin_context = browser.new_context()
    page = watch.attach(admin_context)
    browser_log_in(page, base, admin.email)
    _open(page, watch, f"{base}/admin/unrouted")
    unrouted = _links(page, "main a[href*='/admin/unrouted/']")
    _open(page, watch, f"{base}/admin/quarantine")
    quarantined = _links(page, "main a[href*='/admin/quarantine/']")
    for url in sorted(set(unrouted) | set(quarantined)):
        _open(page, watch, url)
    for path in ("/admin/audit", "/admin/channels", "/admin/organisations", "/admin/health"):
        _open(page, watch, f"{base}{path}")
    admin_context.close()

    record("hostile mail: CSP-blocked attempts seen", watch.blocked_by_csp)
    watch.assert_clean()
    assert len(set(unrouted)) >= count and len(set(quarantined)) >= count


@pytest.mark.parametrize(
    "vectors",
    [
        pytest.param(sample(1), id="quick"),
        pytest.param(VECTORS, id="full", marks=pytest.mark.slow),
    ],
)
def test_hostile_mail_in_every_place_stays_inert_in_chromium(
    browser: Browser, live_server: str, make_org, make_user, make_channel, drop_mail, vectors
) -> None:
    run_corpus(browser, live_server, vectors, make_org, make_user, make_channel, drop_mail)
