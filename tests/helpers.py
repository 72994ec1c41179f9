"""Helpers shared by several test modules: constants, the test app's configuration, logging
in, parsing sent mail, starting real processes. Fixtures live in tests/conftest.py."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pyotp
import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from imapclient import IMAPClient
from sqlalchemy import insert, text

from portal.extensions import db
from portal.models import (
    Channel,
    Direction,
    Message,
    Order,
    Organisation,
    SendStatus,
    Thread,
    User,
)
from portal.services import channels as channel_service
from portal.services import spapi as spapi_service
from portal.services import two_factor
from portal.services import users as user_service
from portal.sqltypes import utcnow

#: The password of every user the factories make.
PASSWORD = "correct horse battery"
#: The TOKEN_KEY of the test app and of the worker processes it starts.
TOKEN_KEY = Fernet.generate_key().decode()
#: The repository, where `make` and `flask --app wsgi` run.
ROOT = Path(__file__).resolve().parents[1]
#: The tests' data files, and among them the real-mail fixtures.
DATA = Path(__file__).resolve().parent / "data"
MAIL = DATA / "mail"
#: The routes that hand out files: tests/portal/test_downloads.py checks that each goes
#: through the one Content-Disposition helper, tests/security/test_downloads_browser.py
#: clicks each in Chromium.
DOWNLOAD_ENDPOINTS = frozenset(
    {
        "inbox.attachment",
        "inbox.message_original",
        "admin.raw_message",
        "orgs.export_messages",
        "reports.download",
    }
)
#: An MWS Auth Token of the shape Amazon issued (MWS itself was switched off in 2024).
MWS_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"


def authorise_with_amazon(channel: Channel, spapi: Any, refresh_token: str) -> None:
    """Give `channel` an SP-API authorisation the stand-in (`spapi`) accepts, and commit."""
    spapi_service.store_refresh_token(
        channel,
        selling_partner_id=spapi.selling_partner_id,
        refresh_token=refresh_token,
        actor=None,
    )
    db.session.commit()
    spapi.accept_refresh_token(refresh_token)


def connect_with_mws_token(channel: Channel) -> None:
    """Give `channel` an MWS Auth Token only (no SP-API authorisation), and commit."""
    channel_service.submit_mws_token(
        channel, seller_id="A1B2C3D4E5F6G7", token=MWS_TOKEN, actor=None
    )
    db.session.commit()


def mail_bytes(name_or_bytes: str | bytes, *, replace: dict[str, str] | None = None) -> bytes:
    """A fixture .eml by name (or raw bytes as given), with `replace` applied to its text."""
    raw = name_or_bytes if isinstance(name_or_bytes, bytes) else (MAIL / name_or_bytes).read_bytes()
    for old, new in (replace or {}).items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


def stored_messages() -> list[Message]:
    """Every message row, in the order stored."""
    return db.session.scalars(db.select(Message).order_by(Message.id)).all()


#: Details of the stored order store_order makes: none may leave through an export.
ORDER_ITEMS = [
    {
        "title": "Garden Kneeler Pad, Green",
        "asin": "B0KNEELER1",
        "seller_sku": "KNEEL-GRN",
        "quantity": 1,
        "unit_price": "17.99",
        "currency": "GBP",
    },
    {
        "title": "Silicone Baking Mats (2-pack)",
        "asin": "B0BAKEMAT2",
        "seller_sku": "MAT-2PK",
        "quantity": 2,
        "unit_price": "9.49",
        "currency": "GBP",
    },
]
ORDER_PACKAGES = [
    {
        "carrier": "Royal Mail",
        "tracking_number": "RR123456789GB",
        "status": "IN_TRANSIT",
        "detailed_status": None,
        "shipped_at": "2026-03-01T10:00:00+00:00",
    }
]


def store_order(channel: Channel, order_id: str, **fields: Any) -> Order:
    """An Order row as the worker stores one from SP-API (two items, one package in
    transit), committed; `fields` override any column."""
    values: dict[str, Any] = {
        "fulfillment_status": "SHIPPED",
        "fulfilled_by": "MERCHANT",
        "programs": ["PRIME"],
        "total_amount": "36.97",
        "total_currency": "GBP",
        "items": [dict(item) for item in ORDER_ITEMS],
        "packages": [dict(package) for package in ORDER_PACKAGES],
    } | fields
    order = Order(channel=channel, order_id=order_id, **values)
    db.session.add(order)
    db.session.commit()
    return order


def parse_mail(raw: bytes) -> EmailMessage:
    """Mail as sent, parsed; SMTP's CRLF read as LF, so decoded bodies compare to Python text."""
    return BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))


