#!/usr/bin/env python3
"""Many mailboxes: N Dovecot users, new mail in every one each cycle, two ingest workers.

Starts its own Dovecot (tests/servers.py, process limits raised for the connections of
N mailboxes) and a throwaway PostgreSQL. Per size (default N/4, N/2 and N, so that
growth with N shows in one run), it makes a fresh database (Alembic migrations; N
sellers, each with a UK channel and one IMAP mailbox of its own: the first is
MAIL_SOURCE, the others are added as an admin adds them) and starts `--workers` real
workers, `python -m flask --app wsgi ingest run`, with the app's settings except
POLL_SECONDS (and IMAP_IDLE per mode). Then, per cycle, every `--poll-seconds`:

  append   `--per-cycle` buyer messages to every user's INBOX (one MULTIAPPEND per
           user, 8 connections in parallel, sellers in a rotating order: mail arrives
           for many sellers at once); the end of its APPEND is a message's arrival
  stored   the bench reads new rows of `messages` every 50 ms; the first read that
           shows a message is when it was stored (committed, visible to the inbox)
  raw      once the cycle's mail is stored: the baseline, one client fetching the same
           messages mailbox after mailbox (LOGIN, SELECT, UID FETCH BODY.PEEK[], LOGOUT),
           the transport alone of a helpdesk that fetches one mailbox after another

It prints, per mode and size: cycle time (first APPEND to the last of the cycle's
messages stored) p50/p95 and its ratio to the raw fetch; lag per message (APPEND to
stored) and per mailbox (its slowest message in a cycle; the spread between the
slowest and the fastest mailbox); the workers' passes and the longest gap between two
polls of one mailbox (both from an audit trigger the bench puts on the `mailboxes`
table: every lease taken, renewed, given back, and every poll started); whether one
mailbox was ever held by two workers at once (a lease taken over before it expired),
and whether any message was fetched twice (the workers' `fetched=` log lines summed,
against the messages appended); then, across sizes, cycle time and pass time per
mailbox, so "grows at most linearly" shows as a ratio near or below 1.

    .venv/bin/python bench/mailboxes.py                    # N=200 (and 50, 100), interval poll
    .venv/bin/python bench/mailboxes.py --modes idle,poll  # also with IMAP IDLE
    .venv/bin/python bench/mailboxes.py --mailboxes 52 --sizes 52
    .venv/bin/python bench/mailboxes.py --cycles 5 --per-cycle 5 --poll-seconds 30

Modes: `poll` (IMAP_IDLE=0: the interval poll alone, whose passes the targets are
about) and `idle` (the app's default: IMAP IDLE, the interval poll as safety net). It
asserts nothing: it prints figures, and the issue's targets as met or not.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, where bench/ingest.py would shadow the
# `ingest` package; put the project root there instead (portal, ingest, tests, bench).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    end_processes,
    idle_poll_modes,
    percentile,
    run_bench,
    say,
    stop_servers,
    tail,
)

INBOUND_DOMAIN = "helpdesk.test"
FLASK_RUN = ["-m", "flask", "--app", "wsgi", "ingest", "run"]
#: How often the bench looks for newly stored messages.
CHECK_EVERY = 0.05
#: Connections appending at once (mail for many sellers arrives at the same time).
APPEND_THREADS = 8
#: Dovecot's default of 100 imap processes would cap the bench, not the worker: with
#: IDLE each worker keeps one session per mailbox open.
DOVECOT_LIMITS = """\
default_process_limit = 2000
default_client_limit = 8000
service imap {
  process_limit = 2000
}
service imap-login {
  process_limit = 500
}
"""
#: The bench's audit of the mailboxes table: every lease change and every poll start,
#: timed by the database's clock (clock_timestamp: when the statement ran).
AUDIT_SQL = """
CREATE TABLE bench_mailbox_audit (
    id bigserial PRIMARY KEY,
    mailbox_id integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    old_owner text, new_owner text,
    old_expires_at timestamp, new_expires_at timestamp,
    poll_started boolean NOT NULL
);
CREATE FUNCTION bench_mailbox_audit_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_mailbox_audit
        (mailbox_id, old_owner, new_owner, old_expires_at, new_expires_at, poll_started)
    VALUES (NEW.id, OLD.lease_owner, NEW.lease_owner, OLD.lease_expires_at,
            NEW.lease_expires_at,
            NEW.last_poll_started_at IS DISTINCT FROM OLD.last_poll_started_at);
    RETURN NEW;
