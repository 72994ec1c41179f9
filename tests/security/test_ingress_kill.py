"""SIGKILL of the web process in the middle of an HTTP delivery: the retry stores it once.

The portal runs under gunicorn (as Procfile's `web`), on the suite's database. A
delivery is sent all but its last byte, so that the worker is inside the request,
its rate-limit hit counted in the shared `database://` storage, reading the body,
when it is killed. Then the sender retries: the same signed request is taken (the
replay memory is committed only with the mail), a re-signed one is a duplicate, the
first again is a replay: one message stored.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Direction, Message, RateLimitCounter
from portal.services import http_ingress
from tests.helpers import (
    alive,
    group_members,
    kill_group,
    start_in_own_group,
    wait_for,
    worker_environment,
)
from tests.http_ingress_standin import generic_headers, post
from tests.mailgen import amazon_message
from tests.servers import free_port

pytestmark = pytest.mark.live

HELPDESK = "uk-chan01@helpdesk.test"


def _stored() -> int:
    db.session.expire_all()
    db.session.rollback()
    return db.session.scalar(
        select(func.count(Message.id)).where(Message.direction == Direction.IN)
    )


def _counted() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(RateLimitCounter)) or 0


def _send_all_but_the_last_byte(url: str, body: bytes, headers: dict[str, str]) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    sock.sendall(head.encode() + body[:-1])
    return sock


def test_sigkill_during_a_delivery_then_the_retry_stores_it_once(app, uk, database_url, tmp_path):
    new = http_ingress.create_http_mailbox(actor=None, name="posted", provider="generic")
    db.session.commit()
    port = free_port()
    env = worker_environment(
        app.config, database_url, RATELIMIT_STORAGE_URI="database://", LOG_LEVEL="INFO"
    )
    output = tmp_path / "gunicorn.log"
    server = start_in_own_group(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            "wsgi:app",
        ],
        env,
        output,
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_for("gunicorn to listen", up, 60, output)
        url = f"{base}/inbound/{new.token}"
        raw = amazon_message(1, HELPDESK)
        headers = generic_headers(new.signing_key, raw)

        def worker() -> int | None:
            pids = [pid for pid in group_members(server.pid) if pid != server.pid]
            return pids[0] if len(pids) == 1 else None

        victim = wait_for("the gunicorn worker", worker, 60, output)
        sock = _send_all_but_the_last_byte(url, raw, headers)
        wait_for("the request to reach the portal", _counted, 30, output)
        os.kill(victim, signal.SIGKILL)
        wait_for("the worker to die", lambda: not alive(victim), 30, output)
        assert sock.recv(1024) == b""  # no answer: the connection died with the worker
        sock.close()
        assert _stored() == 0

        # The sender retries the very request (gunicorn has started a new worker).
        wait_for("a new worker", lambda: worker() not in (None, victim), 60, output)
        assert post(url, raw, headers) == (200, {"status": "stored"})
        # Re-signed, it is the same mail; sent once more as it was, a replay.
        later = int(headers["X-Sellerdesk-Timestamp"]) + 1
        resigned = generic_headers(new.signing_key, raw, timestamp=later)
        assert post(url, raw, resigned) == (200, {"status": "duplicate"})
        assert post(url, raw, headers)[0] == 409
        assert _stored() == 1
    finally:
        kill_group(server)
