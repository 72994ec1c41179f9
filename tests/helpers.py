"""Helpers shared by several test modules (fixtures live in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from portal.extensions import db
from portal.models import Message

#: The repository, where `make` and `flask --app wsgi` run.
ROOT = Path(__file__).resolve().parents[1]
#: The real-mail fixtures.
MAIL = Path(__file__).resolve().parent / "data" / "mail"
#: The routes that hand out files: tests/portal/test_downloads.py checks that each goes
#: through the one Content-Disposition helper, tests/security/test_downloads_browser.py
#: clicks each in Chromium.
DOWNLOAD_ENDPOINTS = frozenset({"inbox.attachment", "admin.raw_message", "orgs.export_messages"})


def mail_bytes(name_or_bytes: str | bytes, *, replace: dict[str, str] | None = None) -> bytes:
    """A fixture .eml by name (or raw bytes as given), with `replace` applied to its text."""
    raw = name_or_bytes if isinstance(name_or_bytes, bytes) else (MAIL / name_or_bytes).read_bytes()
    for old, new in (replace or {}).items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


def stored_messages() -> list[Message]:
    """Every message row, in the order stored."""
    return db.session.scalars(db.select(Message).order_by(Message.id)).all()


def parse_mail(raw: bytes) -> EmailMessage:
    """Mail as sent, parsed; SMTP's CRLF read as LF, so decoded bodies compare to Python text."""
    return BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))


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
