#!/usr/bin/env python3
"""Ingest benchmark: one ingest pass against a plain IMAP fetch of the same mail.

Starts its own Dovecot (tests/servers.py), appends N real-world-shaped Amazon
buyer messages (bench/corpus.py) for a fresh user, then measures, each in a
fresh subprocess so one side's memory never counts for the other:

  raw     imapclient: SELECT, SEARCH ALL, FETCH BODY.PEEK[] in batches; nothing
          else (the limit: what the transport alone costs)
  ingest  ingest.pipeline.poll_all(): fetch, parse, route, thread, store, commit,
          checkpoint, flag \\Seen (exactly what `flask ingest poll` does)

and prints messages/second, peak RSS (VmHWM of the subprocess, plus those of
its parse workers) and the ratio ingest/raw. Targets from the issue: ingest >= 20% of the raw rate; peak
RSS independent of N and under 200 MB (run `--sizes 1000,5000` to see the
second). Setup (appending, schema, channels) is timed separately and not
measured. It asserts nothing: it prints figures.

    .venv/bin/python bench/ingest.py                     # N=5000, SQLite
    .venv/bin/python bench/ingest.py --sizes 1000,5000   # peak RSS at two sizes
    .venv/bin/python bench/ingest.py --postgres          # on a throwaway PostgreSQL
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://u:p@host/db
    .venv/bin/python bench/ingest.py --profile /tmp/ingest.pstats   # cProfile the pass
    .venv/bin/python bench/ingest.py -n 150 --only photo   # 1.4 MB photos: memory worst case
"""

from __future__ import annotations

import argparse
import json
import os
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

TARGET_RATIO = 0.20
TARGET_RSS_MB = 200.0
#: Peak RSS counts as independent of N when it grows less than this between sizes.
RSS_FLAT_TOLERANCE = 0.10
RAW_BATCH = 100  # the same batch size as ingest.pipeline.BATCH_COUNT
APPEND_CHUNK = 50  # messages per MULTIAPPEND command


# --------------------------------------------------------------------------- helpers


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


