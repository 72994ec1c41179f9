"""IMAP IDLE against the real Dovecot: mail is fetched on arrival, and any IDLE failure
falls back to the interval poll and reconnects.

The first test runs the real worker (`flask ingest run`) as a subprocess with a
poll interval of an hour, so only IDLE can explain a message stored in seconds. The
others drive the watchers in-process to break IDLE on purpose.
"""

from __future__ import annotations

import imaplib
import itertools
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from imapclient import IMAPClient

import ingest.idle as idle
import ingest.pipeline as pipeline
from ingest.idle import IdleWatchers, MailboxWatcher
from ingest.mail.imap import ImapSource
from ingest.pipeline import PollSummary, poll_one
from ingest.scheduler import build_scheduler
from portal.extensions import db
from portal.models import Mailbox, Message
from portal.services import leases
from portal.services import mailboxes as mailbox_service
from tests.helpers import stored_count, wait_for_commit, worker_environment, worker_process
from tests.mailgen import amazon_message

pytestmark = pytest.mark.imap

ADDRESS = "uk-idle@helpdesk.test"
#: IDLE announces mail ~0.5 s after an APPEND; the rest is the fetch. Generous for CI.
ARRIVAL_TIMEOUT = 10
_mail = itertools.count(1)


@pytest.fixture
def deliver(account, dovecot) -> Callable[[], str]:
    """APPEND one buyer message (a new connection each time: Dovecot may restart between)."""

    def append() -> str:
        raw = amazon_message(1000 + next(_mail), ADDRESS)
        with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10) as client:
            client.login(account, "imap-pass")
            client.append("INBOX", raw)
        return raw.split(b"Message-ID: ", 1)[1].split(b"\n", 1)[0].strip().decode()

    return append


@pytest.fixture
def mailbox(app, account, make_channel) -> Mailbox:
    """The channel mail is for, and the configured mailbox row (a first poll would add it)."""
    make_channel("UK", address=ADDRESS)
    mailbox = mailbox_service.sync_configured_mailbox(app.config["MAIL_SOURCE"])
    db.session.commit()
    return mailbox


@pytest.fixture
def watchers(app, mailbox, monkeypatch) -> Iterator[IdleWatchers]:
    """This process's watchers for the enabled mailboxes, stopped after the test."""
    monkeypatch.setattr(idle, "MAX_RECONNECT_SECONDS", 1.0)  # tests wait for reconnects
    watchers = IdleWatchers(app)
    yield watchers
    watchers.stop()


def wait_until(what: str, check: Callable[[], object], timeout: float = ARRIVAL_TIMEOUT):
    return wait_for_commit(what, check, timeout)


def the_watcher(watchers: IdleWatchers) -> MailboxWatcher:
    (watcher,) = watchers.watchers.values()
    return watcher


def idling(watcher: MailboxWatcher) -> Callable[[], bool]:
    # The first fetch runs once IDLE is on, so a watcher that has fetched is watching.
    return lambda: watcher.supported is True and watcher.polls >= 1


# --- the real worker ------------------------------------------------------------------


def test_worker_fetches_appended_mail_at_once_without_waiting_for_the_poll(
    app, mailbox, deliver, database_url, tmp_path
):
    env = worker_environment(
        app.config,
        database_url,
        SMTP_URL=f"outbox:{tmp_path / 'outbox'}",
        POLL_SECONDS="3600",  # after the first pass at start-up, only IDLE can fetch
        IMAP_IDLE="1",
        LOG_LEVEL="INFO",
    )
    log_path = tmp_path / "worker.log"
    with worker_process(env, log_path) as worker:
        wait_until(
            "the worker to watch the mailbox with IDLE",
            lambda: "Mailbox default: waiting for new mail with IDLE" in log_path.read_text(),
            timeout=60,
        )
        latencies = []
        for _ in range(3):
            message_id = deliver()
            appended = time.monotonic()
            wait_until(f"{message_id} to be stored", lambda: stored_count(message_id) == 1)  # noqa: B023
            latencies.append(time.monotonic() - appended)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    log = log_path.read_text()
    assert "Ingest worker stopped" in log, log
    assert "Traceback" not in log, log
    assert log.count("Mailbox default (IDLE): fetched=1 stored=1") == 3, log
    # Well inside the hour-long poll interval; typically ~0.6 s.
    assert max(latencies) < ARRIVAL_TIMEOUT, latencies
    assert db.session.scalar(db.select(db.func.count()).select_from(Message)) == 3


