"""Two real ingest workers on one mailbox; the one holding the lease is killed with SIGKILL.

The other must wait for the dead worker's lease to expire (INGEST_LEASE_SECONDS, short
here), take the mailbox over, and finish: every message stored exactly once. Runs on
the suite's SQLite file and, with --postgres, on PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from imapclient import IMAPClient

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Mailbox, Message
from portal.services import mailboxes as mailbox_service
from portal.sqltypes import utcnow
from tests.helpers import worker_environment
from tests.mailgen import amazon_message

pytestmark = pytest.mark.imap

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 200
LEASE_SECONDS = 3
TIMEOUT = 120
ADDRESS = "uk-failover@helpdesk.test"
_users = itertools.count(1)

# `flask ingest run` (IDLE on, as in production), with batches of 10 that each take
# 0.2 s longer, so a pass over TOTAL messages lasts long enough to be killed halfway.
WORKER = """
import time

import ingest.pipeline as pipeline
from ingest.scheduler import run_worker
from wsgi import app

pipeline.BATCH_COUNT = 10
store = pipeline._Batch.store


def slow_store(self, batch):
    stored = store(self, batch)
    time.sleep(0.2)
    return stored


pipeline._Batch.store = slow_store
run_worker(app)
"""

# worker_identity() is "host:pid"; the IDLE watchers add "/idle".
OWNER_PID = re.compile(r":(\d+)(?:/idle)?$")


@pytest.fixture
def mailbox_with_mail(app, dovecot, make_channel):
    user = f"failover{next(_users)}-{os.getpid()}"
    dovecot.add_user(user, "imap-pass")
    app.config["MAIL_SOURCE"] = f"imap://{user}:imap-pass@127.0.0.1:{dovecot.port}/INBOX"
    make_channel("UK", address=ADDRESS)
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=30) as client:
        client.login(user, "imap-pass")
        for i in range(TOTAL):
            client.append("INBOX", amazon_message(i, ADDRESS))
    # Two workers starting on an empty database would both insert this row.
    mailbox_service.sync_configured_mailbox(app.config["MAIL_SOURCE"])
    db.session.commit()


def _worker(app, database_url: str, log: Path) -> subprocess.Popen:
    env = worker_environment(
        app.config,
        database_url,
        SMTP_URL=f"outbox:{log.parent / 'outbox'}",
        POLL_SECONDS="1",
        INGEST_LEASE_SECONDS=str(LEASE_SECONDS),
        LOG_LEVEL="INFO",
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _state() -> tuple[int, str | None, object]:
    db.session.rollback()  # see the workers' latest commits
    count = db.session.scalar(db.select(db.func.count()).select_from(Message))
    mailbox = db.session.scalar(db.select(Mailbox).where(Mailbox.name == "default"))
    return count, mailbox.lease_owner, mailbox.lease_expires_at


def _holder_pid(owner: str | None) -> int | None:
    match = OWNER_PID.search(owner or "")
    return int(match.group(1)) if match else None


def test_a_killed_lease_holder_is_taken_over_after_the_lease_expires_and_nothing_is_lost(
    app, mailbox_with_mail, database_url, tmp_path
):
    workers = {}
    for n in (1, 2):
        proc = _worker(app, database_url, tmp_path / f"worker{n}.log")
        workers[proc.pid] = (proc, tmp_path / f"worker{n}.log")

    def report() -> str:
        return "\n".join(
            f"--- worker {pid}\n{log.read_text()}" for pid, (_, log) in workers.items()
        )

    try:
        # Kill whichever worker holds the mailbox once it has stored some of the mail.
        deadline = time.monotonic() + TIMEOUT
        while True:
            count, owner, expires_at = _state()
            victim = _holder_pid(owner)
            if victim in workers and 20 <= count <= TOTAL - 50:
                break
            assert count <= TOTAL - 50, "the pass finished before it could be killed\n" + report()
            assert time.monotonic() < deadline, "no worker took the mailbox\n" + report()
            time.sleep(0.02)
        workers[victim][0].send_signal(signal.SIGKILL)
        workers[victim][0].wait()
        killed_at = utcnow()
        (survivor,) = set(workers) - {victim}
        at_kill, _, lease_until = _state()
        assert lease_until is not None and lease_until <= killed_at + timedelta(
            seconds=LEASE_SECONDS + 1
        )

        # Until the dead worker's lease runs out, nobody processes the mailbox.
        while utcnow() < lease_until - timedelta(seconds=0.3):
            count, owner, _ = _state()
            assert _holder_pid(owner) == victim, report()
            assert count == at_kill, report()
            time.sleep(0.05)
        # Then the survivor takes it over and finishes the job.
        took_over = False
        while True:
            count, owner, _ = _state()
            took_over = took_over or _holder_pid(owner) == survivor
            if count == TOTAL:
                break
            assert time.monotonic() < deadline, f"stuck at {count} of {TOTAL}\n" + report()
            time.sleep(0.05)
        assert took_over, report()

        proc = workers[survivor][0]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, report()
    finally:
        for proc, _ in workers.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    survivor_log = workers[survivor][1].read_text()
    assert "Traceback" not in survivor_log, survivor_log
    assert re.search(rf"being processed by \S+:{victim}\b", survivor_log), report()

    # Exactly once: one more pass finds nothing, and no message is there twice.
    final = poll_all(force=True)
    assert (final.fetched, final.stored, final.errors) == (0, 0, 0)
    rows = db.session.execute(db.select(Message.message_id, Message.uid)).all()
    assert len(rows) == TOTAL
    assert len({message_id for message_id, _ in rows}) == TOTAL
    assert len({uid for _, uid in rows}) == TOTAL
