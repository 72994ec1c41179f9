#!/usr/bin/env python3
"""Ingest benchmark: `flask --app wsgi ingest poll` as a process against a plain IMAP fetch.

Starts its own Dovecot (tests/servers.py) and a throwaway PostgreSQL, appends N
messages for a fresh user, and measures, each in a process of its own so one side's
memory never counts for the other:

  raw      imapclient: SELECT, SEARCH ALL, FETCH BODY.PEEK[] in batches; nothing else
           (the limit: what the transport alone costs)
  quiet    the same with imaplib's trace off, as the ingest fetches
  process  `python -m flask --app wsgi ingest poll`, run again and again as an
           operator's cron would, until a poll fetches nothing or ends with nothing
           waiting (`waiting=0`: the search a next poll would begin with found
           nothing); timed from the first process's start to the last one's exit,
           start-up included, once on SQLite and once on PostgreSQL (each a fresh
           database, the mailbox made unseen again)
  startup  the same command on an empty mailbox, a few times (median)

and prints messages/second, peak RSS (VmHWM of the process plus those of its parse
workers) and, per database, one line ending `ratio_to_raw=X rss_mb=Y`. The corpus
is the real-world profile (bench/realworld.py: real mail from mail libraries' test
suites, pathological shapes, Amazon's relay; sizes fixed) or, with `--corpus amazon`,
the Amazon relay mix alone (bench/corpus.py). Setup (downloads, appending, schema,
channels) is timed separately and not measured. It asserts nothing but the corpus's
size bounds: it prints figures.

    .venv/bin/python bench/ingest.py                     # N=5000, real-world, SQLite and PostgreSQL
    .venv/bin/python bench/ingest.py --sizes 1000,5000   # peak RSS at two sizes
    .venv/bin/python bench/ingest.py --databases sqlite  # no PostgreSQL
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://u:p@host/db
    .venv/bin/python bench/ingest.py --corpus amazon     # the Amazon relay mix
    .venv/bin/python bench/ingest.py --in-process        # also one pass inside one process
    .venv/bin/python bench/ingest.py --profile /tmp/ingest.pstats   # cProfile that pass
    .venv/bin/python bench/ingest.py -n 150 --only photo   # 1.4 MB photos: memory worst case
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, where this very file would shadow the
# `ingest` package; put the project root there instead (portal, ingest, tests, bench).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

#: The issue's targets for the whole process, real-world profile, per database.
TARGET_RATIO = {"sqlite": 0.25, "postgresql": 0.15}
TARGET_RSS_MB = 200.0
#: Peak RSS counts as independent of N when it grows less than this between sizes.
RSS_FLAT_TOLERANCE = 0.10
RAW_BATCH = 100  # the same batch size as ingest.pipeline.BATCH_COUNT
APPEND_CHUNK = 50  # messages per MULTIAPPEND command
FLASK_POLL = ["-m", "flask", "--app", "wsgi", "ingest", "poll"]
#: The command line of a parse worker (ingest.parse_workers), and of the poll process.
WORKER_MARK, POLL_MARK = b"ingest.parse_workers", b"flask"


# --------------------------------------------------------------------------- helpers


def _compile_bytecode() -> None:
    """Compile the checkout's modules once, as `make bytecode` does for an install
    (docs/operations.md): an operator's processes start from cached bytecode. Where
    PYTHONDONTWRITEBYTECODE is set (this machine sets it), or the checkout is read-only
    to the process (the systemd units), every process compiled the whole app again,
    about 0.3 s of each start-up and each parse worker's."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "portal", "ingest", "wsgi.py"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _rss_mb() -> float:
    """Current resident set size of this process, in MB (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _usage(cpu_start: float) -> dict[str, float]:
    """Peak RSS (MB) of this process so far, and CPU seconds since `cpu_start`.

    The peak is VmHWM, the high-water mark of this process's own address space.
    ru_maxrss would be wrong here: Linux folds the peak of the pre-exec address
    space into it, and subprocess starts children with vfork, which runs in the
    parent's address space until exec, so every child of a 115 MB parent would
    report at least 115 MB (measured: both phases showed the parent's 115.2 MB).
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/self/status") as fh:
            hwm_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
        peak = hwm_kb * 1024 / 1e6
    except (OSError, StopIteration):  # not Linux: ru_maxrss (bytes on macOS)
        peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024) / 1e6
    return {"peak_rss_mb": peak, "rss_end_mb": _rss_mb(), "cpu_seconds": _cpu() - cpu_start}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Peaks:
    """The peak RSS (VmHWM) of a process and of its parse workers, read every 20 ms while
    they run: each process's own high-water mark, so only a process that lives less than
    20 ms goes unseen (or one whose peak falls in its last 20 ms). Their sum bounds the
    peak of the whole ingest from above.

    `root` is the process to watch; None watches this process's children only (the
    in-process pass measures its own peak itself).
    """

    def __init__(self, root: int | None = None) -> None:
        import threading

        self.root = root
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def root_peak(self) -> float:
        return self.peaks.get(self.root, 0.0) if self.root else 0.0

    @property
    def workers(self) -> dict[int, float]:
        return {pid: mb for pid, mb in self.peaks.items() if pid != self.root}

    def _watch(self) -> None:
        parent = self.root or os.getpid()
        while True:
            watched = [(pid, WORKER_MARK) for pid in _children(parent)]
            if self.root:
                watched.append((self.root, POLL_MARK))
            for pid, mark in watched:
                try:
                    # Until it execs, a child spawned by vfork shares its parent's memory,
                    # and its VmHWM is the parent's: count it only once it runs its program.
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        if mark not in fh.read():
                            continue
                    with open(f"/proc/{pid}/status") as fh:
                        kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
                except (OSError, StopIteration, ValueError):
                    continue  # gone meanwhile, or a zombie
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), kb * 1024 / 1e6)
            if self._stop.wait(0.02):
                return


