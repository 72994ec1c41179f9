#!/usr/bin/env python3
"""The live inbox's cost and reach: 100 idle open inboxes against the portal as an
operator starts it, then one new message.

Per setup it migrates a fresh database (one seller organisation with a UK channel and
--threads threads, two other organisations with theirs), makes --clients seller users
and logs each in through the real login form (Flask's test client on the same database
and SECRET_KEY: the session rows and cookies are the ones a browser gets), then starts
the portal as an operator does, with the ingest worker on a Dovecot mailbox with IDLE:

  serve  `scripts/serve` (make serve): gunicorn, WEB_CONCURRENCY=2 gthread workers,
         PostgreSQL
  run    `flask run-all` (make run): Flask's threaded server, SQLite

Each client is a plain HTTP connection (http.client, one thread each) with its own
session cookie doing what static/js/live.js does: GET /inbox once for the page's ETag,
then GET /inbox/live?wait=25 with If-None-Match (held while nothing changed, then 304),
asked again at once after each answer, the first started at a random point of 2 s so
they spread as real tabs do. --wait 0 asks every 2 s without a wait (live.js before
the long poll, or against a server that does not hold requests).

- baseline: for --baseline (20) seconds no client asks; the CPU seconds per second of
  the web and worker processes (every process under the one started, from
  /proc/PID/stat utime + stime) with nothing to serve.
- idle: for --seconds (60) the clients ask and nothing changes; the same CPU figure,
  against the target of 10% of one core, and the CPU per request beyond the baseline.
- reach: one buyer message APPENDed to the Dovecot mailbox; from the end of the APPEND
  to the response in which each client's rows hold its order ID: p50, p95, max over the
  clients (target p95 <= 3 s).

    .venv/bin/python bench/live.py                  # both setups, 100 clients, 60 s
    .venv/bin/python bench/live.py --setups run --clients 20 --seconds 20
"""

from __future__ import annotations

import argparse
import email
import email.policy
import http.client
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.common import end_processes, percentile, run_bench, say, stop_servers, tail  # noqa: E402

INTERVAL = 2.0  # static/js/live.js, against a server that does not hold requests
WAIT = 25  # static/js/live.js: ?wait=, seconds the server may hold a request
TARGET_CPU = 0.10  # of one core
TARGET_P95 = 3.0
ADDRESS = "uk-live@helpdesk.test"
PASSWORD = "bench-password-1234"  # noqa: S105 (bench accounts on a bench database)
ETAG_RE = re.compile(r'data-live-etag="([^"]+)"')
URL_RE = re.compile(r'data-live-url="([^"]+)"')
USER_AGENT = "sellerdesk-bench-live"
ORDER_RE = re.compile(r"\(Order: (\d{3}-\d{7}-\d{7})\)")


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of `root` and every process under it, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    wanted = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    return sum(times.get(pid, 0.0) for pid in wanted)


@dataclass
class Client:
    port: int
    cookie: str
    etag: str = ""
    url: str = ""
    requests: int = 0
    not_modified: int = 0
    errors: int = 0
    seen_at: float | None = None
    conn: Any = None

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(
                    "GET",
                    path,
                    headers={"Cookie": self.cookie, "User-Agent": USER_AGENT, **headers},
                )
                response = self.conn.getresponse()
                body = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, dict(response.getheaders()), body
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