class _ChildPeaks:
    """The peak RSS (VmHWM) of each child process (the parse workers), read every 20 ms
    while they run: the child's own high-water mark, so only a child that lives less
    than 20 ms goes unseen. Their sum plus the parent's own peak bounds the peak of the
    whole ingest from above."""

    def __init__(self) -> None:
        import threading

        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _ChildPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            for pid in self._children():
                try:
                    # Until it execs, a child spawned by vfork shares its parent's memory,
                    # and its VmHWM is the parent's: count it only once it runs the worker.
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        if b"ingest.parse_workers" not in fh.read():
                            continue
                    with open(f"/proc/{pid}/status") as fh:
                        kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
                except (OSError, StopIteration, ValueError):
                    continue  # gone meanwhile, or a zombie
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), kb * 1024 / 1e6)
            if self._stop.wait(0.02):
                return

    @staticmethod
    def _children() -> list[int]:
        pids: list[int] = []
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/children") as fh:
                    pids += [int(pid) for pid in fh.read().split()]
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

    settle_worker_process()  # as `flask ingest poll` does
    with app.app_context():
        rss_start = _rss_mb()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu_start, children_cpu_start, started = _cpu(), _children_cpu(), time.perf_counter()
        with _ChildPeaks() as children:
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
class Run:
    n: int
    corpus_bytes: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    setup: dict[str, float] = field(default_factory=dict)
    raw: PhaseResult | None = None
    quiet: PhaseResult | None = None
    ingest: PhaseResult | None = None

    @property
    def ratio(self) -> float:
        if not self.raw or not self.ingest or not self.raw.rate:
            return 0.0
        return self.ingest.rate / self.raw.rate

    @property
    def quiet_ratio(self) -> float:
        if not self.quiet or not self.ingest or not self.quiet.rate:
            return 0.0
        return self.ingest.rate / self.quiet.rate


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
        self.load_at_start = os.getloadavg()[0]

    # -- servers ------------------------------------------------------------------------

    def start(self) -> None:
        from tests.servers import DovecotServer, PostgresServer

        started = time.perf_counter()
        self.dovecot = DovecotServer(self.workdir / "dovecot")
        self.dovecot.start()
        if self.args.postgres:
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

    def _new_database(self, n: int) -> str:
        """A fresh, empty database for one run: a SQLite file, or a new PostgreSQL database."""
        if self.base_url is None:
            return f"sqlite:///{self.workdir / f'ingest-{n}.db'}"
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        name = f"sellerdesk_bench_{os.getpid()}_{n}_{len(self.databases)}"
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

    # -- mail ---------------------------------------------------------------------------

    def _fill_mailbox(self, run: Run, user: str, password: str) -> None:
        from datetime import UTC, datetime, timedelta

        from imapclient import IMAPClient

        from bench.corpus import SPACING, Corpus

        # Dates end about now, so the 30-day matching window applies as in real life.
        corpus = Corpus(
            start=datetime.now(UTC) - timedelta(seconds=SPACING * run.n),
            seed=self.args.seed,
            only=self.args.only,
        )
        started = time.perf_counter()
        client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=120)
        client.login(user, password)
        multi = client.has_capability("MULTIAPPEND")
        chunk: list[bytes] = []
        for i in range(run.n):
            raw = corpus.message(i)
            kind = corpus.kind(i)
            run.kinds[kind] = run.kinds.get(kind, 0) + 1
            run.corpus_bytes += len(raw)
            if multi:
                chunk.append(raw)
                if len(chunk) >= APPEND_CHUNK:
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

    # -- phases -------------------------------------------------------------------------

    def _phase(self, name: str, n: int, extra: list[str]) -> dict[str, Any]:
        log_path = self.workdir / f"{name}-{n}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", name, *extra]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.setdefault("LOG_LEVEL", "INFO")  # the worker's default: its logging is part of the cost
        with log_path.open("wb") as err:
            proc = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env,
                cwd=ROOT, timeout=self.args.timeout, check=False,
            )  # fmt: skip
        if proc.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"{name} phase failed (exit {proc.returncode}):\n{tail}")
        return json.loads(proc.stdout.decode().strip().splitlines()[-1])

    def _fetch_phase(self, name: str, n: int, extra: list[str]) -> PhaseResult:
        result = self._phase(name, n, extra)
        return PhaseResult(
            name, result["messages"], result["seconds"], result["peak_rss_mb"],
            result["rss_start_mb"], result["rss_end_mb"], result["cpu_seconds"],
            nbytes=result["bytes"],
        )  # fmt: skip

    def run(self, n: int, index: int) -> Run:
        run = Run(n=n)
        user, password = f"bench{index}n{n}", f"pw-{os.getpid()}-{index}"
        self.dovecot.add_user(user, password)
        mail_source = f"imap://{user}:{password}@127.0.0.1:{self.dovecot.port}/INBOX"

        _say(f"N={n}: appending {n} messages for {user} …")
        self._fill_mailbox(run, user, password)
        started = time.perf_counter()
        url = self._new_database(n)
        self._prepare_database(url, mail_source)
        run.setup["schema + channels"] = time.perf_counter() - started
        _say(
            f"N={n}: setup (not measured): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in run.setup.items())
        )

        # Raw first: the ingest pass flags everything \Seen (BODY.PEEK leaves flags alone).
        _say(f"N={n}: raw fetch …")
        fetch_args = ["--host", "127.0.0.1", "--port", str(self.dovecot.port), "--user", user,
                      "--password", password, "--raw-batch", str(self.args.raw_batch)]  # fmt: skip
        run.raw, run.quiet = (self._fetch_phase(name, n, fetch_args) for name in ("raw", "quiet"))
        _say(f"N={n}: ingest pass …")
        extra = ["--database-url", url, "--mail-source", mail_source,
                 "--token-key", self.token_key, "--tmp", str(self.workdir)]  # fmt: skip
        if self.args.profile and index == len(self.args.sizes) - 1:
            extra += ["--profile", self.args.profile]
        result = self._phase("ingest", n, extra)
        run.ingest = PhaseResult(
            "ingest", result["messages"], result["seconds"], result["peak_rss_mb"],
            result["rss_start_mb"], result["rss_end_mb"], result["cpu_seconds"],
            nbytes=run.corpus_bytes,
            summary=result["summary"],
            children=result["children"],
            children_cpu_seconds=result["children_cpu_seconds"],
            children_peak_rss_mb=result["children_peak_rss_mb"],
        )  # fmt: skip
        self.runs.append(run)
        return run


