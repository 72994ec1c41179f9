"""Behind a reverse proxy: TRUSTED_PROXIES makes the app see the client's address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import wsgi\n"
    "from flask import request\n"
    "with wsgi.app.app_context():\n"
    "    wsgi.app.add_url_rule('/probe-ip', 'probe_ip', lambda: request.remote_addr)\n"
    "c = wsgi.app.test_client()\n"
    "print(c.get('/probe-ip', headers={'X-Forwarded-For': '203.0.113.9'}).get_data(as_text=True))\n"
)


def _remote_addr(tmp_path: Path, proxies: str) -> str:
    env = {
        **os.environ,
        "TRUSTED_PROXIES": proxies,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "SECRET_KEY": "probe",
        "TOKEN_KEY": Fernet.generate_key().decode(),
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_forwarded_for_is_trusted_only_when_configured(tmp_path):
    assert _remote_addr(tmp_path, "0") == "127.0.0.1"
    assert _remote_addr(tmp_path, "1") == "203.0.113.9"
