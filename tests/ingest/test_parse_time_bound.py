"""No single message holds up a mailbox: a parse that runs away is stopped, the mail
kept raw and quarantined as too slow to parse, and the mail after it stored as usual;
whether this process parses, a parse worker gives up on its own, or a worker stuck
inside a step that does not return is killed and replaced (INGEST_PARSE_SECONDS).
Through the real pipeline, on the Maildir the ingest tests deliver to.
"""

from __future__ import annotations

import os
import signal

import pytest

import ingest.pipeline as pipeline
from ingest.parse_workers import ParseWorkers
from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Message
from tests.helpers import stored_messages
from tests.mailgen import amazon_message, runaway_message

UK = "uk-chan01@helpdesk.test"


@pytest.fixture
def short_bound(app):
    app.config["INGEST_PARSE_SECONDS"] = 0.3


@pytest.fixture
def parse_workers(monkeypatch):
    monkeypatch.setattr(pipeline, "PARSE_WORKERS", 1)
    monkeypatch.setattr(pipeline, "PARSE_WORKERS_MIN_MESSAGES", 1)
    monkeypatch.setattr(pipeline, "BATCH_COUNT", 3)


def _quarantined() -> list[Message]:
    return list(
        db.session.scalars(db.select(Message).where(Message.quarantine_reason.is_not(None)))
    )


def _poll_runaway_among_mail(drop_mail) -> bytes:
    """Deliver a runaway mail second of five and poll; returns the runaway's bytes."""
    raw = runaway_message(UK)
    drop_mail(amazon_message(1, UK))
    drop_mail(raw)
    for i in range(2, 5):
        drop_mail(amazon_message(i, UK))
    assert poll_all().line() == "fetched=5 stored=4 duplicate=0 unrouted=0 quarantined=1 errors=0"
    return raw


def _assert_runaway_quarantined_and_the_rest_stored(raw: bytes) -> None:
    (slow,) = _quarantined()
    assert slow.quarantine_reason.startswith("too slow to parse")
    assert slow.raw == raw  # kept whole for an admin, never dropped
    stored = [m for m in stored_messages() if m.quarantine_reason is None]
    assert len(stored) == 4 and all(m.thread_id is not None for m in stored)


def test_a_runaway_parse_in_this_process_is_quarantined_and_the_next_mail_stored(
    uk, drop_mail, short_bound
):
    raw = _poll_runaway_among_mail(drop_mail)
    _assert_runaway_quarantined_and_the_rest_stored(raw)
    # Delivered again, it is the same mail: stored once.
    drop_mail(raw)
    assert poll_all().duplicate == 1


def test_a_parse_worker_gives_up_on_a_runaway_parse_and_goes_on(
    uk, drop_mail, short_bound, parse_workers
):
    raw = _poll_runaway_among_mail(drop_mail)
    _assert_runaway_quarantined_and_the_rest_stored(raw)


def test_a_parse_worker_that_never_answers_is_killed_and_replaced(
    app, uk, drop_mail, parse_workers, monkeypatch
):
    # A worker stopped (SIGSTOP) stands for one stuck inside a step no deadline check
    # interrupts: the ingest process must stop waiting, quarantine the mail it was on
    # and have a new worker parse the rest of the batch and the batches after it.
    app.config["INGEST_PARSE_SECONDS"] = 0.5
    for i in range(7):
        drop_mail(amazon_message(i, UK))
    submit = ParseWorkers.submit
    stopped: list[int] = []

    def stop_first_worker_then_submit(self, batch):
        if not stopped:
            worker = self.workers[0]
            worker.wait_ready()  # stopped while parsing, not while starting
            os.kill(worker.proc.pid, signal.SIGSTOP)
            stopped.append(worker.proc.pid)
        submit(self, batch)

    monkeypatch.setattr(ParseWorkers, "submit", stop_first_worker_then_submit)
    assert poll_all().line() == "fetched=7 stored=6 duplicate=0 unrouted=0 quarantined=1 errors=0"
    (slow,) = _quarantined()
    assert slow.quarantine_reason.startswith("too slow to parse")
    assert b"gen-0-" in slow.raw  # the first mail of the first batch
    with pytest.raises(ProcessLookupError):
        os.kill(stopped[0], 0)  # killed and reaped, not left stopped
