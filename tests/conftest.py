"""Shared fixtures: the app on SQLite or PostgreSQL, clients, factories, a network guard.

`pytest` runs on a temp-file SQLite; `pytest --postgres` runs the same tests on a
throwaway PostgreSQL the suite starts itself (or on TEST_DATABASE_URL when set).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from imapclient import IMAPClient
from sqlalchemy import create_engine, delete
from werkzeug.serving import make_server

from ingest.pipeline import Outcome, ingest_raw
from portal import create_app
from portal.extensions import db
from portal.models import (
    Channel,
    ChannelStatus,
    Direction,
    Message,
    Organisation,
    Role,
    Thread,
    ThreadStatus,
    User,
)
from portal.services import channels as channel_service
from portal.services import users as user_service
from portal.services.inbox.watch import stop_watcher
from portal.sqltypes import utcnow
from tests.helpers import (
    PASSWORD,
    AuthActions,
    FreshContextClient,
    app_config_for,
    close_quietly,
    mail_bytes,
)

pytest_plugins = ["tests.fixtures_servers", "tests.spapi_standin", "tests.oauth_standin"]

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
NETWORK_MARKS = ("imap", "smtp", "postgres", "browser", "live", "spapi", "oauth")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--postgres",
        action="store_true",
        help="run against PostgreSQL (TEST_DATABASE_URL, or a throwaway server the suite starts)",
    )


# --- which tests run in which pass ----------------------------------------------------

#: Marks whose tests run in the SQLite pass only. They test pages and processes (Chromium,
#: a real `make run` or `make serve` on its own SQLite file), not SQL: the PostgreSQL pass
#: would repeat them at the cost of minutes. Ingest, services and views still run on both.
SQLITE_PASS_ONLY = ("browser", "live")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: the twin check must see the `slow` items before `-m` deselects them.
    if not any("::" in arg for arg in config.args):
        check_slow_twins(items)
    if config.getoption("--postgres"):
        kept, dropped = [], []
        for item in items:
            marked = any(item.get_closest_marker(m) for m in SQLITE_PASS_ONLY)
            (dropped if marked else kept).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept


def check_slow_twins(items: list[pytest.Item]) -> None:
    """Every `slow` test is the full size of a parametrized test whose quick size runs in
    `make test`: the same function, helpers and arguments, smaller numbers. A slow test
    nobody runs rotted once (a helper's new argument broke it for 54 commits)."""
    quick: set[tuple[str, str]] = set()
    slow: dict[tuple[str, str], str] = {}
    for item in items:
        key = (str(item.path), getattr(item, "originalname", item.name))
        if item.get_closest_marker("slow"):
            slow[key] = item.nodeid
        else:
            quick.add(key)
    lonely = sorted(nodeid for key, nodeid in slow.items() if key not in quick)
    if lonely:
        raise pytest.UsageError(
            "slow tests without a quick size of the same test (parametrize the size and "
            "mark only the full one `slow`): " + ", ".join(lonely)
        )


# --- network guard -----------------------------------------------------------------

_allowed_ports: set[int] = set()
_real_connect = socket.socket.connect


@pytest.fixture(autouse=True)
def disallow_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection a test did not ask for (like Indico's `disallow_emails`).

    Tests marked imap/smtp/postgres/browser/live may reach loopback; every test may reach
    the test database. Nothing may reach another host.
    """
    may_use_loopback = any(request.node.get_closest_marker(m) for m in NETWORK_MARKS)

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host, port = address[0], address[1]
            # Close first: the caller never gets the socket back to close it.
            if host not in LOOPBACK:
                sock.close()
                raise RuntimeError(f"test tried to connect to {host}:{port}, outside this machine")
            if not may_use_loopback and port not in _allowed_ports:
                sock.close()
                raise RuntimeError(
                    f"test tried to connect to {host}:{port}; mark it imap/smtp/postgres/browser/live/spapi/oauth"
                )
        return _real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


# --- database ----------------------------------------------------------------------


def _upgrade(url: str, tmp: Path) -> None:
    """Create the schema with the real migrations, as `flask db upgrade` would."""
    from flask_migrate import upgrade

    app = create_app(app_config_for(url, tmp))
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    import os

    tmp = tmp_path_factory.mktemp("db")
    if request.config.getoption("--postgres"):
        url = os.environ.get("TEST_DATABASE_URL")
        if not url:
            url = request.getfixturevalue("postgres_server").url()
    else:
        url = f"sqlite:///{tmp / 'test.db'}"
    port = create_engine(url).url.port
    if port:
        _allowed_ports.add(port)
    _upgrade(url, tmp)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database of each kind, for tests that migrate one themselves:
    a SQLite file, and a database on the suite's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server = request.getfixturevalue("postgres_server")
    name = f"empty_{uuid.uuid4().hex[:8]}"
    server.create_database(name)
    return server.url(name)


@pytest.fixture
def app_config(database_url: str, tmp_path: Path) -> dict[str, Any]:
    """The test configuration; a test may change it before asking for `app`."""
    return app_config_for(database_url, tmp_path)


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(app_config)
    with app.app_context():
        yield app
        # A live page's long polls started a watcher thread: stopped, it no longer keeps
        # this app and its pooled connections alive after the test.
        stop_watcher(app)
        db.session.remove()
        # Empty every table (children first) so each test starts from a clean database.
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(delete(table))
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = FreshContextClient
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


# --- factories ---------------------------------------------------------------------


@pytest.fixture
def make_org(app: Flask) -> Callable[..., Organisation]:
    counter = iter(range(1, 10_000))

    def factory(name: str | None = None) -> Organisation:
        org = user_service.get_or_create_organisation(name or f"Org {next(counter)}", actor=None)
        db.session.commit()
        return org

    return factory


@pytest.fixture
def make_user(app: Flask, make_org: Callable[..., Organisation]) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def factory(
        role: Role | str = Role.SELLER,
        *,
        email: str | None = None,
        organisation: Organisation | None = None,
        assigned: list[Organisation] | None = None,
        password: str = PASSWORD,
        name: str = "",
    ) -> User:
        role = Role(role)
        if role == Role.SELLER and organisation is None:
            organisation = make_org()
        user = user_service.create_user(
            email or f"{role.value}{next(counter)}@example.com",
            password,
            role=role,
            organisation=organisation if role == Role.SELLER else None,
            name=name,
        )
        for org in assigned or []:
            user_service.assign_agent(user, org, actor=None)
        db.session.commit()
        return user

    return factory


@pytest.fixture
def make_channel(app: Flask, make_org: Callable[..., Organisation]) -> Callable[..., Channel]:
    def factory(
        marketplace: str = "UK",
        *,
        organisation: Organisation | None = None,
        address: str | None = None,
        status: ChannelStatus | None = None,
    ) -> Channel:
        channel = channel_service.create_channel(
            organisation or make_org(),
            marketplace,
            actor=None,
            inbound_domain=app.config["INBOUND_DOMAIN"],
        )
        if address:
            channel.helpdesk_address = address
        if status:
            channel.status = status
        db.session.commit()
        return channel

    return factory


@pytest.fixture
def uk(make_channel: Callable[..., Channel], make_org: Callable[..., Organisation]) -> Channel:
    """Acme's UK channel, at the address the real-mail fixtures are sent to."""
    return make_channel("UK", organisation=make_org("Acme"), address="uk-chan01@helpdesk.test")


@pytest.fixture
def two_channels(
    make_channel: Callable[..., Channel], make_org: Callable[..., Organisation]
) -> tuple[Channel, Channel]:
    """Two sellers apart: Alpha Ltd's UK channel and Beta GmbH's DE channel."""
    return (
        make_channel("UK", organisation=make_org("Alpha Ltd"), address="uk-alpha@helpdesk.test"),
        make_channel("DE", organisation=make_org("Beta GmbH"), address="de-beta@helpdesk.test"),
    )


# --- mail delivered into the app's Maildir, as an MDA would ------------------------


@pytest.fixture
def maildir(app, app_config) -> Path:
    """The Maildir the app's MAIL_SOURCE points at, created empty."""
    root = Path(app_config["MAIL_SOURCE"].removeprefix("maildir:"))
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def drop_mail(maildir: Path):
    """Deliver a fixture .eml (or raw bytes) into new/, as an MDA would."""
    counter = iter(range(1, 100_000))

    def drop(name_or_bytes: str | bytes, *, replace: dict[str, str] | None = None) -> Path:
        raw = mail_bytes(name_or_bytes, replace=replace)
        n = next(counter)
        tmp = maildir / "tmp" / f"{n}.sellerdesk-test"
        tmp.write_bytes(raw)
        target = maildir / "new" / tmp.name
        shutil.move(tmp, target)
        # Distinct mtimes keep the delivery order deterministic.
        os.utime(target, (1_700_000_000 + n, 1_700_000_000 + n))
        return target

    return drop


@pytest.fixture
def ingest(app: Flask) -> Callable[..., Outcome]:
    """Store a fixture .eml (or raw bytes) through the pipeline's per-message path, without
    a mailbox, and commit; returns the outcome."""

    def do_ingest(name_or_bytes: str | bytes, *, replace: dict[str, str] | None = None) -> Outcome:
        outcome = ingest_raw(
            mail_bytes(name_or_bytes, replace=replace),
            mailbox=None,
            uidvalidity=None,
            uid=None,
            inbound_domain=app.config["INBOUND_DOMAIN"],
            max_attachment_bytes=app.config["MAX_ATTACHMENT_BYTES"],
            now=utcnow(),
        )
        db.session.commit()
        return outcome

    return do_ingest


@pytest.fixture
def make_thread(app: Flask, make_channel: Callable[..., Channel]) -> Callable[..., Thread]:
    """A thread with inbound buyer messages, built directly (no parsing)."""
    counter = iter(range(1, 1_000_000))

    def factory(
        channel: Channel | None = None,
        *,
        subject: str = "Inquiry from Amazon customer Jane (Order: 203-1234567-1234567)",
        buyer_name: str = "Jane",
        buyer_address: str | None = None,
        order_id: str | None = "203-1234567-1234567",
        status: ThreadStatus = ThreadStatus.OPEN,
        texts: tuple[str, ...] = ("Where is my parcel?",),
        received_at: datetime | None = None,
        awaiting: bool = True,
    ) -> Thread:
        channel = channel or make_channel()
        n = next(counter)
        when = received_at or utcnow()
        thread = Thread(
            channel=channel,
            organisation_id=channel.organisation_id,
            subject=subject,
            normalized_subject=subject.lower(),
            buyer_name=buyer_name,
            buyer_address=buyer_address or f"buyer{n}@marketplace.amazon.co.uk",
            order_id=order_id,
            status=status,
            last_message_at=when,
            awaiting_reply_since=when if awaiting and status != ThreadStatus.CLOSED else None,
        )
        db.session.add(thread)
        for i, text in enumerate(texts):
            db.session.add(
                Message(
                    thread=thread,
                    channel=channel,
                    direction=Direction.IN,
                    message_id=f"<t{n}-{i}@example.com>",
                    content_hash=f"{n}-{i}",
                    subject=subject,
                    from_name=buyer_name,
                    from_address=thread.buyer_address,
                    to_addresses=channel.helpdesk_address,
                    order_id=order_id,
                    text_body=text,
                    visible_text=text,
                    snippet=text[:300],
                    created_at=when,
                )
            )
        db.session.commit()
        return thread

    return factory


# --- logging in through the real form, CSRF on --------------------------------------


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def login_as(auth: AuthActions, make_user: Callable[..., User]) -> Callable[..., User]:
    """Create a user with `role` (and factory options) and log the test client in as them."""

    def do_login(role: Role | str = Role.SELLER, **kwargs: Any) -> User:
        user = make_user(role, **kwargs)
        response = auth.login(user.email)
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    return do_login


# --- live server for the browser tests ---------------------------------------------


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    # Debian's Chromium; Playwright's own browser downloads are not available here.
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


# --- IMAP: a fresh Dovecot user per test ------------------------------------------------------

_imap_users = itertools.count(1)


@pytest.fixture
def account(app: Flask, dovecot) -> str:
    """A fresh Dovecot user; the app's MAIL_SOURCE points at its INBOX."""
    user = f"user{next(_imap_users)}-{os.getpid()}"
    dovecot.add_user(user, "imap-pass")
    app.config["MAIL_SOURCE"] = f"imap://{user}:imap-pass@127.0.0.1:{dovecot.port}/INBOX"
    return user


@pytest.fixture
def imap(account: str, dovecot) -> Iterator[IMAPClient]:
    """A client logged in as `account`, its INBOX selected."""
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=30)
    client.login(account, "imap-pass")
    client.select_folder("INBOX")
    yield client
    close_quietly(client)
