"""The Maildir source watched with inotify: a file delivered into new/ is fetched at
once, never read half-written, never stored twice; the interval poll stays the net.

The first test runs the real worker (`flask ingest run`) with a poll interval of an
hour, so only the watch can explain a message stored within seconds.
"""

from __future__ import annotations

import itertools
import logging
import signal
import time
from collections.abc import Callable, Iterator

import pytest

import ingest.maildir_watch as maildir_watch
from ingest.maildir_watch import MaildirWatcher, MaildirWatchers
from portal.extensions import db
from portal.models import Mailbox, Message
from portal.services import mailboxes as mailbox_service
from tests.helpers import stored_count, wait_for_commit, worker_environment, worker_process
from tests.mailgen import amazon_message

ADDRESS = "uk-watch@helpdesk.test"
#: A watched delivery is fetched in well under a second; generous for a loaded CI.
ARRIVAL_TIMEOUT = 15
_mail = itertools.count(1)


@pytest.fixture
def mailbox(app, maildir, make_channel) -> Mailbox:
    make_channel("UK", address=ADDRESS)
    mailbox = mailbox_service.sync_configured_mailbox(app.config["MAIL_SOURCE"])
    db.session.commit()
    return mailbox


@pytest.fixture
def watchers(app, mailbox) -> Iterator[MaildirWatchers]:
    watchers = MaildirWatchers(app, owner="test-host:1/watch")
    yield watchers
    watchers.stop()


def buyer_mail() -> tuple[bytes, str]:
    raw = amazon_message(5000 + next(_mail), ADDRESS)
    return raw, raw.split(b"Message-ID: ", 1)[1].split(b"\n", 1)[0].strip().decode()


def wait_until(what: str, check: Callable[[], object], timeout: float = ARRIVAL_TIMEOUT):
    return wait_for_commit(what, check, timeout)


def message_count() -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(Message))


def the_watcher(watchers: MaildirWatchers) -> MaildirWatcher:
    (watcher,) = watchers.watchers.values()
    return watcher


def test_worker_fetches_a_delivered_file_at_once_without_waiting_for_the_poll(
    app, mailbox, maildir, drop_mail, database_url, tmp_path
):
    env = worker_environment(
        app.config,
        database_url,
        SMTP_URL=f"outbox:{tmp_path / 'outbox'}",
        POLL_SECONDS="3600",  # after the first pass at start-up, only the watch can fetch
        MAILDIR_WATCH="1",
        LOG_LEVEL="INFO",
    )
    log_path = tmp_path / "worker.log"
    with worker_process(env, log_path) as worker:
        wait_until(
            "the worker to watch the Maildir",
            lambda: f"watching {maildir / 'new'} for new mail" in log_path.read_text(),
            timeout=60,
        )
        for _ in range(3):
            raw, message_id = buyer_mail()
            drop_mail(raw)  # into tmp/, then renamed into new/, as an MDA delivers
            wait_until(f"{message_id} to be stored", lambda: stored_count(message_id) == 1)  # noqa: B023
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    log = log_path.read_text()
    assert "Maildir folders with inotify watched" in log, log
    assert "Traceback" not in log, log
    assert log.count("Mailbox default (Maildir watch): fetched=1 stored=1") == 3, log
    assert message_count() == 3
    assert not list((maildir / "new").iterdir())


def test_a_file_written_in_place_is_read_only_once_it_is_whole(app, watchers, maildir, monkeypatch):
    # The writer pauses well inside the quiet period: a fetch on the first event
    # would read the first half and store a truncated message.
    monkeypatch.setattr(maildir_watch, "QUIET_SECONDS", 1.0)
    watchers.reconcile()
    raw, message_id = buyer_mail()
    half = len(raw) // 2
    with (maildir / "new" / "written-in-place").open("wb") as out:
        out.write(raw[:half])
        out.flush()
        time.sleep(0.2)
        out.write(raw[half:])
    wait_until(f"{message_id} to be stored", lambda: stored_count(message_id) == 1)
    message = db.session.scalar(db.select(Message).where(Message.message_id == message_id))
    assert message.raw == raw
    # The fetch counts itself after its commit, which the test may see first.
    wait_until("the watcher to count its fetch", lambda: the_watcher(watchers).polls >= 1)
    time.sleep(maildir_watch.QUIET_SECONDS * 2)  # a second fetch would have started by now
    assert the_watcher(watchers).polls == 1


def test_a_burst_of_deliveries_is_stored_once_each_in_few_fetches(app, watchers, drop_mail):
    watchers.reconcile()
    ids = []
    for _ in range(20):
        raw, message_id = buyer_mail()
        drop_mail(raw)
        ids.append(message_id)
    for message_id in ids:
        wait_until(f"{message_id} to be stored", lambda: stored_count(message_id) == 1)  # noqa: B023
    time.sleep(maildir_watch.QUIET_SECONDS * 4)  # any late event has been handled
    db.session.rollback()
    assert message_count() == 20
    assert 1 <= the_watcher(watchers).polls < 20
    assert db.session.scalar(db.select(Mailbox)).lease_owner is None


def test_watchers_follow_the_mailboxes_table(app, watchers, mailbox, maildir, drop_mail):
    watchers.reconcile()
    assert set(watchers.watchers) == {mailbox.id}
    mailbox.is_enabled = False
    db.session.commit()
    watchers.reconcile()
    assert watchers.watchers == {}
    raw, message_id = buyer_mail()
    drop_mail(raw)
    time.sleep(maildir_watch.QUIET_SECONDS * 4)
    assert stored_count(message_id) == 0  # a disabled mailbox is not fetched by its old watch
    assert [p.name for p in (maildir / "new").iterdir()] == ["1.sellerdesk-test"]


def test_a_folder_that_cannot_be_watched_is_left_to_the_poll(
    app, watchers, mailbox, tmp_path, caplog
):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the Maildir should be")
    mailbox.source_url = f"maildir:{blocked}"
    db.session.commit()
    with caplog.at_level(logging.WARNING, logger="ingest.maildir_watch"):
        watchers.reconcile()
    assert watchers.watchers == {}
    assert f"cannot watch {blocked / 'new'}" in caplog.text
    assert "it is polled every" in caplog.text