# --------------------------------------------------------------------------- report


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def report(bench: Bench) -> str:
    import platform

    from sqlalchemy.engine import make_url

    args = bench.args
    db_kind = make_url(bench.base_url).get_backend_name() if bench.base_url else "sqlite (file)"
    lines = [
        "Sellerdesk ingest benchmark",
        f"  Python {platform.python_version()}, {os.cpu_count()} CPUs, Dovecot on 127.0.0.1, "
        f"database {db_kind}, raw batch {args.raw_batch}",
        # Other work on the machine slows the wall clock; CPU seconds are steadier.
        f"  load average (1 min) at start {bench.load_at_start:.2f}, "
        f"at end {os.getloadavg()[0]:.2f}",
    ]
    for run in bench.runs:
        assert run.raw and run.quiet and run.ingest
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(run.kinds.items(), key=lambda kv: -kv[1]))
        lines += [
            "",
            f"N={run.n}: {_mb(run.corpus_bytes)} of mail, mean {run.corpus_bytes / run.n / 1e3:.1f} KB"
            f" ({kinds})",
            "  setup, not measured: " + ", ".join(f"{k} {v:.1f} s" for k, v in run.setup.items()),
            f"  {'phase':<8}{'messages':>9}{'seconds':>9}{'msgs/s':>9}{'MB/s':>8}{'CPU s':>8}"
            f"   RSS MB: {'start':>6}{'end':>7}{'peak':>7}",
        ]
        for phase in (run.raw, run.quiet, run.ingest):
            mbps = phase.nbytes / 1e6 / phase.seconds if phase.seconds else 0.0
            lines.append(
                f"  {phase.name:<8}{phase.messages:>9}{phase.seconds:>9.2f}{phase.rate:>9.1f}"
                f"{mbps:>8.1f}{phase.cpu_seconds:>8.2f}{'':>11}{phase.rss_start_mb:>6.1f}"
                f"{phase.rss_end_mb:>7.1f}{phase.peak_rss_mb:>7.1f}"
            )
        cpu_ms = [
            1e3 * p.cpu_seconds / p.messages if p.messages else 0.0 for p in (run.raw, run.ingest)
        ]
        if run.ingest.children:
            ingest = run.ingest
            lines.append(
                f"  ingest CPU s and peak RSS include {ingest.children} parse worker(s): "
                f"{ingest.children_cpu_seconds:.2f} CPU s, "
                f"{ingest.peak_rss_mb - ingest.children_peak_rss_mb:.1f} MB own peak + "
                f"{ingest.children_peak_rss_mb:.1f} MB workers' peaks"
            )
        lines += [
            f"  ingest/raw: {run.ratio:.1%}    CPU per message: raw {cpu_ms[0]:.2f} ms, "
            f"ingest {cpu_ms[1]:.2f} ms",
            f"  ingest/quiet: {run.quiet_ratio:.1%} (quiet: the raw fetch with imaplib's trace"
            " off, as the ingest fetches)",
            f"  ingest outcome: {run.ingest.summary}",
        ]
        if run.ingest.messages != run.n:
            lines.append(f"  WARNING: the ingest pass fetched {run.ingest.messages} of {run.n}")
        if run.raw.messages != run.n:
            lines.append(f"  WARNING: the raw fetch got {run.raw.messages} of {run.n}")

    last = bench.runs[-1]
    assert last.ingest
    peaks = [(r.n, r.ingest.peak_rss_mb) for r in bench.runs if r.ingest]
    worst = max(p for _, p in peaks)
    lines += [
        "",
        "Targets",
        f"  ingest >= {TARGET_RATIO:.0%} of the raw rate at N={last.n}: {last.ratio:.1%} "
        f"({_met(last.ratio >= TARGET_RATIO)}); of the quiet fetch's: {last.quiet_ratio:.1%}",
        f"  ingest peak RSS < {TARGET_RSS_MB:.0f} MB: {worst:.1f} MB "
        f"({_met(worst < TARGET_RSS_MB)})",
    ]
    if len({n for n, _ in peaks}) > 1:
        (n0, p0), (n1, p1) = min(peaks), max(peaks)
        growth = (p1 - p0) / p0 if p0 else 0.0
        lines.append(
            f"  ingest peak RSS independent of N: {p0:.1f} MB at N={n0}, {p1:.1f} MB at "
            f"N={n1} ({growth:+.1%}; {_met(growth < RSS_FLAT_TOLERANCE)} within "
            f"{RSS_FLAT_TOLERANCE:.0%})"
        )
    else:
        lines.append("  ingest peak RSS independent of N: run with --sizes 1000,5000 to see")
    return "\n".join(lines)


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--messages", type=int, default=5000, help="N (default 5000)")
    parser.add_argument(
        "--sizes", type=_sizes, help="run at several N, e.g. 1000,5000 (overrides -n)"
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server to use (postgresql+psycopg://…); each run gets a new database "
        "on it, dropped at the end. Default: a temp SQLite file per run",
    )
    parser.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL and use it"
    )
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument(
        "--only",
        choices=("mailgen", "plain", "rich", "attachment", "photo", "fixture"),
        help="every message of one kind instead of the real-world mix (a stress case: "
        "--only photo is the memory worst case)",
    )
    parser.add_argument("--raw-batch", type=int, default=RAW_BATCH, help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the (last) ingest pass into FILE (.pstats)"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="per phase, seconds")
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
    if args.database_url and args.postgres:
        parser.error("--database-url and --postgres exclude each other")
    if args.database_url and not args.phase and not args.database_url.startswith("postgres"):
        parser.error("--database-url takes a PostgreSQL URL; SQLite is the default")
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
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

        print(f"\nProfile of the last ingest pass ({args.profile}), top 25 by cumulative time:")
        pstats.Stats(args.profile, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
