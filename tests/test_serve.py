"""`make serve` end to end: migrations, gunicorn with WEB_CONCURRENCY workers plus the
ingest worker; /healthz turns 200 once the worker has polled; Ctrl-C or SIGTERM stops all.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    ROOT,
    alive,
    group_members,
    kill_group,
    make_target_environment,
    start_in_own_group,
    wait_for,
)
from tests.servers import free_port

pytestmark = pytest.mark.live

START_TIMEOUT = 60
STOP_TIMEOUT = 45


def _get(port: str, path: str) -> tuple[int, dict[str, str], bytes] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.fixture
def serve_env(tmp_path: Path) -> dict[str, str]:
    return make_target_environment(
        tmp_path, PORT=str(free_port()), SELLERDESK_ENV="production", WEB_CONCURRENCY="3"
    )


@pytest.fixture
def start_serve(
    serve_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[list[str]], tuple[subprocess.Popen, Path]]]:
    """Start a command (`make serve` or scripts/serve) in its own process group."""
    if subprocess.run(["make", "-q", ".venv/.installed"], cwd=ROOT, check=False).returncode:
        pytest.fail("make serve would reinstall requirements first: run `make .venv/.installed`")
    started: list[subprocess.Popen] = []

    def start(command: list[str]) -> tuple[subprocess.Popen, Path]:
        output = tmp_path / "serve.out"
        proc = start_in_own_group(command, serve_env, output)
        started.append(proc)
        return proc, output

    yield start
    for proc in started:
        kill_group(proc)


def _check_running(proc: subprocess.Popen, output: Path, port: str) -> dict[int, str]:
    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}\n{output.read_text()}")
        answer = _get(port, "/healthz")
        return answer is not None and answer[0] == 200

    wait_for("/healthz to answer 200", healthy, START_TIMEOUT, output)
    status, headers, body = _get(port, "/healthz")
    assert json.loads(body)["status"] == "ok"

    members = group_members(proc.pid)
    gunicorn = [pid for pid, cmd in members.items() if "gunicorn" in cmd and "wsgi:app" in cmd]
    # The master and WEB_CONCURRENCY (3) workers.
    assert len(gunicorn) == 4, members
    workers = [pid for pid, cmd in members.items() if "flask --app wsgi ingest run" in cmd]
    assert len(workers) == 1, members

    # Static files: a versioned URL in the page, served with a year's cache lifetime.
    status, _, page = _get(port, "/login")
    assert status == 200
    css = re.search(rb'href="(/static/css/app\.css\?v=[0-9a-f]+)"', page)
    assert css, page[:500]
    status, headers, body = _get(port, css.group(1).decode())
    assert status == 200 and "max-age=31536000" in headers["Cache-Control"], headers
    assert body == (ROOT / "static" / "css" / "app.css").read_bytes()
    return members


def _assert_all_stopped(
    proc, output: Path, members: dict[int, str], *, exit_codes: tuple[int, ...] = (0,)
) -> None:
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve did not stop\n{output.read_text()}")
    wait_for("every process to exit", lambda: not group_members(proc.pid), 15, output)
    for pid in members:
        assert not alive(pid), f"{members[pid]} ({pid}) survived"
    log = output.read_text()
    assert proc.returncode in exit_codes, log
    assert "Ingest worker stopped" in log, log
    assert "Traceback" not in log, log


def test_make_serve_runs_gunicorn_and_the_worker_and_ctrl_c_stops_both(start_serve, serve_env):
    proc, output = start_serve(["make", "--no-print-directory", "serve"])
    members = _check_running(proc, output, serve_env["PORT"])
    assert "Running upgrade" in output.read_text()  # flask db upgrade ran first
    # Ctrl-C, to the whole foreground group, once the last response is out: gunicorn's
    # quick shutdown on SIGINT cuts a request still in flight short (with a traceback).
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    # make itself dies of the SIGINT (-2) once its recipe has finished, as after any Ctrl-C.
    _assert_all_stopped(proc, output, members, exit_codes=(0, -signal.SIGINT))
    assert "gunicorn" in output.read_text() and "Shutting down: Master" in output.read_text()


def test_sigterm_to_the_serve_script_stops_both(start_serve, serve_env):
    # What systemd or a process manager does: SIGTERM to the main process only.
    proc, output = start_serve([str(ROOT / ".venv" / "bin" / "python"), "scripts/serve"])
    members = _check_running(proc, output, serve_env["PORT"])
    proc.send_signal(signal.SIGTERM)
    _assert_all_stopped(proc, output, members)
    assert _get(serve_env["PORT"], "/healthz") is None