# --- the test app's configuration and clients ---------------------------------------------


def app_config_for(url: str, tmp: Path, **overrides: Any) -> dict[str, Any]:
    """The test app's configuration: the database at `url`, its Maildir and outbox under
    `tmp`, every setting given; `overrides` add to it or replace."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "TOKEN_KEY": TOKEN_KEY,
        "SQLALCHEMY_DATABASE_URI": url,
        "MAIL_SOURCE": f"maildir:{tmp / 'maildir'}",
        "SMTP_URL": f"outbox:{tmp / 'outbox'}",
        "INBOUND_DOMAIN": "helpdesk.test",
        "SERVER_NAME": None,
        # Each page computes its figures, so a test sees what it just stored; the
        # snapshots' own tests turn them on.
        "REPORTS_FRESH_SECONDS": 0,
    }
    config.update(overrides)
    return config


def database_triggers() -> set[str]:
    """The names of the database's triggers (the migrations' tests compare them)."""
    with db.engine.connect() as conn:
        return set(
            conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
                    if conn.dialect.name == "postgresql"
                    else "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                )
            ).scalars()
        )


def seed_uk_channel(threads: int) -> None:
    """Organisation 1, its UK channel 1 and threads 1..`threads`, inserted as rows (for
    tests on a schema that the models may be ahead of)."""
    db.session.execute(insert(Organisation.__table__).values(id=1, name="Acme"))
    db.session.execute(
        insert(Channel.__table__).values(
            id=1, organisation_id=1, marketplace="UK", helpdesk_address="uk@helpdesk.test"
        )
    )
    db.session.execute(
        insert(Thread.__table__),
        [{"id": i, "channel_id": 1, "organisation_id": 1} for i in range(1, threads + 1)],
    )


def worker_environment(config: Any, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a worker process (`flask ingest poll`, `ingest run`, `outbox
    send`) on the test app's database, mail source and inbound domain: every setting it
    reads is given, so nothing comes from instance/ or a developer's .env. `settings`
    add to it or replace (SMTP_URL, LOG_LEVEL, POLL_SECONDS, …)."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "TOKEN_KEY": TOKEN_KEY,
        "MAIL_SOURCE": config["MAIL_SOURCE"],
        "INBOUND_DOMAIN": config["INBOUND_DOMAIN"],
        "LOG_LEVEL": "WARNING",
        **settings,
    }


@contextlib.contextmanager
def worker_process(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """The real worker (`flask --app wsgi ingest run`) with its output in `log_path`;
    killed on the way out if the test left it running."""
    with log_path.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "ingest", "run"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def wait_for_commit(what: str, check: Callable[[], object], timeout: float) -> Any:
    """`check()`'s first true answer, each try in a fresh snapshot (the writes come from
    another thread or process); fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        result = check()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def stored_count(message_id: str) -> int:
    """How many stored messages carry this Message-ID."""
    return db.session.scalar(
        db.select(db.func.count()).select_from(Message).where(Message.message_id == message_id)
    )


class FreshContextClient(FlaskClient):
    """Gives each request its own app context, as a real server does.

    The `app` fixture keeps a context pushed for the test body; without this, every
    request would share its `g` (and Flask-WTF's cached CSRF token) and its DB session.
    """

    def open(self, *args: Any, **kwargs: Any):
        with self.application.app_context():
            return super().open(*args, **kwargs)


