"""The shipped deployment (deploy/): nginx's headers and proxying, and the example
environment run as it ships, with two web processes on one database."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
from dotenv import dotenv_values

from tests.helpers import PASSWORD, TOKEN_KEY, csrf_token_from
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx-sellerdesk.conf"
ENV_EXAMPLE = ROOT / "deploy" / "sellerdesk.env.example"
START_TIMEOUT = 60


# --- nginx: a small reader of its block syntax ---------------------------------------


@dataclass
class Block:
    args: list[str]
    directives: list[list[str]] = field(default_factory=list)
    children: list[Block] = field(default_factory=list)

    def walk(self) -> Iterator[Block]:
        yield self
        for child in self.children:
            yield from child.walk()

    def all(self, name: str) -> list[list[str]]:
        return [d[1:] for d in self.directives if d[0] == name]


def _read_nginx(text: str) -> Block:
    # Comments run from an unquoted # to the end of the line (none of ours quotes a #).
    text = re.sub(r"(?m)(^|\s)#.*$", r"\1", text)
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[{};]|[^\s{};"]+', text)
    root = Block(["main"])
    stack, words = [root], []
    for token in tokens:
        if token == "{":
            block = Block(words)
            stack[-1].children.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        elif token == ";":
            stack[-1].directives.append(words)
            words = []
        else:
            words.append(token.strip('"'))
    assert len(stack) == 1 and not words, "unbalanced braces"
    return root


def _servers() -> list[Block]:
    return [b for b in _read_nginx(NGINX_CONF.read_text()).children if b.args == ["server"]]


def test_every_location_that_adds_headers_repeats_hsts():
    # nginx: a block with any add_header of its own inherits none from the server, so a
    # location adding Cache-Control silently dropped Strict-Transport-Security.
    https = [s for s in _servers() if s.all("add_header")]
    assert https, "no server adds headers"
    for server in https:
        hsts = [a for a in server.all("add_header") if a[0] == "Strict-Transport-Security"]
        assert hsts, "the HTTPS server sends no Strict-Transport-Security"
        for block in server.walk():
            headers = block.all("add_header")
            if headers:
                assert hsts[0] in headers, f"{' '.join(block.args)} drops {hsts[0]}"


def test_every_proxied_location_passes_the_client_address():
    # TRUSTED_PROXIES=1 takes X-Forwarded-For's last entry: the one nginx appends.
    proxied = [b for s in _servers() for b in s.walk() if b.all("proxy_pass")]
    assert proxied
    for block in proxied:
        headers = {a[0]: a[1:] for a in block.all("proxy_set_header")}
        assert headers.get("X-Forwarded-For") == ["$proxy_add_x_forwarded_for"], block.args
        assert headers.get("X-Forwarded-Proto") == ["$scheme"], block.args
        assert block.all("proxy_pass") == [["http://127.0.0.1:5000"]], block.args
    assert dotenv_values(ENV_EXAMPLE).get("PORT") == "5000"


def test_the_nginx_reader_sees_what_nginx_sees():
    root = _read_nginx('server { add_header A "x; y" always; # add_header B z;\n location / { } }')
    (server,) = root.children
    assert server.all("add_header") == [["A", "x; y", "always"]]
    assert server.children[0].args == ["location", "/"]


# --- the example environment, served by two web processes on one database ----------


def _example_environment(database_url: str, tmp_path: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("RATELIMIT_STORAGE_URI", "TRUSTED_PROXIES", "WEB_CONCURRENCY"):
        env.pop(name, None)  # as the example says, whatever this machine has
    env.update({k: v for k, v in dotenv_values(ENV_EXAMPLE).items() if v is not None})
    env.update(
        {
            # Only what points at this test's world changes.
            "DATABASE_URL": database_url,
            "SECRET_KEY": "deploy-test-secret",
            "TOKEN_KEY": TOKEN_KEY,
            "MAIL_SOURCE": f"maildir:{tmp_path / 'maildir'}",
            "SMTP_URL": f"outbox:{tmp_path / 'outbox'}",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


@pytest.fixture
def two_web_processes(app, database_url: str, tmp_path: Path) -> Iterator[list[int]]:
    """Two gunicorns of one worker each, as two workers of `make serve` (but certainly
    two processes), on the test database with the example's settings; their ports."""
    ports = [free_port(), free_port()]
    procs = []
    for n, port in enumerate(ports):
        command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind",
                   f"127.0.0.1:{port}", "--no-control-socket", "wsgi:app"]  # fmt: skip
        with (tmp_path / f"web{n}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=_example_environment(database_url, tmp_path, port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        for n, (proc, port) in enumerate(zip(procs, ports, strict=True)):
            deadline = time.monotonic() + START_TIMEOUT
            while _status(port, "/login") is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"gunicorn did not start:\n{(tmp_path / f'web{n}.log').read_text()}"
                    )
                time.sleep(0.2)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def _login(port: int, forwarded_for: str, email: str, password: str) -> int:
    """A login through nginx as configured: X-Forwarded-For ends with the client's address.

    Cookies by hand: in production the session cookie is Secure, and this is plain HTTP.
    """
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=10)) as conn:
        return _login_on(conn, forwarded_for, email, password)


def _login_on(
    conn: http.client.HTTPConnection, forwarded_for: str, email: str, password: str
) -> int:
    conn.request("GET", "/login", headers={"X-Forwarded-For": forwarded_for})
    page = conn.getresponse()
    html = page.read().decode()
    cookie = page.getheader("Set-Cookie").split(";", 1)[0]
    form = {"email": email, "password": password, "csrf_token": csrf_token_from(html)}
    conn.request(
        "POST",
        "/login",
        body=urlencode(form),
        headers={
            "X-Forwarded-For": forwarded_for,
            "Cookie": cookie,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    response = conn.getresponse()
    response.read()
    return response.status


@pytest.mark.live
def test_the_example_limits_each_client_once_across_web_processes(two_web_processes, make_user):
    victim, colleague = make_user(), make_user()
    attacker = "203.0.113.5"
    # Ten wrong logins, spread over both processes, each with a forged address in front
    # of the one nginx appends: they all count for the attacker. Ten addresses, so the
    # per-account lockout (tests/portal/test_lockout.py) is not what refuses them here.
    statuses = [
        _login(two_web_processes[n % 2], f"10.0.0.{n}, {attacker}", f"guess{n}@example.com", "x")
        for n in range(10)
    ]
    assert statuses == [200] * 10
    for port in two_web_processes:
        assert _login(port, f"10.9.9.9, {attacker}", victim.email, PASSWORD) == 429
    # Another client is not locked out: neither from another account nor from this one.
    assert _login(two_web_processes[0], "198.51.100.7", colleague.email, PASSWORD) == 302
    assert _login(two_web_processes[1], "198.51.100.8", victim.email, PASSWORD) == 302


# --- nginx itself accepts the site file -------------------------------------------------


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "helpdesk.example.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_nginx_accepts_the_site_file_as_shipped(tmp_path):
    """`nginx -t` with Debian's nginx: the site file as shipped, only the certificate
    paths pointed at a throwaway certificate (the "http2 on;" directive of nginx 1.25
    once made Debian 12's nginx refuse the whole file)."""
    nginx = "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: scripts/ensure-test-deps installs it"
    cert, key = _self_signed_certificate(tmp_path)
    site = NGINX_CONF.read_text()
    site = re.sub(r"/etc/letsencrypt/live/[^;]*/fullchain\.pem", str(cert), site)
    site = re.sub(r"/etc/letsencrypt/live/[^;]*/privkey\.pem", str(key), site)
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr
