"""Oversized and pathological mail through the real worker (`flask ingest poll`).

Each mail is delivered into the Maildir between two ordinary buyer messages, and a
real worker process ingests them. Every pathological mail must end up stored or
quarantined, exactly once, within bounded time and memory (measured on the worker
process itself), and the ordinary mail after it must be stored by the same pass:
one bad message never stops the poll. Stored ones must also open in the portal.

The default run uses scaled-down sizes in one pass; `make verify` runs each full-size
case (25 MB, 1,000 attachments, 10,000-level nesting, a 1 MB header line, …) in a
worker of its own, so each one's time and peak memory is measured alone.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Attachment, Message, Role
from tests.helpers import worker_environment
from tests.mailgen import amazon_message
from tests.security.conftest import record

ROOT = Path(__file__).resolve().parents[2]
TO = "uk-patho@helpdesk.test"
MB = 1024 * 1024


def _head(name: str, extra: str = "") -> bytes:
    return (
        f"From: Buyer <buyer-{name}@marketplace.amazon.co.uk>\r\nTo: {TO}\r\n"
        f"Subject: Pathological {name}\r\nMessage-ID: <patho-{name}@example.com>\r\n"
        f"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n{extra}"
    ).encode()


def big_message(size: int) -> bytes:
    """One attachment, base64: `size` bytes of mail in all."""
    data = os.urandom(size * 3 // 4 - 1024)
    return (
        _head("big", 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n')
        + b"--b\r\nContent-Type: text/plain\r\n\r\nSee the photos attached.\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=photos.zip\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data) + b"--b--\r\n"
    )


def many_attachments(count: int) -> bytes:
    parts = b"".join(
        f"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; "
        f"filename=receipt-{i}.txt\r\n\r\nreceipt {i}\r\n".encode()
        for i in range(count)
    )
    return (
        _head("many", 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n')
        + b"--b\r\nContent-Type: text/plain\r\n\r\nAll my receipts.\r\n"
        + parts
        + b"--b--\r\n"
    )


def nested_multipart(depth: int) -> bytes:
    opening = b"".join(
        f'--n{i}\r\nContent-Type: multipart/mixed; boundary="n{i + 1}"\r\n\r\n'.encode()
        for i in range(depth)
    )
    closing = b"".join(f"--n{i}--\r\n".encode() for i in reversed(range(depth)))
    innermost = f"--n{depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--n{depth}--\r\n"
    return (
        _head("nested", 'Content-Type: multipart/mixed; boundary="n0"\r\n\r\n')
        + opening
        + innermost.encode()
        + closing
    )


def long_header_line(size: int) -> bytes:
    mail = _head("header", f"X-Long: {'a' * size}\r\nContent-Type: text/plain\r\n\r\nbody\r\n")
    return mail.replace(b"Subject: Pathological", b"Subject: " + b"s" * size + b" Pathological")


def nul_bytes() -> bytes:
    return (
        _head("nul").replace(b"Subject: Pathological", b"Subject: Path\x00ological")
        + b"X-Nul: a\x00b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + b"Hello\x00 seller,\x00\x00 where is my parcel?\r\n" * 50
    )


def invalid_base64() -> bytes:
    return (
        _head("base64", 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n')
        + b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b"SGVsbG8gc2VsbGVy!!!***not base64 at all===\r\nQUJD\r\n=\r\n"
        + b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=x.pdf\r\n"
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + b"JVBERi0xLjQK" * 100
        + b"\x00\xff\xfe@@@@\r\n"
        + b"--b--\r\n"
    )


@dataclass
class Case:
    name: str
    build: object  # () -> bytes
    seconds: float  # the worker's whole pass, start-up included
    # What it must become ("stored": real mail with broken parts is still the buyer's
    # message); None where either is right (nesting deeper than the parser can follow).
    outcome: str | None = "stored"
    attachments: int | None = None  # how many a stored one keeps


def cases(full: bool) -> list[Case]:
    scale = 1 if full else 5
    return [
        Case("big", lambda: big_message(25 * MB // scale), 90),
        Case("many", lambda: many_attachments(1000 // scale), 60, attachments=1000 // scale),
        Case("nested", lambda: nested_multipart(10_000 // scale), 60, outcome=None),
        Case("header", lambda: long_header_line(MB // scale), 60),
        Case("nul", nul_bytes, 30),
        Case("base64", invalid_base64, 30),
    ]


# --- the worker -------------------------------------------------------------------------------


@dataclass
class Pass:
    line: str
    seconds: float
    peak_mb: float
    returncode: int
    log: str

    def count(self, name: str) -> int:
        match = re.search(rf"\b{name}=(\d+)", self.line)
        return int(match.group(1)) if match else -1


def run_worker(app_config, database_url: str, tmp_path: Path) -> Pass:
    env = worker_environment(app_config, database_url, SMTP_URL=f"outbox:{tmp_path / 'outbox'}")
    log = tmp_path / "worker.log"
    started = time.monotonic()
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "ingest", "poll"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        out = proc.stdout.read().decode()
        proc.stdout.close()
        # wait4 gives this child's own peak resident memory (KiB on Linux).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Pass(
        line=out.strip().splitlines()[-1] if out.strip() else "",
        seconds=time.monotonic() - started,
        peak_mb=usage.ru_maxrss / 1024,
        returncode=proc.returncode,
        log=log.read_text(errors="replace")[-3000:],
    )


def baseline_mb(app_config, database_url, tmp_path) -> float:
    """Peak memory of a worker pass over nothing: what the process needs anyway."""
    return run_worker(app_config, database_url, tmp_path).peak_mb


def check_pass(app, client, auth, drop_mail, app_config, database_url, tmp_path, batch, base):
    """Deliver `batch` between ordinary mail, run one worker pass, check everything."""
    ordinary = [amazon_message(10_000 + i, TO) for i in range(len(batch) + 1)]
    sizes = []
    for i, case in enumerate(batch):
        drop_mail(ordinary[i])
        raw = case.build()
        sizes.append(len(raw))
        drop_mail(raw)
    drop_mail(ordinary[-1])
    largest = max(sizes)
    before = db.session.scalar(select(func.count()).select_from(Message))
    result = run_worker(app_config, database_url, tmp_path)
    report = f"{result.line} in {result.seconds:.1f} s, peak {result.peak_mb:.0f} MB\n{result.log}"
    total = len(batch) * 2 + 1
    assert result.returncode == 0, report
    assert result.count("fetched") == total and result.count("errors") == 0, report
    handled = sum(result.count(n) for n in ("stored", "quarantined", "unrouted"))
    assert handled == total, report
    # Bounded: time per pass, and memory over the idle worker's by a few times the mail.
    assert result.seconds < sum(c.seconds for c in batch), report
    assert result.peak_mb < base + 40 + 12 * largest / MB, report
    record("pathological mail: mails", len(batch))
    db.session.expire_all()

    # Exactly once: the ordinary mail all stored, each pathological one stored or kept raw.
    assert db.session.scalar(select(func.count()).select_from(Message)) == before + total
    ids = db.session.scalars(select(Message.message_id)).all()
    assert len(ids) == len(set(ids))
    outcomes = {}
    for case in batch:
        stored = db.session.scalar(
            select(Message).where(Message.message_id == f"<patho-{case.name}@example.com>")
        )
        outcomes[case.name] = "stored" if stored is not None else "quarantined"
        if stored is not None:
            assert stored.thread_id is not None
            assert "\x00" not in stored.subject and "\x00" not in (stored.text_body or "")
            started = time.monotonic()
            response = client.get(f"/threads/{stored.thread_id}")
            assert response.status_code == 200, case.name
            assert time.monotonic() - started < 20, f"thread page of {case.name} is too slow"
    quarantined = db.session.scalar(
        select(func.count()).select_from(Message).where(Message.quarantine_reason.is_not(None))
    )
    assert quarantined == list(outcomes.values()).count("quarantined")
    return result, outcomes, largest


@pytest.fixture
def patho_world(app, make_channel, make_user, auth):
    make_channel("UK", address=TO)
    admin = make_user(Role.ADMIN)
    auth.login(admin.email)


@pytest.mark.parametrize(
    "batch",
    [pytest.param(cases(False), id="quick")]
    + [
        pytest.param([case], id=f"full-{case.name}", marks=pytest.mark.slow) for case in cases(True)
    ],
)
def test_pathological_mail(
    app, client, auth, patho_world, drop_mail, app_config, database_url, tmp_path, batch
):
    """The quick size puts every case, scaled down, in one pass; the full size gives each
    full-size mail a worker of its own, so its time and peak memory are its own."""
    base = baseline_mb(app_config, database_url, tmp_path)
    result, outcomes, largest = check_pass(
        app, client, auth, drop_mail, app_config, database_url, tmp_path, batch, base
    )
    for case in batch:
        if case.outcome is not None:
            assert outcomes[case.name] == case.outcome, case.name
        if case.attachments is not None:
            message = db.session.scalar(
                select(Message).where(Message.message_id == f"<patho-{case.name}@example.com>")
            )
            count = select(func.count()).select_from(Attachment)
            assert db.session.scalar(count.where(Attachment.message_id == message.id)) == (
                case.attachments
            )
    if len(batch) == 1:
        name = f"pathological mail: {batch[0].name}"
        record(f"{name}: KiB", largest // 1024)
        record(f"{name}: {outcomes[batch[0].name]}")
        record(f"{name}: worker seconds", round(result.seconds))
        record(f"{name}: worker peak MB over idle", max(0, round(result.peak_mb - base)))


def test_huge_headers_are_not_kept_after_parsing():
    # The parser's header cache used to keep every header value it had parsed (up to
    # 2,048 of them): mail with 1 MB headers grew a long-running worker by megabytes a
    # message, up to gigabytes. What it keeps now stays small whatever comes in.
    import gc
    import tracemalloc

    from ingest.mail.parse import parse_message

    def parse_big(n: int) -> None:
        parse_message(long_header_line(256 * 1024).replace(b"Pathological", f"P{n}".encode()))

    parse_big(-1)  # warm up: imports, compiled patterns
    gc.collect()
    tracemalloc.start()
    try:
        for n in range(30):
            parse_big(n)
        gc.collect()
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept < 4 * MB, f"{kept / MB:.0f} MB kept after parsing 30 mails with 256 KB headers"
