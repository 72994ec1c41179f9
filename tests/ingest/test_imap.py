"""Ingestion against the real Dovecot the suite starts: exactly once, whatever fails."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Mailbox, MailboxPollHour, MailboxRemoval, Message, Thread
from portal.services import buyer_data
from portal.sqltypes import utcnow
from tests.helpers import worker_environment
from tests.mailgen import amazon_message

pytestmark = pytest.mark.imap

ROOT = Path(__file__).resolve().parents[2]


#: Where the mail goes: the address of the `uk` channel (tests/conftest.py).
ADDRESS = "uk-chan01@helpdesk.test"


def append(imap, count, start=0, to=ADDRESS):
    for i in range(start, start + count):
        imap.append("INBOX", amazon_message(i, to))


def stored_count():
    return db.session.scalar(db.select(db.func.count()).select_from(Message))


def test_poll_twice_stores_each_message_once_and_flags_seen(app, imap, uk):
    append(imap, 30)
    assert poll_all().line() == "fetched=30 stored=30 duplicate=0 unrouted=0 quarantined=0 errors=0"
    assert poll_all().fetched == 0
    assert stored_count() == 30
    imap.select_folder("INBOX")
    flags = imap.get_flags(imap.search("ALL"))
    assert all(b"\\Seen" in f for f in flags.values())
    mailbox = db.session.scalar(db.select(Mailbox))
    assert mailbox.last_uid == max(flags)
    assert mailbox.uidvalidity is not None
    # New mail after the checkpoint is picked up, and only that.
    append(imap, 5, start=30)
    assert poll_all().line() == "fetched=5 stored=5 duplicate=0 unrouted=0 quarantined=0 errors=0"


def test_the_same_bytes_appended_twice_are_stored_once(app, imap, uk):
    raw = amazon_message(1, ADDRESS)
    imap.append("INBOX", raw)
    imap.append("INBOX", raw)
    assert poll_all().line() == "fetched=2 stored=1 duplicate=1 unrouted=0 quarantined=0 errors=0"


def test_uidvalidity_change_rescans_without_duplicates(app, imap, uk):
    append(imap, 10)
    poll_all()
    mailbox = db.session.scalar(db.select(Mailbox))
    mailbox.uidvalidity = 1  # as if the server had rebuilt the folder
    db.session.commit()
    summary = poll_all()
    assert (summary.fetched, summary.stored, summary.duplicate) == (10, 0, 10)
    assert stored_count() == 10


def test_crash_after_commit_before_flagging_stores_nothing_twice(app, imap, uk, monkeypatch):
    from ingest.mail.imap import ImapSource

    append(imap, 10)

    def crash(self, keys):
        raise ConnectionResetError("connection lost after commit")

    monkeypatch.setattr(ImapSource, "mark_processed", crash)
    assert poll_all().errors == 1
    monkeypatch.undo()
    # force: past the failed pass's backoff, or this pass would not even run.
    summary = poll_all(force=True)
    assert (summary.fetched, summary.stored) == (0, 0)
    assert stored_count() == 10
    # ... and the next pass flags what the crashed one had committed but not flagged.
    imap.select_folder("INBOX")
    assert imap.search("UNSEEN") == []


def test_processed_folder_option_moves_mail(app, imap, uk, account, dovecot):
    app.config["MAIL_SOURCE"] = (
        f"imap://{account}:imap-pass@127.0.0.1:{dovecot.port}/INBOX?processed=Processed"
    )
    append(imap, 3)
    assert poll_all().stored == 3
    imap.select_folder("INBOX")
    assert imap.search("ALL") == []
    imap.select_folder("Processed")
    assert len(imap.search("ALL")) == 3


def test_mail_committed_but_not_moved_is_moved_by_the_next_pass(
    app, imap, uk, account, dovecot, monkeypatch
):
    from ingest.mail.imap import ImapSource

    app.config["MAIL_SOURCE"] = (
        f"imap://{account}:imap-pass@127.0.0.1:{dovecot.port}/INBOX?processed=Processed"
    )
    append(imap, 4)

    def crash(self, keys):
        raise ConnectionResetError("connection lost after commit")

    monkeypatch.setattr(ImapSource, "mark_processed", crash)
    assert poll_all().errors == 1
    monkeypatch.undo()
    assert stored_count() == 4
    assert poll_all(force=True).stored == 0
    imap.select_folder("INBOX")
    assert imap.search("ALL") == []
    imap.select_folder("Processed")
    assert len(imap.search("ALL")) == 4


def test_auth_failure_is_recorded_with_backoff_and_others_go_on(
    app, imap, uk, account, dovecot, tmp_path
):
    good_maildir = tmp_path / "second"
    for sub in ("new", "cur", "tmp"):
        (good_maildir / sub).mkdir(parents=True)
    (good_maildir / "new" / "1.eml").write_bytes(amazon_message(99, ADDRESS))
    db.session.add(Mailbox(name="second", source_url=f"maildir:{good_maildir}"))
    db.session.commit()
    app.config["MAIL_SOURCE"] = f"imap://{account}:wrong-pass@127.0.0.1:{dovecot.port}/INBOX"
    summary = poll_all()
    assert summary.errors == 1 and summary.stored == 1
    broken = db.session.scalar(db.select(Mailbox).where(Mailbox.name == "default"))
    assert "LoginError" in broken.last_error or "AUTHENTICATIONFAILED" in broken.last_error
    assert broken.consecutive_failures == 1 and broken.next_attempt_at is not None
    # Backing off: the next scheduled pass skips it, a forced one retries.
    assert poll_all().errors == 0
    assert poll_all(force=True).errors == 1
    # Each poll is counted in its hour's row, failed or not (the admin dashboard's chart).
    counts = {
        mailbox_id: (polls, failures)
        for mailbox_id, polls, failures in db.session.execute(
            db.select(
                MailboxPollHour.mailbox_id,
                db.func.sum(MailboxPollHour.polls),
                db.func.sum(MailboxPollHour.failures),
            ).group_by(MailboxPollHour.mailbox_id)
        )
    }
    second = db.session.scalar(db.select(Mailbox).where(Mailbox.name == "second"))
    assert counts == {broken.id: (2, 2), second.id: (3, 0)}


def test_connection_refused_is_an_error_not_a_crash(app, uk):
    from tests.servers import free_port

    app.config["MAIL_SOURCE"] = f"imap://u:p@127.0.0.1:{free_port()}/INBOX"
    assert poll_all().errors == 1
    mailbox = db.session.scalar(db.select(Mailbox))
    assert "ConnectionRefusedError" in mailbox.last_error


def test_dovecot_restarted_during_poll_loses_nothing(app, imap, uk, dovecot, monkeypatch):
    import ingest.pipeline as pipeline

    monkeypatch.setattr(pipeline, "BATCH_COUNT", 5)
    append(imap, 60)
    imap.logout()
    restarted = threading.Event()
    original_store = pipeline._Batch.store

    def store_then_restart(self, batch):
        result = original_store(self, batch)
        if not restarted.is_set():
            restarted.set()
            dovecot.restart()
        return result

    monkeypatch.setattr(pipeline._Batch, "store", store_then_restart)
    first = poll_all()
    assert first.errors == 1 and 0 < first.stored < 60
    monkeypatch.undo()
    second = poll_all(force=True)
    assert first.stored + second.stored == 60
    assert second.errors == 0
    assert stored_count() == 60


def _poll_process(app, database_url: str) -> subprocess.Popen:
    env = worker_environment(app.config, database_url, INGEST_LEASE_SECONDS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "ingest", "poll"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_mid_poll_then_complete_stores_each_once(app, imap, uk, database_url, monkeypatch):
    import ingest.pipeline as pipeline

    total = 1500  # enough that each poll is still at work when the kill comes
    append(imap, total)
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        proc = _poll_process(app, database_url)
        time.sleep(rng.uniform(0.6, 2.0))  # start-up is ~0.5 s; then it is mid-batch
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        time.sleep(1.1)  # the dead worker's 1-second lease runs out
    assert kills >= 3, "the poll finished before it could be killed; use more mail"
    app.config["INGEST_LEASE_SECONDS"] = 1
    monkeypatch.setattr(pipeline, "BATCH_COUNT", 100)
    final = poll_all(force=True)
    assert final.errors == 0
    assert stored_count() == total
    ids = db.session.scalars(db.select(Message.message_id)).all()
    assert len(set(ids)) == total


def test_an_erased_buyers_mail_still_in_the_mailbox_does_not_come_back(app, imap, uk):
    raw = amazon_message(0, ADDRESS)
    imap.append("INBOX", raw)
    append(imap, 2, start=1)
    assert poll_all().stored == 3
    erased = db.session.scalar(db.select(Thread).order_by(Thread.id))
    buyer_data.erase_buyer(uk.organisation, erased.buyer_address, actor=None, now=utcnow())
    db.session.commit()
    # The next connection deletes it from the mailbox (test below); then the server
    # rebuilds the folder (every UID new), and the same mail is delivered again.
    poll_all()
    mailbox = db.session.scalar(db.select(Mailbox))
    mailbox.uidvalidity = 1
    db.session.commit()
    imap.append("INBOX", raw)
    summary = poll_all()
    assert (summary.fetched, summary.stored, summary.duplicate) == (3, 0, 3)
    assert stored_count() == 3
    db.session.expire_all()
    messages = db.session.get(Thread, erased.id).messages
    assert [m.text_body for m in messages] == [""] and messages[0].erased_at is not None


def _message_ids_in(imap, folder: str) -> set[str]:
    imap.select_folder(folder)
    uids = imap.search("ALL")
    headers = imap.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
    return {
        bytes(item[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]).decode().split(":", 1)[1].strip()
        for item in headers.values()
    }


def test_erased_mail_is_deleted_from_the_mailbox_on_the_next_connection(app, imap, uk):
    append(imap, 3)
    assert poll_all().stored == 3
    erased = db.session.scalar(db.select(Thread).order_by(Thread.id))
    [erased_id] = [m.message_id for m in erased.messages]
    kept = set(db.session.scalars(db.select(Message.message_id))) - {erased_id}
    buyer_data.erase_buyer(uk.organisation, erased.buyer_address, actor=None, now=utcnow())
    db.session.commit()
    assert db.session.scalar(db.select(db.func.count(MailboxRemoval.id))) == 1
    assert _message_ids_in(imap, "INBOX") == kept | {erased_id}

    assert poll_all().fetched == 0
    assert _message_ids_in(imap, "INBOX") == kept
    assert db.session.scalar(db.select(db.func.count(MailboxRemoval.id))) == 0
    assert poll_all().fetched == 0  # nothing left to do, nothing else touched
    assert _message_ids_in(imap, "INBOX") == kept


def test_erased_mail_moved_to_the_processed_folder_is_deleted_there(
    app, imap, uk, account, dovecot
):
    app.config["MAIL_SOURCE"] = (
        f"imap://{account}:imap-pass@127.0.0.1:{dovecot.port}/INBOX?processed=Processed"
    )
    append(imap, 2)
    assert poll_all().stored == 2
    erased = db.session.scalar(db.select(Thread).order_by(Thread.id))
    [erased_id] = [m.message_id for m in erased.messages]
    kept = set(db.session.scalars(db.select(Message.message_id))) - {erased_id}
    buyer_data.erase_buyer(uk.organisation, erased.buyer_address, actor=None, now=utcnow())
    db.session.commit()
    assert _message_ids_in(imap, "Processed") == kept | {erased_id}
    poll_all()
    assert _message_ids_in(imap, "Processed") == kept