def _children(pid: int) -> list[int]:
    pids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                pids += [int(child) for child in fh.read().split()]
        except OSError:
            continue
    return pids


def _emit(result: dict[str, Any]) -> None:
    # The parent reads the last line of stdout.
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- phases (children)


def phase_raw(args: argparse.Namespace) -> None:
    """The limit: fetch every message with BODY.PEEK[] and throw the bytes away."""
    from imapclient import IMAPClient  # only the transport: no Flask, no SQLAlchemy

    rss_start, cpu_start = _rss_mb(), _cpu()
    started = time.perf_counter()
    client = IMAPClient(args.host, port=args.port, ssl=False, timeout=60)
    if args.phase == "quiet":
        # What ingest.mail.imap.quiet_imaplib does: imaplib's trace off, which IMAPClient turns
        # on for its logger (imaplib then formats every fetched message, logged or not).
        client._imap.debug = 0
    client.login(args.user, args.password)
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search(["ALL"]))
    count = nbytes = 0
    for start in range(0, len(uids), args.raw_batch):
        data = client.fetch(uids[start : start + args.raw_batch], ["BODY.PEEK[]"])
        for item in data.values():
            nbytes += len(item[b"BODY[]"])
            count += 1
        del data
    client.logout()
    seconds = time.perf_counter() - started
    _emit({"messages": count, "bytes": nbytes, "seconds": seconds, "rss_start_mb": rss_start,
           **_usage(cpu_start)})  # fmt: skip


def phase_ingest(args: argparse.Namespace) -> None:
    """One ingest pass, as `flask ingest poll` runs it."""
    from portal import create_app

    app = create_app(_app_config(args.database_url, args.mail_source, args.token_key, args.tmp))
    from ingest.pipeline import poll_all, settle_worker_process

    with app.app_context():
        # As `flask ingest poll` does; it reads the app's engine, so inside the context.
        settle_worker_process()
        rss_start = _rss_mb()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu_start, children_cpu_start, started = _cpu(), _children_cpu(), time.perf_counter()
        with _Peaks() as children:
            summary = poll_all(force=True)
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        usage = _usage(cpu_start)
    # The parse workers are part of the ingest: their CPU (counted once they have been
    # waited for, which poll_all does) and their peak RSS count with the parent's.
    children_cpu = _children_cpu() - children_cpu_start
    children_peak = sum(children.peaks.values())
    _emit({"messages": summary.fetched, "seconds": seconds, "rss_start_mb": rss_start,
           "summary": summary.line(), **usage,
           "cpu_seconds": usage["cpu_seconds"] + children_cpu, "children_cpu_seconds": children_cpu,
           "own_peak_rss_mb": usage["peak_rss_mb"], "children": len(children.peaks),
           "children_peak_rss_mb": children_peak,
           "peak_rss_mb": usage["peak_rss_mb"] + children_peak})  # fmt: skip