_CSRF_RE = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)


def csrf_token_from(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1) or match.group(2)


# --- the second factor, for real: enrolled through the service, codes from pyotp --------

TWO_FACTOR_STEP = "/login/two-factor"


def enrol_totp(user: User) -> str:
    """Enrol `user` in TOTP as `flask users totp` does, commit, and return the secret."""
    secret = two_factor.provision_totp(user, now=utcnow(), actor=None)
    db.session.commit()
    return secret


def enrol_if_required(email: str) -> None:
    """An admin or agent without a second factor gets one, as an operator would give it,
    so the helpers below log in as they really must: password, then code."""
    user = user_service.find_user_by_email(email)
    if user is not None and two_factor.must_enrol(user):
        enrol_totp(user)


def totp_code(email: str) -> str:
    """A code the portal accepts now for the user with `email`: the current time step, or
    the next one when the current is used (each step works once). Never the step before:
    it leaves the accepted window if the clock crosses a step boundary before the portal
    checks it, which failed a CI run."""
    db.session.commit()  # read what the app's requests committed, not a stale snapshot
    user = db.session.scalar(
        db.select(User).where(User.email == user_service.normalise_email(email))
    )
    assert user.totp_secret_encrypted, f"{email} has no TOTP secret"
    secret, last = two_factor.totp_secret(user), user.totp_last_counter
    totp = pyotp.TOTP(secret)
    for _ in range(2):
        current = totp.timecode(utcnow())
        for step in range(current, current + two_factor.VALID_WINDOW + 1):
            if last is None or step > last:
                return totp.generate_otp(step)
        # Both usable steps are spent (a third login within a step): wait for the next.
        time.sleep(totp.interval - utcnow().timestamp() % totp.interval + 0.05)
    raise AssertionError(f"every code of {email}'s window is used")


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, email: str, password: str = PASSWORD, follow_redirects: bool = False):
        """Log in through the real forms: the password, then (when the user has a second
        factor, which admins and agents are given first) a TOTP code."""
        enrol_if_required(email)
        page = self.client.get("/login")
        token = csrf_token_from(page.get_data(as_text=True))
        response = self.client.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}
        )
        if response.status_code == 302 and response.headers["Location"] == TWO_FACTOR_STEP:
            return self.enter_code(totp_code(email), follow_redirects=follow_redirects)
        if follow_redirects and response.status_code == 302:
            return self.client.get(response.headers["Location"], follow_redirects=True)
        return response

    def enter_code(self, code: str, *, trust: bool = False, follow_redirects: bool = False):
        """Answer the login's second step with `code`."""
        page = self.client.get(TWO_FACTOR_STEP)
        token = csrf_token_from(page.get_data(as_text=True))
        data = {"code": code, "csrf_token": token}
        if trust:
            data["trust"] = "y"
        return self.client.post(TWO_FACTOR_STEP, data=data, follow_redirects=follow_redirects)

    def logout(self):
        page = self.client.get("/dashboard")
        token = csrf_token_from(page.get_data(as_text=True))
        return self.client.post("/logout", data={"csrf_token": token})