# --- in-process watchers --------------------------------------------------------------


def test_a_watcher_fetches_on_arrival_and_never_twice(app, watchers, deliver):
    watchers.reconcile()
    watcher = the_watcher(watchers)
    wait_until("the watcher to be in IDLE", idling(watcher))
    ids = [deliver() for _ in range(3)]
    for message_id in ids:
        wait_until(f"{message_id} to be stored", lambda: stored_count(message_id) == 1)  # noqa: B023
    time.sleep(1)  # any extra announcement has been handled meanwhile
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count()).select_from(Message)) == 3
    mailbox = db.session.scalar(db.select(Mailbox))
    assert mailbox.lease_owner is None
    assert mailbox.last_success_at is not None
    assert watcher.errors == 0


def test_mail_another_worker_fetched_after_the_announcement_is_not_polled_again(
    app, watchers, mailbox, deliver, monkeypatch
):
    # Two workers each watch the mailbox; the one that loses the lease to the other's
    # fetch must not poll again once that fetch is done.
    monkeypatch.setattr(idle, "LEASE_RETRY_SECONDS", 0.2)
    polled_by: list[str] = []
    poll_mailbox = pipeline.poll_mailbox

    def counting(mailbox, summary, *, owner, **kwargs):
        polled_by.append(owner)
        return poll_mailbox(mailbox, summary, owner=owner, **kwargs)

    monkeypatch.setattr(pipeline, "poll_mailbox", counting)
    watchers.reconcile()
    watcher = the_watcher(watchers)
    wait_until("the watcher to be in IDLE", idling(watcher))
    polled_by.clear()
    assert leases.acquire_lease(mailbox, "other-host:1", ttl=timedelta(seconds=60))
    message_id = deliver()
    time.sleep(1.5)  # announced (about 0.5 s), and refused the lease a few times
    assert polled_by == []
    # The other worker fetches it, as its own watcher would, and lets go of the lease.
    assert poll_one(mailbox, PollSummary(), owner="other-host:1")
    assert stored_count(message_id) == 1
    time.sleep(1)  # the watcher's retries see that poll

    assert polled_by == ["other-host:1"]
    db.session.rollback()
    assert db.session.get(Mailbox, mailbox.id).lease_owner is None
    # Mail that comes later is the watcher's to fetch.
    later = deliver()
    wait_until(f"{later} to be stored", lambda: stored_count(later) == 1)
    assert polled_by[1:] == [idle.watcher_owner()]


