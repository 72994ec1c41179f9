"""Batched ingestion: a whole batch is checked, routed and threaded with a few queries and
written by one commit, and gives exactly what storing the mail one by one gives.

Also: parse worker processes, and passes that go on when one mailbox's database work fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, event, insert
from sqlalchemy.exc import OperationalError

import ingest.pipeline as pipeline
from bench.corpus import CHANNEL_ADDRESSES, SPACING, Corpus
from ingest.mail.parse_result import parse_inbound
from ingest.parse_workers import ParseWorker, ParseWorkers
from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Attachment, Mailbox, Message, Thread
from portal.services import leases
from portal.services import mailboxes as mailbox_service
from tests.helpers import stored_messages as messages
from tests.mailgen import amazon_message

ROOT = Path(__file__).resolve().parents[2]
UK = "uk-chan01@helpdesk.test"


@pytest.fixture
def batch_sizes(monkeypatch) -> list[int]:
    """The size of every batch `_Batch.store` is given (to show mail shared one batch)."""
    sizes: list[int] = []
    store = pipeline._Batch.store

    def spy(self, batch):
        sizes.append(len(batch))
        return store(self, batch)

    monkeypatch.setattr(pipeline._Batch, "store", spy)
    return sizes


def mail(message_id: str, *, sender: str, subject: str, headers: str = "", to: str = UK) -> bytes:
    return (
        f"Delivered-To: {to}\nFrom: {sender}\nSubject: {subject}\nMessage-ID: {message_id}\n"
        f"{headers}\n{subject}, body\n"
    ).encode()


# --- within one batch --------------------------------------------------------------------


def test_follow_up_in_the_same_batch_joins_the_thread_its_first_message_opened(
    uk, drop_mail, batch_sizes
):
    # Different senders and subjects: only In-Reply-To/References can tie them together,
    # and the first message is not in the database yet when the second is matched.
    drop_mail(mail("<first@example.com>", sender="a@example.com", subject="Parcel missing"))
    drop_mail(
        mail(
            "<second@example.com>",
            sender="b@example.com",
            subject="Something else",
            headers="In-Reply-To: <first@example.com>\n",
        )
    )
    drop_mail(
        mail(
            "<third@example.com>",
            sender="c@example.com",
            subject="A third subject",
            headers="In-Reply-To: <second@example.com>\n"
            "References: <first@example.com> <second@example.com>\n",
        )
    )
    assert poll_all().line() == "fetched=3 stored=3 duplicate=0 unrouted=0 quarantined=0 errors=0"
    assert batch_sizes == [3]
    first, second, third = messages()
    assert first.thread_id == second.thread_id == third.thread_id is not None
    assert db.session.scalar(db.select(db.func.count()).select_from(Thread)) == 1


def test_amazon_follow_up_in_the_same_batch_joins_by_alias_and_order(uk, drop_mail, batch_sizes):
    drop_mail("amazon_uk_inquiry.eml")
    drop_mail("amazon_uk_followup.eml")
    poll_all()
    assert batch_sizes == [2]
    first, second = messages()
    assert first.thread_id == second.thread_id


def test_follow_up_in_the_same_batch_never_joins_another_channels_thread(
    make_channel, drop_mail, batch_sizes
):
    make_channel("UK", address=UK)
    make_channel("DE", address="de-chan02@helpdesk.test")
    drop_mail(mail("<uk-1@example.com>", sender="a@example.com", subject="Question"))
    drop_mail(
        mail(
            "<de-1@example.com>",
            sender="a@example.com",
            subject="Re: Question",
            headers="In-Reply-To: <uk-1@example.com>\n",
            to="de-chan02@helpdesk.test",
        )
    )
    poll_all()
    assert batch_sizes == [2]
    first, second = messages()
    assert first.channel_id != second.channel_id
    assert first.thread_id != second.thread_id


def test_duplicate_inside_one_batch_is_stored_once(uk, drop_mail, batch_sizes):
    raw = amazon_message(1, UK)
    drop_mail(raw)
    drop_mail(raw)
    drop_mail("not_mail.eml")
    drop_mail("not_mail.eml")  # quarantined mail is de-duplicated the same way
    assert poll_all().line() == "fetched=4 stored=1 duplicate=2 unrouted=0 quarantined=1 errors=0"
    assert batch_sizes == [4]
    assert len(messages()) == 2
    # And once more in a later batch: still a duplicate of what is stored.
    drop_mail(raw)
    assert poll_all().duplicate == 1
    assert len(messages()) == 2


def test_a_batch_costs_the_same_queries_however_many_messages_it_holds(uk, drop_mail):
    selects: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    def selects_for(n: int, start: int) -> int:
        for i in range(start, start + n):
            drop_mail(amazon_message(i, UK))
        selects.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert poll_all().stored == n
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(selects)

    selects_for(1, 0)  # the first pass also creates the mailbox row
    assert selects_for(5, 1) == selects_for(60, 10)


def test_a_batch_failing_after_its_new_threads_went_in_is_stored_one_by_one(
    uk, drop_mail, batch_sizes
):
    # The rolled-back threads' ids are handed out again (SQLite reuses the highest rowid)
    # while the failed attempt's objects are still referenced (by the traceback).
    for i in range(3):
        drop_mail(mail(f"<new-{i}@example.com>", sender=f"b{i}@example.com", subject=f"Q {i}"))
    failures = []

    def fail_the_batchs_messages(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO messages") and not failures:
            failures.append(statement)
            raise RuntimeError("the batch's message INSERT failed")

    event.listen(db.engine, "before_cursor_execute", fail_the_batchs_messages)
    try:
        assert poll_all().line() == (
            "fetched=3 stored=3 duplicate=0 unrouted=0 quarantined=0 errors=0"
        )
    finally:
        event.remove(db.engine, "before_cursor_execute", fail_the_batchs_messages)
    assert failures and batch_sizes == [3]
    assert len({m.thread_id for m in messages()}) == 3
    assert db.session.scalar(db.select(db.func.count()).select_from(Thread)) == 3


# --- batched gives what one by one gives -------------------------------------------------

MODES = {
    "one by one": {"BATCH_COUNT": 1, "PARSE_WORKERS": 0},
    "batched": {"BATCH_COUNT": 100, "PARSE_WORKERS": 0},
    "batched, parse workers": {"BATCH_COUNT": 100, "PARSE_WORKERS": 2},
}


def _corpus(n: int) -> list[bytes]:
    # Real-world-shaped mail (bench/corpus.py): follow-ups by In-Reply-To and by alias and
    # order, pre-sale questions, other languages, automatic mail, broken and unroutable mail.
    corpus = Corpus(start=datetime.now(UTC) - timedelta(seconds=SPACING * n), seed=3)
    raws = [corpus.message(i) for i in range(n)]
    # Repeats, within a batch and across batches.
    raws += [raws[5], raws[17], raws[150]]
    # A conversation by subject from one sender.
    raws += [
        mail("<s1@example.com>", sender="x@example.com", subject="Question about size"),
        mail("<s2@example.com>", sender="x@example.com", subject="AW: RE[2]: Question about size"),
        mail("<s3@example.com>", sender="y@example.com", subject="Re: Question about size"),
    ]
    # For no channel: kept as unrouted.
    raws.append(
        mail("<u1@example.com>", sender="x@example.com", subject="?", to="no@helpdesk.test")
    )
    return raws


def _snapshot() -> tuple[list[tuple], set[frozenset]]:
    rows = db.session.execute(
        db.select(Message.message_id, Message.content_hash, Message.channel_id, Message.thread_id)
        .where(Message.quarantine_reason.is_(None))
        .order_by(Message.id)
    ).all()
    threads = {t.id: t for t in db.session.scalars(db.select(Thread))}
    groups: dict[int, set] = {}
    for row in rows:
        if row.thread_id is not None:
            groups.setdefault(row.thread_id, set()).add((row.message_id, row.content_hash))
    described = set()
    for thread_id, members in groups.items():
        t = threads[thread_id]
        described.add(
            frozenset(
                [
                    *members,
                    ("thread", t.status.value, t.order_id or "", t.buyer_address),
                    ("thread", t.normalized_subject, t.awaiting_reply_since is None),
                ]
            )
        )
    stored = sorted((r.message_id, r.content_hash, r.channel_id) for r in rows)
    quarantined = db.session.scalars(
        db.select(Message.quarantine_reason).where(Message.quarantine_reason.is_not(None))
    ).all()
    return [*stored, *sorted(("quarantined", q) for q in quarantined)], described


def test_batched_ingest_threads_exactly_as_one_by_one(
    make_channel, make_org, drop_mail, monkeypatch
):
    org = make_org("Bench Seller")
    for code, address in CHANNEL_ADDRESSES.items():
        make_channel(code, organisation=org, address=address)
    raws = _corpus(260)
    monkeypatch.setattr(pipeline, "PARSE_WORKERS_MIN_MESSAGES", 1)
    results = {}
    for mode, settings in MODES.items():
        for name, value in settings.items():
            monkeypatch.setattr(pipeline, name, value)
        for raw in raws:
            drop_mail(raw)
        summary = poll_all()
        results[mode] = (summary.line(), *_snapshot())
        for model in (Attachment, Message, Thread):
            db.session.execute(delete(model))
        db.session.commit()

    line, stored, threads = results["one by one"]
    assert line == f"fetched={len(raws)} stored=262 duplicate=3 unrouted=1 quarantined=1 errors=0"
    assert any(len(group) > 4 for group in threads), "the corpus should hold conversations"
    for mode in ("batched", "batched, parse workers"):
        assert results[mode][0] == line, mode
        assert results[mode][1] == stored, mode
        assert results[mode][2] == threads, mode


# --- parse workers -----------------------------------------------------------------------


@pytest.fixture
def parse_workers(monkeypatch):
    monkeypatch.setattr(pipeline, "PARSE_WORKERS", 1)
    monkeypatch.setattr(pipeline, "PARSE_WORKERS_MIN_MESSAGES", 1)
    monkeypatch.setattr(pipeline, "BATCH_COUNT", 3)


def test_mail_of_a_parse_worker_that_died_is_parsed_here(uk, drop_mail, parse_workers, monkeypatch):
    for i in range(10):
        drop_mail(amazon_message(i, UK))
    drop_mail("not_mail.eml")
    submit = ParseWorkers.submit
    calls = []

    def submit_then_die(self, batch):
        submit(self, batch)
        calls.append(len(batch))
        if len(calls) == 2:  # two batches handed out, then the worker is killed
            for worker in self.workers:
                worker.proc.kill()

    monkeypatch.setattr(ParseWorkers, "submit", submit_then_die)
    assert poll_all().line() == "fetched=11 stored=10 duplicate=0 unrouted=0 quarantined=1 errors=0"
    assert len(calls) >= 2
    quarantined = db.session.scalar(
        db.select(Message).where(Message.quarantine_reason.is_not(None))
    )
    assert "not an e-mail" in quarantined.quarantine_reason


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are Linux's")
def test_a_parse_worker_answers_a_whole_batch_while_nobody_reads(tmp_path):
    # While the ingest process stores the batch before, it reads no answers: the worker
    # must not stop at a full pipe (64 KB by default) after a few of them.
    import fcntl
    import termios

    worker = ParseWorker()
    try:
        worker.wait_ready()
        raws = [amazon_message(i, UK) for i in range(60)]
        assert worker.send(10 * 1024 * 1024, 10.0, raws)
        fd = worker.proc.stdout.fileno()
        buffered = bytearray(4)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            fcntl.ioctl(fd, termios.FIONREAD, buffered)
            if int.from_bytes(buffered, sys.byteorder) > 64 * 1024:
                break
            time.sleep(0.05)
        assert int.from_bytes(buffered, sys.byteorder) > 64 * 1024
        assert [worker.receive(10.0).message_id for _ in raws] == [
            parse_inbound(raw, max_attachment_bytes=10 * 1024 * 1024).message_id for raw in raws
        ]
    finally:
        worker.close()


def test_parse_workers_stop_with_the_poll(uk, drop_mail, parse_workers, monkeypatch):
    started = []
    init = ParseWorker.__init__

    def remember(self, *args, **kwargs):
        init(self, *args, **kwargs)
        started.append(self.proc)

    monkeypatch.setattr(ParseWorker, "__init__", remember)
    for i in range(4):
        drop_mail(amazon_message(i, UK))
    assert poll_all().stored == 4
    assert len(started) == 1
    assert all(proc.poll() is not None for proc in started)


def test_parse_workers_exit_when_the_ingest_process_is_killed(tmp_path):
    # SIGKILL leaves no chance to stop them: they must notice on their own.
    script = textwrap.dedent(
        """
        import time
        from ingest.parse_workers import ParseWorkers
        workers = ParseWorkers(2, max_attachment_bytes=1000)
        print(" ".join(str(w.proc.pid) for w in workers.workers), flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_running(pid) for pid in pids):
            time.sleep(0.1)
        assert not any(_running(pid) for pid in pids), f"parse workers {pids} outlived the kill"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; its new parent reaps it