@dataclass
class SetupResult:
    setup: str
    settings: str
    seconds: float = 0.0
    cpu: float = 0.0
    requests: int = 0
    not_modified: int = 0
    errors: int = 0
    reach: list[float] = field(default_factory=list)
    missed: int = 0
    baseline_cpu: float = 0.0
    baseline_seconds: float = 0.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from cryptography.fernet import Fernet

        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="sellerdesk-live-"))
        self.token_key = Fernet.generate_key().decode()
        self.dovecot: Any = None
        self.postgres: Any = None
        self.results: list[SetupResult] = []
        self.load_at_start = os.getloadavg()[0]
        self.rng = random.Random(args.seed)

    def start(self) -> None:
        from tests.servers import DovecotServer, PostgresServer

        self.dovecot = DovecotServer(self.workdir / "dovecot")
        self.dovecot.start()
        if "serve" in self.args.setups:
            self.postgres = PostgresServer(self.workdir / "postgres")
            self.postgres.start()

    def stop(self) -> None:
        stop_servers((self.dovecot, self.postgres), self.workdir, keep=self.args.keep)

    def _env(self, setup: str, url: str, mail_source: str, port: int) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": url,
            "SECRET_KEY": "sellerdesk-bench-live",
            "TOKEN_KEY": self.token_key,
            "MAIL_SOURCE": mail_source,
            "SMTP_URL": f"outbox:{self.workdir / 'outbox'}",
            "INBOUND_DOMAIN": "helpdesk.test",
            "IMAP_IDLE": "1",
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "WARNING",
        }

    def _prepare(self, env: dict[str, str], mail_source: str) -> list[str]:
        """Schema, organisations, threads and the sellers; returns their session cookies."""
        from flask_migrate import upgrade

        from bench.common import log_in
        from portal import create_app
        from portal.extensions import db
        from portal.models import Direction, Message, Role, Thread
        from portal.services import channels as channel_service
        from portal.services import mailboxes as mailbox_service
        from portal.services import users as user_service
        from portal.sqltypes import utcnow

        app = create_app(
            {
                "SECRET_KEY": env["SECRET_KEY"],
                "TOKEN_KEY": env["TOKEN_KEY"],
                "SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"],
                "MAIL_SOURCE": mail_source,
                "SMTP_URL": env["SMTP_URL"],
                "INBOUND_DOMAIN": "helpdesk.test",
                # Logging 100 sellers in from one address: the login's limit is not measured.
                "RATELIMIT_ENABLED": False,
            }
        )
        with app.app_context():
            upgrade()
            orgs = []
            for n, name in enumerate(("Live Seller Ltd", "Other Goods GmbH", "Third Shop SL")):
                org = user_service.get_or_create_organisation(name, actor=None)
                channel = channel_service.create_channel(
                    org, "UK", actor=None, inbound_domain="helpdesk.test"
                )
                channel.helpdesk_address = ADDRESS if n == 0 else f"uk-other{n}@helpdesk.test"
                orgs.append((org, channel))
            now = utcnow()
            for i in range(self.args.threads * 3):
                org, channel = orgs[i % 3]
                thread = Thread(
                    channel=channel,
                    organisation_id=org.id,
                    subject=f"Inquiry {i} (Order: 203-{i:07d}-0000001)",
                    buyer_name=f"Buyer {i}",
                    buyer_address=f"buyer{i}@marketplace.amazon.co.uk",
                    order_id=f"203-{i:07d}-0000001",
                    last_message_at=now,
                    awaiting_reply_since=now,
                )
                db.session.add(thread)
                db.session.add(
                    Message(
                        thread=thread,
                        channel=channel,
                        direction=Direction.IN,
                        message_id=f"<live-{i}@example.com>",
                        content_hash=str(i),
                        subject=thread.subject,
                        from_address=thread.buyer_address,
                        text_body="Where is my parcel?",
                        visible_text="Where is my parcel?",
                        snippet="Where is my parcel?",
                        created_at=now,
                    )
                )
            for n in range(self.args.clients):
                user_service.create_user(
                    f"seller{n}@live.example", PASSWORD, role=Role.SELLER, organisation=orgs[0][0]
                )
            mailbox_service.sync_configured_mailbox(mail_source)
            db.session.commit()
            db.session.remove()
        cookies = []
        for n in range(self.args.clients):
            client = app.test_client()
            # The login binds the session to the address and the browser (Flask-Login's
            # "strong" protection): the clients send the same User-Agent from 127.0.0.1.
            client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
            client.environ_base["REMOTE_ADDR"] = "127.0.0.1"
            log_in(client, f"seller{n}@live.example", PASSWORD)
            cookies.append(
                "; ".join(
                    f"{c.key}={c.value}"
                    for c in client._cookies.values()  # noqa: SLF001
                )
            )
        with app.app_context():
            db.engine.dispose()
        return cookies

    def _portal(self, setup: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        if setup == "serve":
            command = [sys.executable, "scripts/serve"]
        else:
            command = [sys.executable, "-m", "flask", "--app", "wsgi", "run-all"]
        with log.open("wb") as out:
            return subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def _wait_ready(self, portal, port: int, log: Path) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if portal.poll() is not None:
                raise RuntimeError(f"the portal exited ({portal.returncode}):\n{tail(log)}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/login")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the portal did not answer:\n{tail(log)}")

    def _append(self, user: str, password: str) -> tuple[str, float]:
        from imapclient import IMAPClient

        from tests.mailgen import amazon_message

        raw = amazon_message(900_001, ADDRESS)
        subject = str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
        order = ORDER_RE.search(subject)
        assert order is not None
        with IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=30) as imap:
            imap.login(user, password)
            imap.append("INBOX", raw)
            arrived = time.perf_counter()
        return order.group(1), arrived

    def run_setup(self, setup: str) -> SetupResult:
        from tests.servers import free_port

        user, password = f"live-{setup}", f"pw-{os.getpid()}"
        self.dovecot.add_user(user, password)
        mail_source = f"imap://{user}:{password}@127.0.0.1:{self.dovecot.port}/INBOX"
        if setup == "serve":
            self.postgres.create_database("live_serve")
            url = self.postgres.url("live_serve")
        else:
            url = f"sqlite:///{self.workdir / 'run.db'}"
        port = free_port()
        env = self._env(setup, url, mail_source, port)
        say(f"{setup}: preparing {self.args.clients} sellers …")
        cookies = self._prepare(env, mail_source)
        clients = [Client(port, cookie) for cookie in cookies]
        result = SetupResult(
            setup,
            "gunicorn x2 (gthread) + worker, PostgreSQL"
            if setup == "serve"
            else "Flask threaded + worker, SQLite",
        )
        log = self.workdir / f"{setup}.log"
        portal = self._portal(setup, env, log)
        stop = threading.Event()
        watched: dict[str, Any] = {"order": None}
        try:
            self._wait_ready(portal, port, log)
            for client in clients:
                status, _, body = client.get("/inbox", {})
                page = body.decode()
                if status != 200 or not ETAG_RE.search(page):
                    raise RuntimeError(f"a client's inbox answered {status}: not logged in?")
                client.etag = f'"{ETAG_RE.search(page)[1]}"'
                client.url = URL_RE.search(page)[1].replace("&amp;", "&")

            wait = self.args.wait
            sep = "&" if "?" in clients[0].url else "?"

            def poll(client: Client) -> None:
                stop.wait(self.rng.uniform(0, INTERVAL))
                while not stop.is_set():
                    held = False
                    try:
                        url = f"{client.url}{sep}wait={wait}" if wait else client.url
                        status, headers, body = client.get(
                            url, {"If-None-Match": client.etag, "Accept": "application/json"}
                        )
                        held = "X-Live-Wait" in headers
                        client.requests += 1
                        if status == 304:
                            client.not_modified += 1
                        elif status == 200:
                            client.etag = headers.get("ETag", client.etag)
                            order = watched["order"]
                            if order and client.seen_at is None and order.encode() in body:
                                client.seen_at = time.perf_counter()
                        else:
                            client.errors += 1
                    except (http.client.HTTPException, OSError):
                        client.errors += 1
                    if not held:  # as live.js: a long poll asks again at once
                        stop.wait(INTERVAL)

            # The baseline: the same processes with no client asking, once the worker's
            # start-up pass and the pages' first renders are over.
            time.sleep(10)
            say(f"{setup}: no clients for {self.args.baseline:.0f} s (baseline) …")
            cpu_before, wall_before = _tree_cpu(portal.pid), time.perf_counter()
            time.sleep(self.args.baseline)
            result.baseline_cpu = _tree_cpu(portal.pid) - cpu_before
            result.baseline_seconds = time.perf_counter() - wall_before

            threads = [threading.Thread(target=poll, args=(c,), daemon=True) for c in clients]
            for thread in threads:
                thread.start()
            time.sleep(INTERVAL * 2)  # every client has asked once
            say(f"{setup}: {len(clients)} idle clients for {self.args.seconds:.0f} s …")
            cpu_before, wall_before = _tree_cpu(portal.pid), time.perf_counter()
            before = sum(c.requests for c in clients), sum(c.not_modified for c in clients)
            time.sleep(self.args.seconds)
            result.cpu = _tree_cpu(portal.pid) - cpu_before
            result.seconds = time.perf_counter() - wall_before
            result.requests = sum(c.requests for c in clients) - before[0]
            result.not_modified = sum(c.not_modified for c in clients) - before[1]
            result.errors = sum(c.errors for c in clients)

            say(f"{setup}: one new message …")
            order, arrived = self._append(user, password)
            watched["order"] = order
            deadline = arrived + self.args.timeout
            while time.perf_counter() < deadline and any(c.seen_at is None for c in clients):
                time.sleep(0.05)
            result.reach = [c.seen_at - arrived for c in clients if c.seen_at is not None]
            result.missed = sum(c.seen_at is None for c in clients)
        finally:
            stop.set()
            end_processes([portal])
        self.results.append(result)
        return result