END $$;
CREATE TRIGGER bench_mailbox_audit AFTER UPDATE ON mailboxes FOR EACH ROW
    WHEN (OLD.lease_owner IS DISTINCT FROM NEW.lease_owner
          OR OLD.lease_expires_at IS DISTINCT FROM NEW.lease_expires_at
          OR OLD.last_poll_started_at IS DISTINCT FROM NEW.last_poll_started_at)
    EXECUTE FUNCTION bench_mailbox_audit_trg();
"""
#: A poll this many mailbox ids below the highest of the pass so far starts a new pass
#: (a pass polls a few mailboxes at once, so its ids come slightly out of order).
PASS_RESTART = 8
FETCHED_RE = re.compile(r"Mailbox (\S+): fetched=(\d+) stored=(\d+) duplicate=(\d+)")


@dataclass
class Sent:
    """One appended message: its mailbox, cycle, UID and arrival (perf_counter)."""

    mailbox: int
    cycle: int
    uid: int
    appended_at: float
    stored_at: float | None = None


@dataclass
class Cycle:
    index: int
    started: float
    appended: float = 0.0  # when the last APPEND of the cycle ended
    done: float | None = None  # when the last of its messages was seen stored
    raw_seconds: float = 0.0

    @property
    def seconds(self) -> float | None:
        return None if self.done is None else self.done - self.started


@dataclass
class Result:
    mode: str
    n: int
    cycles: list[Cycle] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    passes: list[tuple[str, float, int]] = field(default_factory=list)  # owner, s, mailboxes
    max_gap: float = 0.0
    gap_mailbox: str = ""
    takeovers: int = 0
    lease_events: int = 0
    polls: int = 0
    fetched: int = 0
    duplicates: int = 0
    stored_rows: int = 0
    worker_errors: int = 0
    setup_seconds: float = 0.0
    startup_seconds: float = 0.0
    load: list[float] = field(default_factory=list)

    def cycle_seconds(self) -> list[float]:
        return [c.seconds for c in self.cycles if c.seconds is not None]

    def lags(self) -> list[float]:
        return [s.stored_at - s.appended_at for s in self.sent if s.stored_at is not None]

    def mailbox_lags(self) -> dict[int, dict[int, float]]:
        """cycle -> mailbox -> its slowest message's lag."""
        out: dict[int, dict[int, float]] = defaultdict(dict)
        for s in self.sent:
            if s.stored_at is not None:
                lag = s.stored_at - s.appended_at
                out[s.cycle][s.mailbox] = max(out[s.cycle].get(s.mailbox, 0.0), lag)
        return out

    @property
    def missing(self) -> int:
        return sum(1 for s in self.sent if s.stored_at is None)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from cryptography.fernet import Fernet

        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="sellerdesk-mailboxes-"))
        self.token_key = Fernet.generate_key().decode()
        self.dovecot: Any = None
        self.postgres: Any = None
        self.results: list[Result] = []
        self.sequence = 0
        self.rng = random.Random(args.seed)
        self.load_at_start = os.getloadavg()[0]

    # -- servers and users ------------------------------------------------------------

    def start(self) -> None:
        from tests.servers import DovecotServer, PostgresServer

        started = time.perf_counter()
        self.dovecot = DovecotServer(self.workdir / "dovecot", extra_config=DOVECOT_LIMITS)
        self.dovecot.start()
        self.postgres = PostgresServer(self.workdir / "postgres")
        self.postgres.start()
        for i in range(max(self.args.sizes)):
            self.dovecot.add_user(self.user(i), self.password(i))
        say(f"servers up in {time.perf_counter() - started:.1f} s (work dir {self.workdir})")

    def stop(self) -> None:
        stop_servers((self.dovecot, self.postgres), self.workdir, keep=self.args.keep)

    @staticmethod
    def user(i: int) -> str:
        return f"seller{i:03d}"

    def password(self, i: int) -> str:
        return f"pw-{i}-{os.getpid()}"

    def source_url(self, i: int) -> str:
        return f"imap://{self.user(i)}:{self.password(i)}@127.0.0.1:{self.dovecot.port}/INBOX"

    @staticmethod
    def address(i: int) -> str:
        return f"seller{i:03d}@{INBOUND_DOMAIN}"

    def _imap(self, i: int):
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=60)
        client.login(self.user(i), self.password(i))
        return client

    def _empty_inboxes(self, n: int) -> None:
        """Expunge what an earlier size left, so each size starts from empty mailboxes."""

        def empty(i: int) -> None:
            client = self._imap(i)
            client.select_folder("INBOX")
            uids = client.search(["ALL"])
            if uids:
                client.delete_messages(uids)
                client.expunge()
            client.logout()

        with ThreadPoolExecutor(APPEND_THREADS) as pool:
            list(pool.map(empty, range(n)))

    # -- database -----------------------------------------------------------------------

    def _config(self, url: str) -> dict[str, Any]:
        return {
            "SECRET_KEY": "sellerdesk-bench",
            "TOKEN_KEY": self.token_key,
            "SQLALCHEMY_DATABASE_URI": url,
            "MAIL_SOURCE": self.source_url(0),
            "SMTP_URL": f"outbox:{self.workdir / 'outbox'}",
            "INBOUND_DOMAIN": INBOUND_DOMAIN,
        }

    def _prepare(self, url: str, n: int) -> dict[str, int]:
        """Schema, N sellers with a channel and a mailbox each, the audit trigger.
        Returns the mailbox ids by seller number."""
        from flask_migrate import upgrade
        from sqlalchemy import text

        from portal import create_app
        from portal.extensions import db
        from portal.services import channels as channel_service
        from portal.services import mailbox_config
        from portal.services import mailboxes as mailbox_service
        from portal.services import users as user_service

        app = create_app(self._config(url))
        ids: dict[int, int] = {}
        with app.app_context():
            upgrade()
            for i in range(n):
                org = user_service.get_or_create_organisation(f"Seller {i:03d} Ltd", actor=None)
                channel = channel_service.create_channel(
                    org, "UK", actor=None, inbound_domain=INBOUND_DOMAIN
                )
                channel.helpdesk_address = self.address(i)
                if i == 0:  # MAIL_SOURCE: the mailbox an operator configures first
                    mailbox = mailbox_service.sync_configured_mailbox(self.source_url(0))
                else:
                    settings = mailbox_config.imap_settings(
                        host="127.0.0.1", port=self.dovecot.port, security="plain",
                        username=self.user(i), folder="INBOX", processed_folder=None,
                    )  # fmt: skip
                    mailbox = mailbox_config.create_mailbox(
                        actor=None, name=self.user(i), settings=settings,
                        password=self.password(i),
                    )  # fmt: skip
                ids[i] = mailbox.id
            db.session.commit()
            db.session.execute(text(AUDIT_SQL))
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
        return ids

    # -- workers ------------------------------------------------------------------------

    def _worker(self, url: str, mode: str, log: Path) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SECRET_KEY": "sellerdesk-bench",
            "TOKEN_KEY": self.token_key,
            "MAIL_SOURCE": self.source_url(0),
            "SMTP_URL": f"outbox:{self.workdir / 'outbox'}",
            "INBOUND_DOMAIN": INBOUND_DOMAIN,
            "LOG_LEVEL": "INFO",
            "POLL_SECONDS": str(self.args.poll_seconds),
            "IMAP_IDLE": "1" if mode == "idle" else "0",
        }
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, *FLASK_RUN], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    # -- mail ---------------------------------------------------------------------------

    def _append_cycle(self, n: int, cycle: int) -> list[Sent]:
        from tests.mailgen import amazon_message

        jobs = []
        for i in range(n):
            for _ in range(self.args.per_cycle):
                self.sequence += 1
                jobs.append((i, amazon_message(self.sequence, self.address(i))))
        by_mailbox: dict[int, list[bytes]] = defaultdict(list)
        for i, raw in jobs:
            by_mailbox[i].append(raw)

        def append(i: int) -> list[Sent]:
            # One MULTIAPPEND a mailbox: the cycle's mail for a seller arrives together.
            client = self._imap(i)
            answer = client.multiappend("INBOX", by_mailbox[i])
            answer = repr(answer).encode()  # a string or a tuple, by imapclient version
            at = time.perf_counter()
            client.logout()
            match = re.search(rb"APPENDUID \d+ (\d+)(?::(\d+))?", answer)
            if match is None:
                raise RuntimeError(f"Dovecot's APPEND gave no UID: {answer!r}")
            first = int(match.group(1))
            last = int(match.group(2) or first)
            if last - first + 1 != len(by_mailbox[i]):
                raise RuntimeError(f"Dovecot's APPENDUID {answer!r} names the wrong count")
            return [Sent(i, cycle, uid, at) for uid in range(first, last + 1)]

        # Sellers in a shuffled order, so no mailbox is always first to get mail.
        order = list(range(n))
        order = order[cycle % n :] + order[: cycle % n]
        with ThreadPoolExecutor(APPEND_THREADS) as pool:
            return [s for batch in pool.map(append, order) for s in batch]

    def _raw_fetch(self, sent: list[Sent]) -> float:
        """The same messages fetched by one client, one mailbox after another."""
        uids: dict[int, list[int]] = defaultdict(list)
        for s in sent:
            uids[s.mailbox].append(s.uid)
        started = time.perf_counter()
        for i in sorted(uids):
            client = self._imap(i)
            client.select_folder("INBOX", readonly=True)
            data = client.fetch(uids[i], ["BODY.PEEK[]"])
            if len(data) != len(uids[i]):
                raise RuntimeError(f"raw fetch of {self.user(i)} found {len(data)} messages")
            client.logout()
        return time.perf_counter() - started

    # -- one mode at one size -----------------------------------------------------------

    def run(self, mode: str, n: int) -> Result:
        import psycopg

        result = Result(mode, n)
        started = time.perf_counter()
        self._empty_inboxes(n)
        name = f"mailboxes_{mode}_{n}"
        self.postgres.create_database(name)
        url = self.postgres.url(name)
        ids = self._prepare(url, n)
        seller_of = {mailbox_id: i for i, mailbox_id in ids.items()}
        result.setup_seconds = time.perf_counter() - started

        logs = [self.workdir / f"worker-{mode}-{n}-{w}.log" for w in range(self.args.workers)]
        started = time.perf_counter()
        workers = [self._worker(url, mode, log) for log in logs]
        conn = psycopg.connect(self.postgres.dsn(name), autocommit=True)
        try:
            self._wait_ready(conn, mode, n, workers, logs)
            result.startup_seconds = time.perf_counter() - started
            say(f"  {mode} N={n}: workers ready in {result.startup_seconds:.1f} s")
            (audit_from,) = conn.execute("SELECT coalesce(max(id), 0) FROM bench_mailbox_audit")
            (rows_from,) = conn.execute("SELECT coalesce(max(id), 0) FROM messages")
            audit_from, rows_from = audit_from[0], rows_from[0]
            self._cycles(result, conn, rows_from, seller_of, ids, workers, logs)
            self._audit(result, conn, audit_from, seller_of)
            (count,) = conn.execute("SELECT count(*) FROM messages WHERE id > %s", (rows_from,))
            result.stored_rows = count[0]
        finally:
            conn.close()
            end_processes(workers)
        for log in logs:
            text = log.read_text(errors="replace")
            for match in FETCHED_RE.finditer(text):
                result.fetched += int(match.group(2))
                result.duplicates += int(match.group(4))
            result.worker_errors += text.count(" ERROR ") + text.count("Traceback")
        self.results.append(result)
        return result

    def _wait_ready(self, conn, mode: str, n: int, workers, logs: list[Path]) -> None:
        """Until every mailbox was polled once and, with IDLE, every watcher is waiting."""
        deadline = time.monotonic() + self.args.timeout
        while True:
            for proc, log in zip(workers, logs, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited ({proc.returncode}):\n{tail(log)}")
            (polled,) = conn.execute(
                "SELECT count(*) FROM mailboxes WHERE last_poll_finished_at IS NOT NULL"
            )
            watching = sum(
                log.read_text(errors="replace").count("waiting for new mail with IDLE")
                for log in logs
            )
            if polled[0] >= n and (mode != "idle" or watching >= n * len(workers)):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"workers not ready after {self.args.timeout:.0f} s: {polled[0]} of {n} "
                    f"mailboxes polled, {watching} IDLE watchers waiting\n{tail(logs[0])}"
                )
            time.sleep(0.2)

    def _cycles(self, result: Result, conn, rows_from, seller_of, ids, workers, logs) -> None:
        pending: dict[tuple[int, int], Sent] = {}
        early: dict[tuple[int, int], float] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def watch() -> None:
            # The stored-time of each message: the first read that shows its row. Two
            # workers commit out of id order, so the rows read again start at the
            # highest id below which every row has been seen, not at the highest seen.
            floor, seen = rows_from, set()
            while not stop.is_set():
                rows = conn.execute(
                    "SELECT id, mailbox_id, uid FROM messages WHERE id > %s", (floor,)
                ).fetchall()
                now = time.perf_counter()
                with lock:
                    for row_id, mailbox_id, uid in rows:
                        if row_id in seen:
                            continue
                        seen.add(row_id)
                        key = (seller_of.get(mailbox_id, -1), uid)
                        sent = pending.pop(key, None)
                        if sent is not None:
                            sent.stored_at = now
                        else:  # stored before the bench registered its APPEND
                            early[key] = now
                while floor + 1 in seen:
                    floor += 1
                    seen.discard(floor)
                time.sleep(CHECK_EVERY)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            begin = time.perf_counter()
            for c in range(self.args.cycles):
                # Mail lands at a random point of the workers' poll interval, as real
                # mail does (a fixed period would meet every pass at the same phase).
                start_at = begin + c * self.args.poll_seconds
                start_at += self.rng.uniform(0, self.args.poll_seconds / 2)
                time.sleep(max(0.0, start_at - time.perf_counter()))
                cycle = Cycle(c, time.perf_counter())
                result.load.append(os.getloadavg()[0])
                sent = self._append_cycle(result.n, c)
                cycle.appended = max(s.appended_at for s in sent)
                with lock:
                    for s in sent:
                        key = (s.mailbox, s.uid)
                        if key in early:
                            s.stored_at = early.pop(key)
                        else:
                            pending[key] = s
                result.sent.extend(sent)
                deadline = time.perf_counter() + self.args.timeout
                while any(s.stored_at is None for s in sent):
                    for proc, log in zip(workers, logs, strict=True):
                        if proc.poll() is not None:
                            raise RuntimeError(f"a worker exited:\n{tail(log)}")
                    if time.perf_counter() > deadline:
                        break
                    time.sleep(CHECK_EVERY)
                stored = [s.stored_at for s in sent if s.stored_at is not None]
                if len(stored) == len(sent):
                    cycle.done = max(stored)
                cycle.raw_seconds = self._raw_fetch(sent)
                result.cycles.append(cycle)
                lags = [s.stored_at - s.appended_at for s in sent if s.stored_at is not None]
                say(
                    f"  {result.mode} N={result.n} cycle {c + 1}/{self.args.cycles}: "
                    f"append {cycle.appended - cycle.started:.1f} s, "
                    + (f"cycle {cycle.seconds:.1f} s" if cycle.seconds else "NOT ALL STORED")
                    + f", lag p50 {statistics.median(lags) if lags else 0:.1f} s, "
                    f"raw fetch {cycle.raw_seconds:.1f} s"
                )
        finally:
            stop.set()
            watcher.join()

    def _audit(self, result: Result, conn, audit_from: int, seller_of) -> None:
        rows = conn.execute(
            "SELECT mailbox_id, extract(epoch FROM at), old_owner, new_owner, "
            "old_expires_at, poll_started, at::timestamp FROM bench_mailbox_audit "
            "WHERE id > %s ORDER BY id",
            (audit_from,),
        ).fetchall()
        result.lease_events = len(rows)
        starts: dict[int, list[float]] = defaultdict(list)
        by_owner: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for mailbox_id, at, old, new, old_expires, poll_started, at_naive in rows:
            at = float(at)
            # Taken from another owner whose lease had not expired: two holders at once.
            taken = old is not None and new is not None and old != new
            if taken and old_expires is not None and _naive(old_expires) > at_naive:
                result.takeovers += 1
            if poll_started:
                result.polls += 1
                starts[mailbox_id].append(at)
                if new is not None and not new.endswith("/idle"):
                    by_owner[new].append((at, mailbox_id))
        for mailbox_id, times in starts.items():
            times.sort()
            for a, b in zip(times, times[1:], strict=False):
                if b - a > result.max_gap:
                    result.max_gap = b - a
                    result.gap_mailbox = self.user(seller_of.get(mailbox_id, 0))
        # A worker's interval pass walks the mailboxes in id order (a few at once): a
        # pass ends where the next poll goes back to a mailbox well below the last ones.
        for owner, events in by_owner.items():
            events.sort()
            first, top, polled = events[0][0], events[0][1], {events[0][1]}
            prev = first
            for at, mailbox_id in events[1:]:
                restart = mailbox_id < top - min(PASS_RESTART, max(1, result.n // 2))
                if restart or at - prev > self.args.poll_seconds / 2:
                    result.passes.append((owner, prev - first, len(polled)))
                    first, top, polled = at, mailbox_id, set()
                polled.add(mailbox_id)
                top, prev = max(top, mailbox_id), at
            result.passes.append((owner, prev - first, len(polled)))


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _passes(r: Result, workers: int) -> list[float]:
    """Durations of the interval passes that polled a worker's share of the mailboxes."""
    return [s for _, s, count in r.passes if count >= r.n // (2 * workers)]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def report(bench: Bench) -> str:
    import platform

    args = bench.args
    lines = [
        f"Sellerdesk, many mailboxes: {args.workers} workers (`flask --app wsgi ingest run`) "
        f"on PostgreSQL, Dovecot on 127.0.0.1",
        f"  Python {platform.python_version()}, {os.cpu_count()} CPUs; POLL_SECONDS="
        f"{args.poll_seconds}, {args.cycles} cycles of {args.per_cycle} messages per mailbox; "
        f"load average (1 min) at start {bench.load_at_start:.2f}, at end "
        f"{os.getloadavg()[0]:.2f}",
        "  cycle: first APPEND to the last of the cycle's messages stored; raw: one client",
        "  fetching them mailbox after mailbox; lag: APPEND to stored; spread: slowest minus",
        "  fastest mailbox in a cycle; pass: a worker's interval pass (first to last poll);",
        "  gap: longest time between two polls of one mailbox",
    ]
    for mode in args.modes:
        results = [r for r in bench.results if r.mode == mode]
        if not results:
            continue
        what = "IMAP IDLE, the interval poll as safety net" if mode == "idle" else "IMAP_IDLE=0"
        lines += [
            "",
            f"mode {mode} ({what})",
            f"  {'N':>4} {'append':>6} {'cycle p50':>9} {'p95':>6} {'raw':>5} {'ratio':>5} "
            f"{'lag p50':>7} {'p95':>5} {'max':>5} {'spread':>6} {'pass p50':>8} {'max':>5} "
            f"{'gap':>5} {'2 holders':>9} {'fetched':>9} {'load':>4}",
        ]
        for r in results:
            cycles = r.cycle_seconds()
            raw = _median([c.raw_seconds for c in r.cycles])
            append = _median([c.appended - c.started for c in r.cycles])
            lags = r.lags()
            spreads = [max(m.values()) - min(m.values()) for m in r.mailbox_lags().values() if m]
            passes = _passes(r, args.workers)
            p50 = _median(cycles)
            lines.append(
                f"  {r.n:>4} {append:>5.1f}s {p50:>8.1f}s {percentile(cycles, 95):>5.1f}s "
                f"{raw:>4.1f}s {(p50 / raw if raw else 0):>5.1f} {_median(lags):>6.1f}s "
                f"{percentile(lags, 95):>4.1f}s {max(lags, default=0):>4.1f}s "
                f"{max(spreads, default=0):>5.1f}s {_median(passes):>7.1f}s "
                f"{max(passes, default=0):>4.1f}s {r.max_gap:>4.1f}s {r.takeovers:>9} "
                f"{r.fetched:>4}/{len(r.sent):<4} {_mean(r.load):>4.1f}"
            )
        for r in results:
            mlags = r.mailbox_lags()
            worst: dict[int, float] = defaultdict(float)
            for per in mlags.values():
                for i, lag in per.items():
                    worst[i] = max(worst[i], lag)
            slow = sorted(worst.items(), key=lambda kv: -kv[1])[:3]
            every = [v for m in mlags.values() for v in m.values()]
            lines.append(
                f"  N={r.n}: per-mailbox lag p50 {_median(every):.1f} s, max "
                f"{max(every, default=0):.1f} s (slowest: "
                + ", ".join(f"{bench.user(i)} {lag:.1f} s" for i, lag in slow)
                + f"); {r.polls} polls, {len(_passes(r, args.workers))} passes, longest gap "
                f"{r.max_gap:.1f} s ({r.gap_mailbox}); stored {r.stored_rows}, missing "
                f"{r.missing}, duplicates {r.duplicates}, worker errors {r.worker_errors}; "
                f"setup {r.setup_seconds:.1f} s, workers ready in {r.startup_seconds:.1f} s"
            )
        base, last = results[0], results[-1]
        base_cycle = _median(base.cycle_seconds()) / base.n
        base_pass = _median(_passes(base, args.workers)) / base.n
        lines.append(f"  per mailbox, and ratio to N={base.n}:")
        for r in results:
            cycle = _median(r.cycle_seconds()) / r.n
            pass_ = _median(_passes(r, args.workers)) / r.n
            lines.append(
                f"    N={r.n}: cycle {cycle * 1000:.0f} ms (x{_ratio(cycle, base_cycle):.2f}), "
                f"pass {pass_ * 1000:.0f} ms (x{_ratio(pass_, base_pass):.2f})"
            )
        lags = last.lags()
        passes = _passes(last, args.workers)
        spreads = [max(m.values()) - min(m.values()) for m in last.mailbox_lags().values() if m]
        # With IDLE the mail is fetched on arrival: the cycle is the worker's work. Polling
        # alone, the cycle is mostly waiting for the next pass; the pass is the work.
        grow = (
            _ratio(_median(last.cycle_seconds()) / last.n, base_cycle)
            if mode == "idle"
            else _ratio(_median(passes) / last.n, base_pass)
        )
        limit = args.poll_seconds
        lines += [
            f"  targets at N={last.n} ({mode}):",
            f"    every mailbox polled within POLL_SECONDS: longest pass {max(passes, default=0):.1f}"
            f" s, slowest message {max(lags, default=0):.1f} s, longest gap {last.max_gap:.1f} s ("
            + _met(max(passes, default=0) <= limit and not last.missing)
            + ")",
            f"    no mailbox more than one cycle behind the others: spread "
            f"{max(spreads, default=0):.1f} s (" + _met(max(spreads, default=0) <= limit) + ")",
            f"    never two workers on one mailbox: {last.takeovers} leases taken over, "
            f"{last.fetched} fetched for {len(last.sent)} appended, {last.duplicates} duplicates ("
            + _met(not last.takeovers and last.fetched == len(last.sent) and not last.duplicates)
            + ")",
            f"    {'cycle' if mode == 'idle' else 'pass'} time at most linear in N: x{grow:.2f} "
            f"per mailbox from N={base.n} to {last.n} (" + _met(grow <= 1.25) + ")",
        ]
    return "\n".join(lines)


def _ratio(value: float, base: float) -> float:
    return value / base if base else 0.0


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mailboxes", type=int, default=200, help="N (default 200)")
    parser.add_argument(
        "--sizes", help="comma-separated sizes to run (default: N/4, N/2, N), smallest first"
    )
    parser.add_argument("--cycles", type=int, default=3, help="cycles per size (default 3)")
    parser.add_argument("--per-cycle", type=int, default=3, help="messages per mailbox a cycle")
    parser.add_argument("--workers", type=int, default=2, help="ingest workers (default 2)")
    parser.add_argument(
        "--poll-seconds", type=int, default=20, help="POLL_SECONDS and the cycle (default 20)"
    )
    parser.add_argument("--modes", default="poll", help="poll (default), idle, or idle,poll")
    parser.add_argument(
        "--timeout", type=float, default=180, help="give up on a cycle after this many s"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the cycles' offsets")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (worker logs)")
    args = parser.parse_args(argv)
    if args.sizes:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    else:
        n = args.mailboxes
        args.sizes = sorted({max(1, n // 4), max(1, n // 2), n})
    args.modes = idle_poll_modes(parser, args.modes)
    if min(args.sizes) < 1 or args.cycles < 1 or args.per_cycle < 1 or args.workers < 1:
        parser.error("sizes, --cycles, --per-cycle and --workers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)

    def body() -> None:
        for mode in args.modes:
            for n in args.sizes:
                say(f"{mode}, N={n}: {args.cycles} cycles of {args.per_cycle} messages a mailbox")
                bench.run(mode, n)

    return run_bench(bench, body, report)


if __name__ == "__main__":
    sys.exit(main())
