"""Two ingest workers at once, as separate OS processes, on one mailbox of the real Dovecot.

The lease row must let exactly one of them process the mailbox; the other says who
holds it and stores nothing. Runs on the suite's SQLite file and, with --postgres,
on PostgreSQL: `database_url` is whichever the session uses.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Mailbox, Message
from portal.services import mailboxes as mailbox_service
from tests.helpers import worker_environment
from tests.mailgen import amazon_message

pytestmark = pytest.mark.imap

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 300
TIMEOUT = 120
ADDRESS = "uk-workers@helpdesk.test"
CLEAN = "duplicate=0 unrouted=0 quarantined=0 errors=0"

# pipeline.poll_all's line: "Mailbox %s is being processed by %s (lease until %s); skipping",
# in the app's log format "… LEVEL [pid] logger: message".
REFUSED_RE = re.compile(
    r"\[(?P<pid>\d+)\] ingest\.pipeline: Mailbox default is being processed by "
    r"(?P<owner>\S+) \(lease until [^)]+\); skipping"
)

# One worker pass, as `flask ingest poll` runs it, but held at a start line: the app is
# built and everything imported first, then it waits for a line on stdin. Python
# start-up varies by a few hundred ms between two processes; on SQLite a worker that
# comes late can sit in the database's busy wait for the other's whole pass and then
# find the lease free (still exactly once, but nothing refused to look at).
WORKER = """
import sys
from wsgi import app
from ingest.pipeline import poll_all

with app.app_context():
    print("ready", flush=True)
    sys.stdin.readline()
    summary = poll_all()
print(summary.line(), flush=True)
sys.exit(1 if summary.errors else 0)
"""


@pytest.fixture
def mailbox_with_mail(app, imap, make_channel):
    """TOTAL buyer messages in the INBOX, their channel and the mailbox row, all committed."""
    make_channel("UK", address=ADDRESS)  # the factory commits
    for i in range(TOTAL):
        imap.append("INBOX", amazon_message(i, ADDRESS))
    # Two workers starting on an empty database would both insert the "default"
    # mailbox row (see the report on sync_configured_mailbox); an earlier pass would
    # have created it, so create it here.
    mailbox_service.sync_configured_mailbox(app.config["MAIL_SOURCE"])
    db.session.commit()


@pytest.fixture
def worker_env(app, database_url, tmp_path) -> dict[str, str]:
    return worker_environment(
        app.config, database_url, SMTP_URL=f"outbox:{tmp_path / 'outbox'}", LOG_LEVEL="INFO"
    )


def _spawn(args: list[str], env: dict[str, str], log: Path, **kwargs) -> subprocess.Popen:
    with log.open("wb") as stderr:
        # The child has its own copy of the descriptor; ours can close at once.
        return subprocess.Popen(args, cwd=ROOT, env=env, stderr=stderr, **kwargs)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe:
                pipe.close()


def _assert_each_message_stored_once() -> None:
    # One more pass finds nothing new, and every message is there exactly once.
    final = poll_all()
    assert (final.fetched, final.stored, final.errors) == (0, 0, 0)
    assert db.session.scalar(db.select(db.func.count()).select_from(Message)) == TOTAL
    rows = db.session.execute(db.select(Message.message_id, Message.uid)).all()
    assert len({message_id for message_id, _ in rows}) == TOTAL
    assert len({uid for _, uid in rows}) == TOTAL
    mailbox = db.session.scalar(db.select(Mailbox).where(Mailbox.name == "default"))
    assert mailbox.lease_owner is None
    assert mailbox.last_uid == max(uid for _, uid in rows)


def test_two_workers_started_together_one_is_refused_and_names_the_holder(
    mailbox_with_mail, worker_env, tmp_path
):
    workers = [
        _spawn(
            [sys.executable, "-c", WORKER],
            worker_env,
            tmp_path / f"worker{n}.log",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for n in (1, 2)
    ]
    try:
        for n, proc in enumerate(workers, 1):
            if proc.stdout.readline() != b"ready\n":
                proc.wait(timeout=TIMEOUT)
                pytest.fail(
                    f"worker {n} did not start:\n{(tmp_path / f'worker{n}.log').read_text()}"
                )
        for proc in workers:  # the same moment, give or take a write
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        codes = [proc.wait(timeout=TIMEOUT) for proc in workers]
        outs = {proc.pid: proc.stdout.read().decode() for proc in workers}
    finally:
        _stop(workers)

    logs = {
        proc.pid: (tmp_path / f"worker{n}.log").read_text() for n, proc in enumerate(workers, 1)
    }
    report = "\n".join(f"--- worker {pid}\n{outs[pid]}{logs[pid]}" for pid in logs)
    assert codes == [0, 0], report
    refusals = [m for log in logs.values() for m in REFUSED_RE.finditer(log)]
    assert len(refusals) == 1, "expected exactly one worker to be refused the lease\n" + report
    refused = int(refusals[0]["pid"])
    (holder,) = set(logs) - {refused}
    # The refused worker names the lease holder by host and pid (worker_identity).
    assert refusals[0]["owner"] == f"{socket.gethostname()}:{holder}", report
    assert outs[refused].strip() == f"fetched=0 stored=0 {CLEAN}", report
    assert outs[holder].strip() == f"fetched={TOTAL} stored={TOTAL} {CLEAN}", report
    _assert_each_message_stored_once()


def test_two_flask_ingest_poll_commands_at_once_store_each_message_once(
    mailbox_with_mail, worker_env, tmp_path
):
    # The real CLI, unsynchronised: whichever way the two passes interleave (one
    # refused, or one waiting on the database until the other is done), nothing is
    # fetched by both and nothing is stored twice.
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "ingest", "poll"]
    workers = [
        _spawn(command, worker_env, tmp_path / f"poll{n}.log", stdout=subprocess.PIPE)
        for n in (1, 2)
    ]
    try:
        codes = [proc.wait(timeout=TIMEOUT) for proc in workers]
        outs = [proc.stdout.read().decode() for proc in workers]
    finally:
        _stop(workers)

    logs = [(tmp_path / f"poll{n}.log").read_text() for n in (1, 2)]
    report = "\n".join(f"--- {out}{log}" for out, log in zip(outs, logs, strict=True))
    assert codes == [0, 0], report
    lines = sorted(out.strip() for out in outs)
    assert lines == [
        f"fetched=0 stored=0 {CLEAN} waiting=0",
        f"fetched={TOTAL} stored={TOTAL} {CLEAN} waiting=0",
    ], report
    pids = {proc.pid for proc in workers}
    for match in REFUSED_RE.finditer("".join(logs)):
        assert match["owner"] == f"{socket.gethostname()}:{(pids - {int(match['pid'])}).pop()}"
    _assert_each_message_stored_once()