def _app_config(database_url: str, mail_source: str, token_key: str, tmp: str) -> dict[str, Any]:
    return {
        "SECRET_KEY": "sellerdesk-bench",
        "TOKEN_KEY": token_key,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_SOURCE": mail_source,
        "SMTP_URL": f"outbox:{Path(tmp) / 'outbox'}",
        "INBOUND_DOMAIN": "helpdesk.test",
    }


# --------------------------------------------------------------------------- orchestration


@dataclass
class PhaseResult:
    name: str
    messages: int
    seconds: float
    peak_rss_mb: float
    rss_start_mb: float
    rss_end_mb: float
    cpu_seconds: float
    nbytes: int = 0
    summary: str = ""
    #: With parse workers: how many, their CPU and their summed peak RSS (included above).
    children: int = 0
    children_cpu_seconds: float = 0.0
    children_peak_rss_mb: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


@dataclass
class Poll:
    """One `flask ingest poll` process: its wall time, outcome and peaks."""

    seconds: float
    outcome: dict[str, int]
    own_peak_rss_mb: float
    workers: int
    workers_peak_rss_mb: float

    @property
    def peak_rss_mb(self) -> float:
        return self.own_peak_rss_mb + self.workers_peak_rss_mb


@dataclass
class ProcessResult:
    """`flask ingest poll` run until a poll fetched nothing or left nothing waiting, on one
    database."""

    database: str
    polls: list[Poll]
    seconds: float  # from the first poll's start to the last one's exit
    cpu_seconds: float  # every poll process and its parse workers

    @property
    def messages(self) -> int:
        return sum(p.outcome.get("fetched", 0) for p in self.polls)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def peak(self) -> Poll:
        return max(self.polls, key=lambda p: p.peak_rss_mb)

    @property
    def outcome(self) -> str:
        total: dict[str, int] = {}
        for poll in self.polls:
            for key, value in poll.outcome.items():
                total[key] = total.get(key, 0) + value
        if "waiting" in total:  # what the last poll left, not a sum
            total["waiting"] = self.polls[-1].outcome["waiting"]
        return " ".join(f"{k}={v}" for k, v in total.items())