# --- one mailbox's failure never stops the pass -------------------------------------------


def test_mailbox_row_added_meanwhile_by_another_worker(app, uk, drop_mail, database_url):
    """Two workers starting at once both find no "default" row and both insert one."""
    drop_mail("amazon_uk_inquiry.eml")
    other_worker = create_engine(database_url)

    def other_worker_inserts_first(mapper, connection, target):
        if target.name == mailbox_service.DEFAULT_MAILBOX_NAME:
            with other_worker.begin() as conn:
                conn.execute(
                    insert(Mailbox.__table__).values(name=target.name, source_url=target.source_url)
                )

    event.listen(Mailbox, "before_insert", other_worker_inserts_first)
    try:
        summary = poll_all()
    finally:
        event.remove(Mailbox, "before_insert", other_worker_inserts_first)
        other_worker.dispose()
    assert summary.line() == "fetched=1 stored=1 duplicate=0 unrouted=0 quarantined=0 errors=0"
    assert db.session.scalar(db.select(db.func.count()).select_from(Mailbox)) == 1


@pytest.fixture
def two_mailboxes(app, uk, drop_mail, tmp_path) -> None:
    """The configured mailbox (polled first) with one message, and a second one with one."""
    drop_mail(amazon_message(1, UK))
    mailbox_service.sync_configured_mailbox(app.config["MAIL_SOURCE"])
    db.session.commit()
    second = tmp_path / "second"
    for sub in ("new", "cur", "tmp"):
        (second / sub).mkdir(parents=True)
    (second / "new" / "1.eml").write_bytes(amazon_message(2, UK))
    db.session.add(Mailbox(name="second", source_url=f"maildir:{second}"))
    db.session.commit()


