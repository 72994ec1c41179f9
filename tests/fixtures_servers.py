"""pytest plugin: session-scoped real servers (Dovecot, aiosmtpd, PostgreSQL).

Loaded from tests/conftest.py with ``pytest_plugins = ["tests.fixtures_servers"]``
or standalone with ``-p tests.fixtures_servers``. A server that cannot start
makes every test using it ERROR with the reason; it is never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

import pytest

from tests.servers import DovecotServer, PostgresServer, SmtpServer

MARKERS = {
    "imap": "talks to the real Dovecot IMAP server started by the suite",
    "smtp": "talks to the real aiosmtpd SMTP server started by the suite",
    "postgres": "needs the real PostgreSQL server started by the suite",
    "browser": "drives Chromium through Playwright",
    "live": "runs the real `make run` and talks HTTP to it on loopback",
    "spapi": "talks HTTP to the SP-API consent / LWA token stand-in (tests/spapi_standin.py)",
    "oauth": "talks HTTP to the OAuth2 authorisation server stand-in (tests/oauth_standin.py)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


class _Server(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)


@contextmanager
def _running(server: S) -> Iterator[S]:
    error = None
    try:
        server.start()
    except RuntimeError as exc:
        # start() has already cleaned up; the message names the missing package
        # or quotes the server's log.
        error = f"{type(server).__name__} could not start: {exc}"
    if error:  # failed outside the except block so the message is not printed twice
        pytest.fail(error, pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    """A running Dovecot; add users with dovecot.add_user(user, password)."""
    with _running(DovecotServer(tmp_path_factory.mktemp("dovecot"))) as server:
        yield server


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory):
    """The CA and server certificates of tests/certs.py, made once a session."""
    from tests.certs import make_test_pki

    folder = tmp_path_factory.mktemp("pki")
    folder.chmod(0o755)  # Dovecot's login processes may run as another user
    return make_test_pki(folder)


@pytest.fixture(scope="session")
def tls_dovecot(tmp_path_factory: pytest.TempPathFactory, test_pki):
    """tls_dovecot(kind): a Dovecot with TLS on, serving test_pki's `kind` certificate
    ("good", "wrong_host", "expired", "unknown_ca"); started on first use, one per kind."""
    servers: dict[str, DovecotServer] = {}

    def get(kind: str) -> DovecotServer:
        if kind not in servers:
            files = getattr(test_pki, kind)
            server = DovecotServer(
                tmp_path_factory.mktemp(f"dovecot-{kind}"), tls=(files.cert, files.key)
            )
            server.start()
            servers[kind] = server
        return servers[kind]

    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="session")
def oauth_dovecot(tmp_path_factory: pytest.TempPathFactory, oauth_standin):
    """A second Dovecot that also takes AUTHENTICATE XOAUTH2 (and OAUTHBEARER), checking
    each token at the OAuth stand-in's introspection endpoint (its `oauth2` passdb).
    Any user name works with a token the stand-in issued for that user."""
    server = DovecotServer(
        tmp_path_factory.mktemp("dovecot-oauth"),
        oauth2_introspection_url=oauth_standin.introspection_url,
    )
    with _running(server):
        yield server


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """A running aiosmtpd sink shared by the whole session (see `smtp`)."""
    with _running(SmtpServer()) as server:
        yield server


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    """The session SMTP sink, emptied (messages and pending rejections) for this test."""
    smtp_server.clear()
    yield smtp_server
    # A test that took the server down must not leave it down for the next one.
    if not smtp_server.is_running:
        smtp_server.start()


@pytest.fixture(scope="session")
def oauth_smtp_server(oauth_standin) -> Iterator[SmtpServer]:
    """An aiosmtpd sink that takes AUTH XOAUTH2, checking tokens at the OAuth stand-in."""
    with _running(SmtpServer(oauth_introspection_url=oauth_standin.introspection_url)) as server:
        yield server


@pytest.fixture
def oauth_smtp(oauth_smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    """The XOAUTH2 SMTP sink, emptied for this test."""
    oauth_smtp_server.clear()
    yield oauth_smtp_server


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A running PostgreSQL with an empty `sellerdesk_test` database."""
    with _running(PostgresServer(tmp_path_factory.mktemp("postgres"))) as server:
        yield server
