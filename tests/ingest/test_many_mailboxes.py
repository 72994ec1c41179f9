"""A pass over many IMAP mailboxes (real Dovecot): several at once, each once, nothing twice.

Runs on the suite's SQLite file, where a pass stays one mailbox after another, and with
--postgres on PostgreSQL, where it polls POLL_CONCURRENCY mailboxes at once.
bench/mailboxes.py measures the same with two worker processes and 200 mailboxes.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest
from imapclient import IMAPClient

import ingest.pipeline as pipeline
from ingest.pipeline import PollSummary, poll_all, poll_one
from portal.extensions import db
from portal.models import Mailbox, Message
from portal.services import mailbox_config
from portal.sqltypes import utcnow
from tests.mailgen import amazon_message

pytestmark = pytest.mark.imap

ADDRESS = "uk-many@helpdesk.test"
MAILBOXES = 8
_users = itertools.count(1)
_messages = itertools.count(1)


@pytest.fixture
def mailboxes(app, dovecot, make_channel):
    """MAILBOXES IMAP mailboxes added as an admin adds them; returns their users."""
    make_channel("UK", address=ADDRESS)
    users = []
    for _ in range(MAILBOXES):
        user = f"many{next(_users)}-{os.getpid()}"
        dovecot.add_user(user, "imap-pass")
        settings = mailbox_config.imap_settings(
            host="127.0.0.1",
            port=dovecot.port,
            security="plain",
            username=user,
            folder="INBOX",
            processed_folder=None,
        )
        mailbox_config.create_mailbox(
            actor=None, name=user, settings=settings, password="imap-pass"
        )
        users.append(user)
    db.session.commit()
    # The MAIL_SOURCE mailbox: an empty Maildir, polled beside them.
    app.config["MAIL_SOURCE"] = f"maildir:{app.instance_path}/empty-maildir"
    return users


def _append(dovecot, user: str, count: int) -> None:
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=30) as client:
        client.login(user, "imap-pass")
        for _ in range(count):
            client.append("INBOX", amazon_message(next(_messages), ADDRESS))


def _stored() -> int:
    db.session.rollback()
    return db.session.scalar(db.select(db.func.count()).select_from(Message))


def test_a_pass_polls_several_mailboxes_at_once_and_each_once(mailboxes, dovecot, monkeypatch):
    for user in mailboxes:
        _append(dovecot, user, 2)
    polls: list[str] = []
    running = 0
    most = 0
    lock = threading.Lock()
    poll_mailbox = pipeline.poll_mailbox

    def slow_poll(mailbox, summary, **kwargs):
        # Long enough that polls run side by side whenever the pass lets them.
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            polls.append(mailbox.name)
        time.sleep(0.2)
        try:
            return poll_mailbox(mailbox, summary, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(pipeline, "poll_mailbox", slow_poll)
    summary = poll_all()

    assert summary.line() == "fetched=16 stored=16 duplicate=0 unrouted=0 quarantined=0 errors=0"
    assert sorted(polls) == sorted([*mailboxes, "default"])
    serial = db.engine.dialect.name == "sqlite"
    assert most == (1 if serial else pipeline.POLL_CONCURRENCY)
    assert _stored() == 16
    # What the pass's threads recorded is what this session reads.
    for mailbox in db.session.scalars(db.select(Mailbox)):
        assert mailbox.last_success_at is not None and mailbox.lease_owner is None
    assert poll_all().fetched == 0


def test_a_pass_skips_a_mailbox_another_worker_polled_after_the_pass_began(mailboxes, dovecot):
    user = mailboxes[0]
    mailbox = db.session.scalar(db.select(Mailbox).where(Mailbox.name == user))
    _append(dovecot, user, 1)
    began = utcnow()
    # Another worker polls it meanwhile: it fetched all that had arrived by then.
    assert poll_one(mailbox, PollSummary(), owner="other-host:1")
    assert _stored() == 1
    _append(dovecot, user, 1)

    skipped = PollSummary()
    assert poll_one(mailbox, skipped, owner="this-host:2", unless_polled_since=began)
    assert skipped.fetched == 0 and _stored() == 1
    db.session.refresh(mailbox)
    assert mailbox.lease_owner is None
    # The next pass (begun after that poll) fetches what came later.
    later = PollSummary()
    assert poll_one(mailbox, later, owner="this-host:2", unless_polled_since=utcnow())
    assert later.fetched == 1 and _stored() == 2


def test_one_poll_at_a_time_parses_in_worker_processes(app, monkeypatch):
    monkeypatch.setattr(pipeline, "PARSE_WORKERS", 1)
    options = {"max_attachment_bytes": 10**6, "parse_seconds": None}
    many = pipeline.PARSE_WORKERS_MIN_MESSAGES
    with (
        pipeline._parse_workers(many, **options) as first,
        pipeline._parse_workers(many, **options) as second,
    ):
        assert first is not None and second is None  # the second parses in its thread
    with pipeline._parse_workers(many, **options) as again:
        assert again is not None