def _locked(*args, **kwargs):
    raise OperationalError("UPDATE mailboxes", {}, Exception("database is locked"))


@pytest.mark.parametrize("step", ["acquire_lease", "release_lease"])
def test_a_database_error_on_one_mailboxs_lease_does_not_stop_the_others(
    two_mailboxes, monkeypatch, step
):
    real = getattr(leases, step)

    def fail_for_default(mailbox, *args, **kwargs):
        if mailbox.name == mailbox_service.DEFAULT_MAILBOX_NAME:
            _locked()
        return real(mailbox, *args, **kwargs)

    monkeypatch.setattr(leases, step, fail_for_default)
    summary = poll_all()
    assert summary.errors == 1
    assert summary.stored == (1 if step == "acquire_lease" else 2)
    second = db.session.scalar(db.select(Mailbox).where(Mailbox.name == "second"))
    assert second.last_success_at is not None and second.lease_owner is None


def test_a_failure_recording_the_outcome_does_not_stop_the_others(two_mailboxes, monkeypatch):
    real = mailbox_service.record_poll_success

    def fail_for_default(mailbox, *args, **kwargs):
        if mailbox.name == mailbox_service.DEFAULT_MAILBOX_NAME:
            _locked()
        return real(mailbox, *args, **kwargs)

    monkeypatch.setattr(mailbox_service, "record_poll_success", fail_for_default)
    summary = poll_all()
    assert (summary.errors, summary.stored) == (1, 2)