@pytest.mark.parametrize("broken", ["start_idle", "wait_for_mail"])
def test_idle_errors_fall_back_to_polling_and_idle_resumes_when_it_works_again(
    app, watchers, deliver, monkeypatch, caplog, broken
):
    def fail(self, *args, **kwargs):
        raise imaplib.IMAP4.abort("socket error: EOF")

    real = getattr(ImapSource, broken)
    monkeypatch.setattr(ImapSource, broken, fail)
    app.config["POLL_SECONDS"] = 1
    scheduler = build_scheduler(app, BackgroundScheduler, watchers=watchers)
    scheduler.start()
    try:
        with caplog.at_level(logging.WARNING, logger="ingest.idle"):
            first = deliver()
            wait_until("it to be stored while IDLE fails", lambda: stored_count(first) == 1)
            wait_until("the poll to start a watcher", lambda: watchers.watchers)
            watcher = the_watcher(watchers)
            wait_until("a second failed IDLE attempt", lambda: watcher.errors >= 2)
        assert "IDLE on mailbox default failed (abort: socket error: EOF)" in caplog.text
        assert "it is polled every 1 s meanwhile" in caplog.text
    finally:
        scheduler.shutdown(wait=True)

    # IDLE works again: the watcher reconnects on its own (within a second here), and
    # with the interval poll stopped only the watcher can bring the next message in.
    monkeypatch.setattr(ImapSource, broken, real)
    second = deliver()
    wait_until("the watcher to store it", lambda: stored_count(second) == 1)
    third = deliver()
    wait_until("IDLE to store it", lambda: stored_count(third) == 1)
    assert watcher.failures == 0  # reset once IDLE has worked again
    assert stored_count(first) == 1


def test_dovecot_stopped_mid_idle_and_started_again_the_watcher_reconnects(
    app, watchers, deliver, dovecot
):
    watchers.reconcile()
    watcher = the_watcher(watchers)
    wait_until("the watcher to be in IDLE", idling(watcher))
    before = deliver()
    wait_until("IDLE to store the first message", lambda: stored_count(before) == 1)

    dovecot.stop(keep_files=True)
    try:
        wait_until("the watcher to notice", lambda: watcher.errors >= 1)
        time.sleep(1.5)  # it keeps retrying while the server is away
        assert watcher.is_alive()
    finally:
        dovecot.start()
    polls = watcher.polls
    wait_until("the watcher to reconnect", lambda: watcher.polls > polls, timeout=30)
    after = deliver()
    wait_until("IDLE to store the next message", lambda: stored_count(after) == 1)
    assert stored_count(before) == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(Message)) == 2


def test_a_server_without_idle_is_left_to_the_poll(app, watchers, monkeypatch, caplog):
    monkeypatch.setattr(ImapSource, "supports_idle", lambda self: False)
    with caplog.at_level(logging.INFO, logger="ingest.idle"):
        watchers.reconcile()
        watcher = the_watcher(watchers)
        wait_until("the watcher to give up", lambda: watcher.supported is False)
        watcher.join(5)
    assert not watcher.is_alive()
    assert "Mailbox default: the server does not offer IDLE; it is polled every" in caplog.text
    watchers.reconcile()  # not asked again until its source changes
    assert the_watcher(watchers) is watcher


def test_watchers_follow_the_mailbox_table(app, watchers, mailbox):
    db.session.add(Mailbox(name="local", source_url="maildir:/tmp/sellerdesk-none"))
    db.session.commit()
    watchers.reconcile()
    assert list(watchers.watchers) == [mailbox.id]  # Maildir has no IDLE
    watcher = the_watcher(watchers)
    wait_until("the watcher to be in IDLE", idling(watcher))

    mailbox.is_enabled = False
    db.session.commit()
    watchers.reconcile()
    assert watchers.watchers == {}
    watcher.join(5)
    assert not watcher.is_alive()

    mailbox.is_enabled = True
    db.session.commit()
    watchers.reconcile()
    assert the_watcher(watchers) is not watcher
    wait_until("the new watcher to be in IDLE", idling(the_watcher(watchers)))


def test_a_connection_lost_without_bye_raises_instead_of_spinning(app, mailbox):
    # imapclient's idle_check swallows EOF and returns [] at once, again and again;
    # wait_for_mail must notice and raise rather than spin until its timeout.
    settings = mailbox_service.source_settings(mailbox)
    with ImapSource(settings, readonly=True) as source:
        source.start_idle()
        sock = source.client.socket()
        timer = threading.Timer(0.3, sock.shutdown, args=[socket.SHUT_RDWR])
        timer.start()
        started = time.monotonic()
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            source.wait_for_mail(30)
        timer.join()
    assert time.monotonic() - started < 5
