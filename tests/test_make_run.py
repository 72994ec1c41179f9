"""`make run` end to end with the Maildir source: mail dropped into new/ while it runs.

Starts the real `make run` (migrations, first-run admin, web server plus ingest
worker) in its own process group with every path pointed into a temp dir, adds a
seller and a channel through the CLI, delivers a buyer message the way an MDA
does, waits for it to be threaded, then presses Ctrl-C (SIGINT to the group).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
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
from tests.mailgen import amazon_message
from tests.servers import free_port

# An HTTP client of the portal `make run` serves on loopback.
pytestmark = pytest.mark.live

START_TIMEOUT = 60
INGEST_TIMEOUT = 30
STOP_TIMEOUT = 30


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in folder.rglob("*")
    }


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    """The environment for `make run` and the CLI: every path and secret in tmp_path."""
    # After the pass at start-up only the Maildir watch can fetch: the hour-long poll
    # interval proves a dropped file is taken on arrival, as the README says.
    return make_target_environment(
        tmp_path, PORT=str(free_port()), SELLERDESK_ENV="development", POLL_SECONDS="3600"
    )


@pytest.fixture
def make_run(
    run_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen, Path, dict[str, tuple[int, int]]]]:
    """`make run` in its own process group, output to a file; killed if a test leaves it up.

    Yields the process, its output file and a snapshot of instance/ taken before it started.
    """
    if subprocess.run(["make", "-q", ".venv/.installed"], cwd=ROOT, check=False).returncode:
        pytest.fail(
            "make run would reinstall requirements.txt first (.venv/.installed is out of "
            "date): run `make .venv/.installed` once, then this test"
        )
    output = tmp_path / "make-run.out"
    instance_before = _snapshot(ROOT / "instance")

    proc = start_in_own_group(["make", "--no-print-directory", "run"], run_env, output)
    try:
        yield proc, output, instance_before
    finally:
        kill_group(proc)


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"flask {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def _login_page_status(port: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as response:
            return response.status
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def test_make_run_ingests_mail_dropped_into_maildir_new_and_ctrl_c_stops_both(
    make_run, run_env, tmp_path
):
    proc, output, instance_before = make_run
    port = run_env["PORT"]

    def web_up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"make run exited with {proc.returncode}\n{output.read_text()}")
        return _login_page_status(port) == 200

    wait_for("the portal to answer /login", web_up, START_TIMEOUT, output)
    started = output.read_text()
    assert re.search(r"First run: created the admin account", started), started
    password = re.search(r"password:\s+(\S+)\s+\(one-time", started)
    assert password and len(password.group(1)) >= 12, started

    # The web server (run-all) and the worker (ingest run) are both up, in make's group.
    worker_pid = int(
        wait_for(
            "the ingest worker",
            lambda: re.search(r"ingest worker pid (\d+)", output.read_text()),
            START_TIMEOUT,
            output,
        ).group(1)
    )
    members = group_members(proc.pid)
    web_pids = [pid for pid, cmd in members.items() if "flask --app wsgi run-all" in cmd]
    assert len(web_pids) == 1, members
    assert "flask --app wsgi ingest run" in members.get(worker_pid, ""), members
    wait_for(
        "the worker to start",
        lambda: "Ingest worker started" in output.read_text(),
        START_TIMEOUT,
        output,
    )

    # A seller and their UK channel, through the CLI, against the same database.
    seller = ["--email", "owner@acme.test", "--password", "correct horse battery"]
    _cli(run_env, "users", "create", *seller, "--role", "seller", "--org", "Acme")
    added = _cli(run_env, "channels", "add", "--org", "Acme", "--marketplace", "UK")
    address = added.strip().splitlines()[-1]
    assert re.fullmatch(r"[a-z0-9.+-]+@helpdesk\.test", address), added

    # Delivered as an MDA does: written in tmp/, then renamed into new/.
    maildir = tmp_path / "maildir"
    wait_for(
        "the worker to watch the Maildir",
        lambda: f"watching {maildir / 'new'} for new mail" in output.read_text(),
        START_TIMEOUT,
        output,
    )
    raw = amazon_message(1, address)
    message_id = re.search(rb"^Message-ID: (<[^>]+>)", raw, re.MULTILINE).group(1).decode()
    name = f"{int(time.time())}.M1P{os.getpid()}.sellerdesk-test"
    (maildir / "tmp" / name).write_bytes(raw)
    os.rename(maildir / "tmp" / name, maildir / "new" / name)

    def stored_in_channel() -> bool:
        with sqlite3.connect(f"file:{tmp_path / 'db.sqlite'}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT t.id FROM messages m JOIN threads t ON t.id = m.thread_id "
                "JOIN channels c ON c.id = t.channel_id "
                "WHERE m.message_id = ? AND c.helpdesk_address = ? AND m.channel_id = c.id",
                (message_id, address),
            ).fetchall()
        conn.close()
        return len(rows) == 1

    wait_for("the message to be stored in the channel", stored_in_channel, INGEST_TIMEOUT, output)
    wait_for(
        "the file to leave new/",
        lambda: not any((maildir / "new").iterdir()),
        INGEST_TIMEOUT,
        output,
    )
    assert [p.name for p in (maildir / "cur").iterdir()] == [f"{name}:2,S"]
    listed = _cli(run_env, "channels", "list", "--org", "Acme")
    assert address in listed and "messages_7d=1" in listed, listed
    assert "last_message=-" not in listed, listed

    # Ctrl-C: SIGINT to the whole foreground group stops the web server and the worker.
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"make run ignored Ctrl-C\n{output.read_text()}")
    wait_for(
        "every process of make run to exit",
        lambda: not group_members(proc.pid),
        STOP_TIMEOUT,
        output,
    )
    for pid in [*web_pids, worker_pid]:
        assert not alive(pid), f"process {pid} survived Ctrl-C"
    assert _login_page_status(port) is None, "the web server still answers"
    log = output.read_text()
    assert "Ingest worker stopped" in log, log  # a clean stop, not a kill
    assert "Traceback" not in log, log

    # Nothing was written to the developer's own instance/ folder.
    assert _snapshot(ROOT / "instance") == instance_before