def report(bench: Bench) -> str:
    import platform

    args = bench.args
    lines = [
        "Sellerdesk live inbox: idle open inboxes, then one new message",
        f"  Python {platform.python_version()}, {os.cpu_count()} CPUs (shared), "
        f"{args.clients} clients "
        + (f"long-polling (wait={args.wait})" if args.wait else f"asking every {INTERVAL:.0f} s")
        + f", idle for {args.seconds:.0f} s, "
        f"{args.threads} threads per organisation (3 organisations)",
        f"  load average (1 min) at start {bench.load_at_start:.2f}, "
        f"at end {os.getloadavg()[0]:.2f}",
        "",
        f"  {'setup':<7}{'portal':<44}{'req/s':>7}{'304s':>7}{'errors':>7}"
        f"{'cpu/s':>8}{'no clients':>11}{'ms/req':>8}{'reach p50':>11}{'p95':>7}{'max':>7}"
        f"{'missed':>8}",
    ]
    verdicts = []
    for r in bench.results:
        cores = r.cpu / r.seconds if r.seconds else 0.0
        rate = r.requests / r.seconds if r.seconds else 0.0
        share = r.not_modified / r.requests if r.requests else 0.0
        p50, p95, top = (
            (percentile(r.reach, 50), percentile(r.reach, 95), max(r.reach))
            if r.reach
            else (0.0, 0.0, 0.0)
        )
        idle = r.baseline_cpu / r.baseline_seconds if r.baseline_seconds else 0.0
        # CPU per request beyond what the processes spend with no client at all.
        per_request = (cores - idle) / rate * 1000 if rate else 0.0
        lines.append(
            f"  {r.setup:<7}{r.settings:<44}{rate:>7.1f}{share:>7.0%}{r.errors:>7}"
            f"{cores:>8.3f}{idle:>11.3f}{per_request:>8.2f}"
            f"{p50:>10.2f}s{p95:>6.2f}s{top:>6.2f}s{r.missed:>8}"
        )
        verdicts.append(
            f"{r.setup}: cpu_per_second={cores:.3f} (target <= {TARGET_CPU:.2f}: "
            f"{'met' if cores <= TARGET_CPU else 'NOT MET'}) "
            f"reach_p95={p95:.2f}s (target <= {TARGET_P95:.0f} s: "
            f"{'met' if r.reach and p95 <= TARGET_P95 and not r.missed else 'NOT MET'}) "
            f"ratio_cpu_to_target={cores / TARGET_CPU:.2f}"
        )
    return "\n".join([*lines, "", *verdicts])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setups", default="serve,run", help="serve, run or both (default)")
    parser.add_argument("--clients", type=int, default=100, help="open inboxes (default 100)")
    parser.add_argument("--seconds", type=float, default=60, help="idle time measured (60)")
    parser.add_argument(
        "--baseline", type=float, default=20, help="idle seconds with no client first (20)"
    )
    parser.add_argument("--threads", type=int, default=200, help="per organisation (200)")
    parser.add_argument("--timeout", type=float, default=60, help="give up on reach after s")
    parser.add_argument(
        "--wait",
        type=int,
        default=WAIT,
        help=f"?wait= of each request, as live.js ({WAIT}); 0: a request every {INTERVAL:.0f} s",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the clients' offsets")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args(argv)
    args.setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    if not args.setups or set(args.setups) - {"serve", "run"}:
        parser.error("--setups takes serve, run or both")
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients and --seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)

    def body() -> None:
        for setup in args.setups:
            bench.run_setup(setup)

    return run_bench(bench, body, report)


if __name__ == "__main__":
    sys.exit(main())