def browser_log_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    """Log a Playwright `page` in through the real login form of the server at `base`."""
    enrol_if_required(email)
    page.goto(f"{base}/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(base) + "/(dashboard|login/two-factor)$"))
    if page.url.endswith(TWO_FACTOR_STEP):
        page.get_by_label("Code", exact=True).fill(totp_code(email))
        page.get_by_role("button", name="Verify").click()
        page.wait_for_url(f"{base}/dashboard")


def sent_files(app: Any) -> list[Path]:
    """The replies sent, as files in the test app's outbox folder."""
    return sorted(Path(app.config["SMTP_URL"].removeprefix("outbox:")).glob("*.eml"))


def logged_in_page(browser: Any, base: str, email: str, path: str) -> tuple[Any, list[str]]:
    """A page in a browser context of its own (a person at their own computer), logged in
    as `email` and open at `path`; the list collects the page's script errors."""
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    browser_log_in(page, base, email)
    page.goto(f"{base}{path}")
    return page, errors


def run_together(app: Any, *calls: Callable[[], object], timeout: float = 60) -> list[object]:
    """Run each call in its own thread, app context and database session, all released
    at once, as concurrent workers would; their results, or the first error raised."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = []
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                results.append(call())
                db.session.remove()
        except Exception as exc:  # surfaced in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if errors:
        raise errors[0]
    return results


def close_quietly(client: IMAPClient) -> None:
    """Log out, or just close the socket when the server is already gone."""
    try:
        client.logout()
    except Exception:
        with contextlib.suppress(Exception):
            client.shutdown()


# --- the real `make run` / `make serve` in a process group of its own ---------------------


def make_target_environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a `make` target started as a user would: every path and secret
    in tmp_path, and every setting given, so neither instance/ nor a developer's .env nor a
    parent `make test` changes the run. `settings` add to it or replace."""
    env = {
        key: value
        for key, value in os.environ.items()
        # A parent `make test` must not hand its jobserver to this unrelated make, nor a
        # developer's HOST move the server off loopback.
        if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "HOST")
    }
    env.update(
        {
            # Each has a default under instance/ (portal/config.py); none may be used.
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "MAIL_SOURCE": f"maildir:{tmp_path / 'maildir'}",
            "SMTP_URL": f"outbox:{tmp_path / 'outbox'}",
            "SECRET_KEY": "make-target-test-secret",
            "TOKEN_KEY": Fernet.generate_key().decode(),
            "POLL_SECONDS": "1",
            "INBOUND_DOMAIN": "helpdesk.test",
            "RATELIMIT_STORAGE_URI": "memory://",
            "LOG_LEVEL": "INFO",
            **settings,
        }
    )
    return env


def start_in_own_group(command: list[str], env: dict[str, str], output: Path) -> subprocess.Popen:
    """Start `command` in ROOT in a process group of its own, as a terminal starts a job,
    its output (stdout and stderr) to the file `output`."""

    def default_sigint() -> None:
        # What Ctrl-C reaches in a terminal; a runner that ignores SIGINT passes that on.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with output.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_sigint,
        )


def kill_group(proc: subprocess.Popen) -> None:
    """Kill what a test left running of `proc`'s group, and anything that outlived it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for pid in group_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for(what: str, check: Callable[[], object], timeout: float, output: Path) -> object:
    """Poll `check` until it returns something true, and return that; fail the test with
    the process's `output` once `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{output.read_text()}")


def group_members(pgid: int) -> dict[int, str]:
    """Live (non-zombie) processes of a process group: pid -> command line."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members[int(entry.name)] = cmdline
    return members


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def dsn(cited_id: str, *, to: str = "uk-shop@helpdesk.test", n: int = 1) -> bytes:
    """A Postfix-style delivery status notification returning the headers of `cited_id`."""
    return f"""\
Return-Path: <>
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{n}@mx.example.net>
Date: Sat, 05 Dec 2026 10:15:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain; charset=us-ascii

Your message could not be delivered.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; jane123@marketplace.amazon.co.uk
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 Recipient address rejected: alias expired

--B
Content-Type: text/rfc822-headers

From: Shop <uk-shop@helpdesk.test>
Message-ID: {cited_id}
Subject: Re: Where is my parcel?

--B--
""".encode()


def add_sent_reply(thread: Any, *, at: Any, number: int = 1) -> Any:
    """A reply on `thread` that the outbox sent at `at` (no commit), for the metric's tests."""
    reply = Message(
        thread=thread,
        channel=thread.channel,
        direction=Direction.OUT,
        message_id=f"<r{number}@sellerdesk.test>",
        content_hash=f"r{number}",
        send_status=SendStatus.SENT,
        sent_at=at,
        created_at=at,
    )
    db.session.add(reply)
    return reply