@dataclass
class Run:
    n: int
    corpus_bytes: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    corpus_lines: list[str] = field(default_factory=list)
    setup: dict[str, float] = field(default_factory=dict)
    raw: PhaseResult | None = None
    quiet: PhaseResult | None = None
    process: dict[str, ProcessResult] = field(default_factory=dict)
    in_process: dict[str, PhaseResult] = field(default_factory=dict)

    def ratio(self, rate: float, to: PhaseResult | None) -> float:
        return rate / to.rate if to and to.rate else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="sellerdesk-bench-"))
        self.dovecot: Any = None
        self.postgres: Any = None
        self.base_url: str | None = args.database_url
        self.databases: list[str] = []
        from cryptography.fernet import Fernet

        self.token_key = Fernet.generate_key().decode()
        self.runs: list[Run] = []
        #: Database kind -> wall seconds of each `ingest poll` on an empty mailbox.
        self.startup: dict[str, list[float]] = {}
        self.load_at_start = os.getloadavg()[0]
        self.load_samples: list[float] = []

    # -- servers ------------------------------------------------------------------------

    def start(self) -> None:
        from tests.servers import DovecotServer, PostgresServer

        started = time.perf_counter()
        _compile_bytecode()
        self.dovecot = DovecotServer(self.workdir / "dovecot")
        self.dovecot.start()
        if "postgresql" in self.args.databases and self.base_url is None:
            self.postgres = PostgresServer(self.workdir / "postgres")
            self.postgres.start()
            self.base_url = self.postgres.url()
        _say(f"servers up in {time.perf_counter() - started:.1f} s (work dir {self.workdir})")

    def stop(self) -> None:
        self._drop_databases()
        for server in (self.dovecot, self.postgres):
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:  # keep going: the other one must stop too
                    _say(f"could not stop {type(server).__name__}: {exc}")
        if self.args.keep:
            _say(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- database -----------------------------------------------------------------------

    def _new_database(self, kind: str, tag: str) -> str:
        """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
        if kind == "sqlite":
            return f"sqlite:///{self.workdir / f'ingest-{tag}.db'}"
        assert self.base_url is not None
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        name = f"sellerdesk_bench_{os.getpid()}_{tag}_{len(self.databases)}".replace("-", "_")
        engine = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.databases.append(name)
        url = make_url(self.base_url).set(database=name)
        return url.render_as_string(hide_password=False)

    def _drop_databases(self) -> None:
        if not self.databases or self.base_url is None or self.postgres is not None:
            return  # a throwaway server goes away as a whole
        from sqlalchemy import create_engine, text

        engine = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self.databases:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    def _prepare_database(self, url: str, mail_source: str) -> None:
        """Schema by the real migrations, then one seller with a channel per marketplace."""
        from flask_migrate import upgrade

        from bench.corpus import CHANNEL_ADDRESSES, INBOUND_DOMAIN
        from portal import create_app
        from portal.extensions import db
        from portal.services import channels as channel_service
        from portal.services import users as user_service

        app = create_app(_app_config(url, mail_source, self.token_key, str(self.workdir)))
        with app.app_context():
            upgrade()
            org = user_service.get_or_create_organisation("Bench Seller Ltd", actor=None)
            for code, address in CHANNEL_ADDRESSES.items():
                channel = channel_service.create_channel(
                    org, code, actor=None, inbound_domain=INBOUND_DOMAIN
                )
                channel.helpdesk_address = address
            db.session.commit()
            db.session.remove()
            db.engine.dispose()

    def _database(self, kind: str, tag: str, mail_source: str) -> str:
        url = self._new_database(kind, tag)
        self._prepare_database(url, mail_source)
        return url

    # -- mail ---------------------------------------------------------------------------

    def _corpus(self, n: int) -> Any:
        from datetime import UTC, datetime, timedelta

        from bench.corpus import SPACING, Corpus

        # Dates end about now, so the 30-day matching window applies as in real life.
        start = datetime.now(UTC) - timedelta(seconds=SPACING * n)
        if self.args.corpus == "amazon":
            return Corpus(start=start, seed=self.args.seed, only=self.args.only)
        from bench.realworld import RealWorldCorpus

        return RealWorldCorpus(
            n, start=start, seed=self.args.seed, cache=Path(self.args.cache_dir),
            spool=self.workdir / f"corpus-{n}.spool",
        )  # fmt: skip

    def _fill_mailbox(self, run: Run, user: str, password: str) -> None:
        from imapclient import IMAPClient

        started = time.perf_counter()
        corpus = self._corpus(run.n)
        run.corpus_lines = corpus.describe() if hasattr(corpus, "describe") else []
        run.setup["corpus"] = time.perf_counter() - started
        started = time.perf_counter()
        client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=120)
        client.login(user, password)
        multi = client.has_capability("MULTIAPPEND")
        chunk: list[bytes] = []
        for i in range(run.n):
            raw = corpus.message(i)
            kind = corpus.kind(i)
            kind = kind.split(":")[0]  # real:<package> counts as real
            run.kinds[kind] = run.kinds.get(kind, 0) + 1
            run.corpus_bytes += len(raw)
            if multi:
                chunk.append(raw)
                if len(chunk) >= APPEND_CHUNK or sum(map(len, chunk)) > 8_000_000:
                    client.multiappend("INBOX", chunk)
                    chunk = []
            else:
                client.append("INBOX", raw)
        if chunk:
            client.multiappend("INBOX", chunk)
        run.setup["append"] = time.perf_counter() - started
        # Warm Dovecot's index and cache and the page cache once, so the phase that
        # runs first pays no more than the one after it.
        started = time.perf_counter()
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["ALL"]))
        for start in range(0, len(uids), RAW_BATCH):
            client.fetch(uids[start : start + RAW_BATCH], ["RFC822.SIZE", "BODY.PEEK[]"])
        client.logout()
        run.setup["warm-up fetch"] = time.perf_counter() - started
        if len(uids) != run.n:
            raise RuntimeError(f"appended {run.n} messages but the mailbox holds {len(uids)}")

    def _mark_unseen(self, user: str, password: str) -> None:
        """Take \\Seen off every message, as before the first pass (the passes fetch by
        UID above their database's checkpoint; this makes their flag updates the same)."""
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=120)
        client.login(user, password)
        client.select_folder("INBOX")
        if client.search(["SEEN"]):
            # A range, not the UIDs: 20,000 of them are a command Dovecot refuses as too long.
            client.remove_flags("1:*", [b"\\Seen"], silent=True)
        client.logout()

    # -- phases -------------------------------------------------------------------------

    def _phase(self, name: str, tag: str, extra: list[str]) -> dict[str, Any]:
        log_path = self.workdir / f"{name}-{tag}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", name, *extra]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.setdefault("LOG_LEVEL", "INFO")  # the worker's default: its logging is part of the cost
        with log_path.open("wb") as err:
            proc = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env,
                cwd=ROOT, timeout=self.args.timeout, check=False,
            )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"{name} phase failed (exit {proc.returncode}):\n{_tail(log_path)}")
        return json.loads(proc.stdout.decode().strip().splitlines()[-1])

    def _fetch_phase(self, name: str, n: int, extra: list[str]) -> PhaseResult:
        result = self._phase(name, str(n), extra)
        return PhaseResult(
            name, result["messages"], result["seconds"], result["peak_rss_mb"],
            result["rss_start_mb"], result["rss_end_mb"], result["cpu_seconds"],
            nbytes=result["bytes"],
        )  # fmt: skip

    def _poll_env(self, url: str, mail_source: str) -> dict[str, str]:
        """The environment an operator's cron gives `flask ingest poll` (docs/operations.md)."""
        from bench.corpus import INBOUND_DOMAIN

        env = {**os.environ, "DATABASE_URL": url, "MAIL_SOURCE": mail_source,
               "SMTP_URL": f"outbox:{self.workdir / 'outbox'}", "INBOUND_DOMAIN": INBOUND_DOMAIN,
               "SECRET_KEY": "sellerdesk-bench", "TOKEN_KEY": self.token_key}  # fmt: skip
        env.setdefault("LOG_LEVEL", "INFO")  # the worker's default: its logging is part of the cost
        return env

    def _poll(self, env: dict[str, str], log_path: Path) -> Poll:
        """One `python -m flask --app wsgi ingest poll`, timed from its start to its exit."""
        with log_path.open("ab") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, *FLASK_POLL], stdout=subprocess.PIPE, stderr=err,
                stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
            )  # fmt: skip
            with _Peaks(proc.pid) as peaks:
                try:
                    out, _ = proc.communicate(timeout=self.args.timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    raise RuntimeError(f"ingest poll ran over {self.args.timeout} s") from None
            seconds = time.perf_counter() - started
        line = out.decode(errors="replace").strip().splitlines()[-1:] or [""]
        outcome = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line[0])}
        if proc.returncode != 0 or "fetched" not in outcome:
            raise RuntimeError(
                f"ingest poll exited {proc.returncode}, printing {line[0]!r}:\n{_tail(log_path)}"
            )
        workers = peaks.workers
        return Poll(seconds, outcome, peaks.root_peak, len(workers), sum(workers.values()))

    def _process(self, kind: str, url: str, mail_source: str, tag: str) -> ProcessResult:
        """`flask ingest poll` again and again until a poll fetched nothing or left nothing
        waiting (the polls until then count)."""
        env = self._poll_env(url, mail_source)
        log_path = self.workdir / f"process-{kind}-{tag}.log"
        polls: list[Poll] = []
        cpu_start, started = _children_cpu(), time.perf_counter()
        while not polls or (polls[-1].outcome["fetched"] and polls[-1].outcome.get("waiting", 1)):
            if len(polls) >= self.args.max_polls:
                raise RuntimeError(f"{kind}: still fetching after {len(polls)} polls")
            polls.append(self._poll(env, log_path))
            self.load_samples.append(os.getloadavg()[0])
        seconds = time.perf_counter() - started
        return ProcessResult(kind, polls, seconds, _children_cpu() - cpu_start)

    def measure_startup(self) -> None:
        """`flask ingest poll` on an empty mailbox, per database: what every run pays."""
        user, password = "benchempty", f"pw-{os.getpid()}-empty"
        self.dovecot.add_user(user, password)
        mail_source = f"imap://{user}:{password}@127.0.0.1:{self.dovecot.port}/INBOX"
        for kind in self.args.databases:
            env = self._poll_env(self._database(kind, "startup", mail_source), mail_source)
            log_path = self.workdir / f"startup-{kind}.log"
            self._poll(env, log_path)  # the first one adds the mailbox row and imports cold
            runs = [self._poll(env, log_path) for _ in range(self.args.startup_runs)]
            if any(p.outcome["fetched"] for p in runs):
                raise RuntimeError("the empty mailbox was not empty")
            self.startup[kind] = [p.seconds for p in runs]
            _say(f"start-up on {kind}: " + ", ".join(f"{p.seconds:.2f} s" for p in runs))

    def run(self, n: int, index: int) -> Run:
        run = Run(n=n)
        user, password = f"bench{index}n{n}", f"pw-{os.getpid()}-{index}"
        self.dovecot.add_user(user, password)
        mail_source = f"imap://{user}:{password}@127.0.0.1:{self.dovecot.port}/INBOX"

        _say(f"N={n}: drawing and appending {n} messages for {user} …")
        self._fill_mailbox(run, user, password)
        for line in run.corpus_lines:
            _say(f"N={n}: {line}")
        _say(f"N={n}: setup (not measured): " + _setup_line(run.setup))

        # Raw first: BODY.PEEK leaves flags alone; the passes after it are each given
        # the mailbox unseen again, and a fresh database.
        _say(f"N={n}: raw fetch …")
        fetch_args = ["--host", "127.0.0.1", "--port", str(self.dovecot.port), "--user", user,
                      "--password", password, "--raw-batch", str(self.args.raw_batch)]  # fmt: skip
        run.raw, run.quiet = (self._fetch_phase(name, n, fetch_args) for name in ("raw", "quiet"))
        for kind in self.args.databases:
            started = time.perf_counter()
            url = self._database(kind, f"{n}", mail_source)
            self._mark_unseen(user, password)
            run.setup[f"{kind} schema + channels"] = time.perf_counter() - started
            _say(f"N={n}: `flask ingest poll` processes on {kind} …")
            run.process[kind] = result = self._process(kind, url, mail_source, str(n))
            _say(f"N={n}: {kind}: {len(result.polls)} polls, {result.seconds:.1f} s")
            if self.args.in_process:
                run.in_process[kind] = self._in_process(run, kind, user, password, mail_source)
        self.runs.append(run)
        return run

    def _in_process(
        self, run: Run, kind: str, user: str, password: str, mail_source: str
    ) -> PhaseResult:
        """One `poll_all()` inside one process (the figures the bench gave before, and
        what `--profile` profiles)."""
        url = self._database(kind, f"{run.n}-inproc", mail_source)
        self._mark_unseen(user, password)
        _say(f"N={run.n}: in-process pass on {kind} …")
        # The key joined to its option: a Fernet key may begin with "-", which argparse
        # would take for an option of its own.
        extra = ["--database-url", url, "--mail-source", mail_source,
                 f"--token-key={self.token_key}", "--tmp", str(self.workdir)]  # fmt: skip
        last = run.n == self.args.sizes[-1] and kind == self.args.databases[-1]
        if self.args.profile and last:
            extra += ["--profile", self.args.profile]
        result = self._phase("ingest", f"{kind}-{run.n}", extra)
        return PhaseResult(
            "in-proc", result["messages"], result["seconds"], result["peak_rss_mb"],
            result["rss_start_mb"], result["rss_end_mb"], result["cpu_seconds"],
            nbytes=run.corpus_bytes,
            summary=result["summary"],
            children=result["children"],
            children_cpu_seconds=result["children_cpu_seconds"],
            children_peak_rss_mb=result["children_peak_rss_mb"],
        )  # fmt: skip


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _setup_line(setup: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in setup.items())