def test_reference_lookup_uses_the_channel_message_id_index_without_statistics(
    uk, drop_mail, database_url
):
    # Without ANALYZE statistics SQLite once chose ix_messages_channel_id for this and
    # scanned every message of the channel (25 ms a lookup at 9,000 messages).
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's query planner")
    drop_mail(amazon_message(1, UK))
    poll_all()
    captured: list[tuple[str, tuple]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM messages" in statement and "message_id IN" in statement:
            captured.append((statement, parameters))

    drop_mail(
        mail(
            "<reply@example.com>",
            sender="a@example.com",
            subject="Re: hi",
            headers="In-Reply-To: <not-stored@example.com>\n",
        )
    )
    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        poll_all()
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    lookups = [(s, p) for s, p in captured if "thread_id IS NOT NULL" in s]
    assert lookups
    with db.engine.connect() as conn:
        for statement, parameters in lookups:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            assert "ix_messages_channel_message_id" in " ".join(row[-1] for row in plan)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_free_heap_memory_goes_back_to_the_system():
    # Blocks the size of mail (below glibc's mmap threshold, so on the heap), most of
    # them freed and a few kept between them: the freed pages stay resident until
    # given back, as the poll process's resident size crept up over a large poll.
    from ingest.parse_workers import give_back_free_memory

    def resident_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    give_back_free_memory()
    blocks = [bytes(100_000 + i) for i in range(1000)]
    kept = blocks[::20]
    del blocks
    before = resident_mb()
    give_back_free_memory()
    assert resident_mb() < before - 50  # about 95 of the 100 MB freed
    assert len(kept) == 50
