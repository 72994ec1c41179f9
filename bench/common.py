"""Small helpers the benchmarks share: messages, percentiles, logs, stopping what they
started, logging a test client in."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyotp

from portal.extensions import db
from portal.services import two_factor
from portal.services.users import find_user_by_email
from portal.sqltypes import utcnow

_CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')  # fmt: skip


def say(text: str) -> None:
    """Progress on stderr; the report alone goes to stdout."""
    print(text, file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100), a value really measured; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_servers(servers: Iterable[Any], workdir: Path, *, keep: bool) -> None:
    """Stop each server (tests/servers.py) that was started, then remove the work dir."""
    for server in servers:
        if server is not None:
            try:
                server.stop()
            except Exception as exc:  # keep going: the others must stop too
                say(f"could not stop {type(server).__name__}: {exc}")
    if keep:
        say(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def end_processes(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM each process, then wait for it; one that outlives `timeout` is killed."""
    procs = list(procs)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def idle_poll_modes(parser: Any, value: str) -> list[str]:
    """`--modes`: idle, poll or both, comma-separated."""
    modes = [m.strip() for m in value.split(",") if m.strip()]
    if not modes or set(modes) - {"idle", "poll"}:
        parser.error("--modes takes idle, poll or both")
    return modes


def run_bench(bench: Any, body: Callable[[], None], report: Callable[[Any], str]) -> int:
    """Start the bench's servers, run `body`, stop them whatever happens, print the
    report; 1 when the bench failed (a RuntimeError saying why)."""
    import logging

    # Quiet setup (migrations); create_app leaves a configured root logger alone.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        bench.start()
        body()
    except RuntimeError as exc:
        say(f"benchmark failed: {exc}")
        return 1
    finally:
        bench.stop()
    print(report(bench))
    return 0


def _csrf_token(page: str) -> str:
    match = _CSRF_RE.search(page)
    if not match:
        raise RuntimeError("the page has no CSRF token")
    return match[1] or match[2]


def log_in(client: Any, email: str, password: str) -> None:
    """Log a Flask test client in through the real forms, CSRF token and all: the
    password, then a code. Admins and agents must have a second factor: the user first
    gets a new TOTP secret from the service `flask users totp` runs (a new one each
    time, so no code is ever refused as used)."""
    with client.application.app_context():
        user = find_user_by_email(email)
        if user is None:
            raise RuntimeError(f"no user {email} to log in as")
        secret = two_factor.provision_totp(user, now=utcnow(), actor=None)
        db.session.commit()
        db.session.remove()
    page = client.get("/login").get_data(as_text=True)
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": _csrf_token(page)}
    )
    if response.headers.get("Location") == "/login/two-factor":
        page = client.get("/login/two-factor").get_data(as_text=True)
        code = pyotp.TOTP(secret).now()
        response = client.post(
            "/login/two-factor", data={"code": code, "csrf_token": _csrf_token(page)}
        )
    if response.status_code != 302 or "/login" in response.headers.get("Location", ""):
        raise RuntimeError(f"login failed: {response.status_code} {response.headers}")