# --------------------------------------------------------------------------- report


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def report(bench: Bench) -> str:
    import platform
    import statistics

    args = bench.args
    loads = bench.load_samples or [0.0]
    lines = [
        "Sellerdesk ingest benchmark",
        f"  Python {platform.python_version()}, {os.cpu_count()} CPUs, Dovecot on 127.0.0.1, "
        f"databases {', '.join(args.databases)}, corpus {args.corpus}, raw batch {args.raw_batch}",
        # Other work on the machine slows the wall clock; CPU seconds are steadier.
        f"  load average (1 min): at start {bench.load_at_start:.2f}, after each pass "
        f"{min(loads):.2f}–{max(loads):.2f}, at end {os.getloadavg()[0]:.2f} "
        "(the machine may be shared: compare figures of one run)",
    ]
    if bench.startup:
        lines += ["", f"Start-up: `flask --app wsgi ingest poll` on an empty mailbox "
                  f"(median of {args.startup_runs} runs)"]  # fmt: skip
        for kind, seconds in bench.startup.items():
            lines.append(
                f"  {kind}: {statistics.median(seconds):.2f} s "
                f"(min {min(seconds):.2f}, max {max(seconds):.2f})"
            )
    for run in bench.runs:
        assert run.raw and run.quiet
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(run.kinds.items(), key=lambda kv: -kv[1]))
        if run.corpus_lines:  # the real-world profile names its own families
            kinds = run.corpus_lines[0].split(": ", 1)[0]
        lines += [
            "",
            f"N={run.n}: {_mb(run.corpus_bytes)} of mail, mean {run.corpus_bytes / run.n / 1e3:.1f} KB"
            f" ({kinds})",
            *(f"  {line}" for line in run.corpus_lines),
            "  setup, not measured: " + _setup_line(run.setup),
            f"  {'phase':<22}{'msgs':>6}{'seconds':>9}{'msgs/s':>9}{'MB/s':>7}{'CPU s':>8}"
            f"{'CPU ms/msg':>11}   peak RSS MB",
        ]
        for phase in (run.raw, run.quiet):
            lines.append(_row(phase.name, phase.messages, phase.seconds, phase.nbytes,
                              phase.cpu_seconds, f"{phase.peak_rss_mb:.1f}"))  # fmt: skip
        for kind, proc in run.process.items():
            peak = proc.peak
            lines.append(
                _row(f"process {kind}", proc.messages, proc.seconds, run.corpus_bytes,
                     proc.cpu_seconds, f"{peak.peak_rss_mb:.1f} ({peak.own_peak_rss_mb:.1f}"
                     f" + {peak.workers} workers {peak.workers_peak_rss_mb:.1f})")
            )  # fmt: skip
        for kind, phase in run.in_process.items():
            lines.append(
                _row(f"in-process {kind}", phase.messages, phase.seconds, phase.nbytes,
                     phase.cpu_seconds, f"{phase.peak_rss_mb:.1f} "
                     f"({phase.peak_rss_mb - phase.children_peak_rss_mb:.1f} + "
                     f"{phase.children} workers {phase.children_peak_rss_mb:.1f})")
            )  # fmt: skip
        for kind, proc in run.process.items():
            polls = ", ".join(f"{p.seconds:.2f} s ({p.outcome['fetched']})" for p in proc.polls)
            lines += [f"  {kind} polls (seconds, fetched): {polls}",
                      f"  {kind} outcome: {proc.outcome}"]  # fmt: skip
            if proc.messages != run.n:
                lines.append(f"  WARNING: the {kind} polls fetched {proc.messages} of {run.n}")
        for kind, phase in run.in_process.items():
            lines.append(
                f"  in-process {kind}: {run.ratio(phase.rate, run.raw):.1%} of raw; {phase.summary}"
            )
        if run.raw.messages != run.n:
            lines.append(f"  WARNING: the raw fetch got {run.raw.messages} of {run.n}")

    lines += ["", "Whole process (`flask --app wsgi ingest poll` until nothing is left waiting)"]
    for run in bench.runs:
        for kind, proc in run.process.items():
            lines.append(
                f"  N={run.n} {kind}: {proc.rate:.1f} msgs/s in {len(proc.polls)} polls, raw "
                f"{run.raw.rate:.1f} msgs/s, quiet {run.quiet.rate:.1f} msgs/s, "  # type: ignore[union-attr]
                f"ratio_to_quiet={run.ratio(proc.rate, run.quiet):.3f} "
                f"ratio_to_raw={run.ratio(proc.rate, run.raw):.3f} rss_mb={proc.peak.peak_rss_mb:.1f}"
            )
    lines += ["", f"Targets ({args.corpus} profile; the issue's are for real-world at N=5000)"]
    last = bench.runs[-1]
    for kind, proc in last.process.items():
        ratio, target = last.ratio(proc.rate, last.raw), TARGET_RATIO.get(kind, 0.0)
        lines.append(
            f"  {kind}: whole process >= {target:.0%} of raw at N={last.n}: {ratio:.1%} "
            f"({_met(ratio >= target)}); peak RSS <= {TARGET_RSS_MB:.0f} MB: "
            f"{proc.peak.peak_rss_mb:.1f} MB ({_met(proc.peak.peak_rss_mb <= TARGET_RSS_MB)})"
        )
    for kind in args.databases:
        peaks = [(r.n, r.process[kind].peak.peak_rss_mb) for r in bench.runs if kind in r.process]
        if len({n for n, _ in peaks}) > 1:
            (n0, p0), (n1, p1) = min(peaks), max(peaks)
            growth = (p1 - p0) / p0 if p0 else 0.0
            lines.append(
                f"  {kind}: peak RSS flat in N: {p0:.1f} MB at N={n0}, {p1:.1f} MB at N={n1} "
                f"({growth:+.1%}; {_met(growth < RSS_FLAT_TOLERANCE)} within "
                f"{RSS_FLAT_TOLERANCE:.0%})"
            )
    return "\n".join(lines)


def _row(name: str, messages: int, seconds: float, nbytes: int, cpu: float, rss: str) -> str:
    rate = messages / seconds if seconds else 0.0
    mbps = nbytes / 1e6 / seconds if seconds else 0.0
    cpu_ms = 1e3 * cpu / messages if messages else 0.0
    return (
        f"  {name:<22}{messages:>6}{seconds:>9.2f}{rate:>9.1f}{mbps:>7.1f}{cpu:>8.2f}"
        f"{cpu_ms:>11.2f}   {rss}"
    )


# --------------------------------------------------------------------------- main


def _sizes(value: str) -> list[int]:
    try:
        sizes = [int(v.replace("_", "")) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of counts: {value!r}"
        ) from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive counts")
    return sorted(sizes)


def _databases(value: str) -> list[str]:
    names = [{"postgres": "postgresql"}.get(v.strip(), v.strip()) for v in value.split(",")]
    if not names or any(n not in ("sqlite", "postgresql") for n in names):
        raise argparse.ArgumentTypeError("databases: sqlite, postgresql or both")
    return list(dict.fromkeys(names))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--messages", type=int, default=5000, help="N (default 5000)")
    parser.add_argument(
        "--sizes", type=_sizes, help="run at several N, e.g. 1000,5000 (overrides -n)"
    )
    parser.add_argument(
        "--corpus", choices=("real", "amazon"),
        help="real: the real-world profile (bench/realworld.py, the default); amazon: the "
        "Amazon relay mix (bench/corpus.py)",
    )  # fmt: skip
    parser.add_argument(
        "--cache-dir",
        help="where the real-world profile keeps the sdists it downloads "
        "(default ~/.cache/sellerdesk-bench, or under XDG_CACHE_HOME)",
    )  # fmt: skip
    parser.add_argument(
        "--databases", type=_databases, default=["sqlite", "postgresql"],
        help="comma-separated, in this order (default sqlite,postgresql)",
    )  # fmt: skip
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server to use instead of a throwaway one (postgresql+psycopg://…); "
        "each pass gets a new database on it, dropped at the end",
    )
    # Old command lines: PostgreSQL now runs beside SQLite by default.
    parser.add_argument("--postgres", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument(
        "--only",
        choices=("mailgen", "plain", "rich", "attachment", "photo", "fixture"),
        help="the Amazon mix, every message of one kind (a stress case: "
        "--only photo is the memory worst case)",
    )
    parser.add_argument(
        "--in-process", action="store_true",
        help="also one poll_all() pass inside one process per database (no start-up)",
    )  # fmt: skip
    parser.add_argument("--startup-runs", type=int, default=5, help="start-up runs (default 5)")
    parser.add_argument("--max-polls", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--raw-batch", type=int, default=RAW_BATCH, help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile", metavar="FILE",
        help="cProfile the last in-process pass into FILE (.pstats); implies --in-process",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=3600, help="per process, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, SQLite)")
    # Internal: how the benchmark runs each measured phase in its own process.
    parser.add_argument("--phase", choices=("raw", "quiet", "ingest"), help=argparse.SUPPRESS)
    for name in ("--host", "--port", "--user", "--password", "--mail-source", "--token-key",
                 "--tmp"):  # fmt: skip
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.port:
        args.port = int(args.port)
    if args.sizes is None:
        args.sizes = [args.messages]
    if args.only and args.corpus == "real":
        parser.error("--only picks from the Amazon mix: drop --corpus real")
    args.corpus = args.corpus or ("amazon" if args.only else "real")
    if args.database_url and not args.phase:
        if not args.database_url.startswith("postgres"):
            parser.error("--database-url takes a PostgreSQL URL; SQLite is always a temp file")
        if "postgresql" not in args.databases:
            parser.error("--database-url is for PostgreSQL: add it to --databases")
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
        args.in_process = True
    if not args.phase and not args.cache_dir:
        from bench.realworld import default_cache_dir

        args.cache_dir = str(default_cache_dir())
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase in ("raw", "quiet"):
        phase_raw(args)
        return 0
    if args.phase == "ingest":
        phase_ingest(args)
        return 0
    import logging

    # Quiet setup (migrations, channels); create_app leaves a configured root logger alone.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    bench = Bench(args)
    try:
        bench.start()
        bench.measure_startup()
        for index, n in enumerate(args.sizes):
            bench.run(n, index)
    except RuntimeError as exc:
        _say(f"benchmark failed: {exc}")
        return 1
    finally:
        bench.stop()
    print(report(bench))
    if args.profile:
        import pstats

        print(f"\nProfile of the last in-process pass ({args.profile}), top 25 by cumulative time:")
        pstats.Stats(args.profile, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
