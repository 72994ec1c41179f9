"""Throwaway real servers for the integration tests: Dovecot, PostgreSQL, aiosmtpd.

Plain Python (no pytest) so the classes can also be driven from a REPL. Every
server listens on 127.0.0.1 on a free high port and works both as root (CI) and
as an ordinary user (a developer's laptop). start() never hangs: each step has a
timeout, and a failure raises RuntimeError naming the missing package or quoting
the tail of the service's log.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from base64 import b64decode
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import Request, urlopen

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
ENSURE_HINT = "or run scripts/ensure-test-deps"
IS_ROOT = os.geteuid() == 0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last lines of {path} ---\n{tail or '(empty)'}"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _run(cmd: list[str], log_path: Path, what: str, cwd: Path, timeout: float = 60) -> None:
    """Run a short-lived helper command, appending its output to log_path.

    Output goes to a file rather than a pipe: a daemon forked by the command
    (pg_ctl starts postgres) could otherwise keep the pipe open and hang us.
    """
    with log_path.open("ab") as out:
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"{what} timed out after {timeout:.0f} s: {' '.join(cmd)}\n{_log_tail(log_path)}"
            ) from None
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{_log_tail(log_path)}"
        )


class _WorkDir:
    """The directory a server keeps its config, data and logs in.

    As an ordinary user that is simply base_dir. As root the daemons drop
    privileges (Dovecot's mail processes run as nobody, PostgreSQL as postgres)
    and must reach their files, but pytest's tmp_path_factory dirs sit under
    /tmp/pytest-of-root/, which is mode 0700. So as root we use a fresh
    mkdtemp() under /tmp opened up to 0755, delete it on stop, and copy the logs
    back into base_dir first so they survive for post-mortems.
    """

    def __init__(self, base_dir: Path, name: str) -> None:
        self.base_dir = Path(base_dir)
        self.name = name
        self.path: Path | None = None

    def create(self) -> Path:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.path is None:
            if IS_ROOT:
                self.path = Path(tempfile.mkdtemp(prefix=f"sellerdesk-{self.name}-", dir="/tmp"))
                self.path.chmod(0o755)
            else:
                self.path = self.base_dir
        return self.path

    def remove(self) -> None:
        if self.path is None or self.path == self.base_dir:
            return
        for log_file in self.path.glob("*.log"):
            shutil.copy2(log_file, self.base_dir / log_file.name)
        shutil.rmtree(self.path, ignore_errors=True)
        self.path = None


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bindir() -> Path:
    """Highest-versioned /usr/lib/postgresql/*/bin (Debian), else initdb on PATH."""
    candidates = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    candidates.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if candidates:
        return candidates[-1]
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under "
        "/usr/lib/postgresql/*/bin or on PATH. Install them with: "
        f"sudo apt-get install -y postgresql ({ENSURE_HINT})"
    )


INITDB_ARGS = "-U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync"
# Durability is worthless for a throwaway cluster; these make DDL-heavy tests fast.
SERVER_OPTIONS = (
    f"-c listen_addresses={HOST} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
)


class PostgresServer:
    """A private PostgreSQL cluster: trust auth, fsync off, socket inside its data dir."""

    default_dbname = "sellerdesk_test"

    def __init__(self, base_dir: Path) -> None:
        self._workdir = _WorkDir(base_dir, "postgres")
        self.port = 0
        self._bindir: Path | None = None

    @property
    def _data(self) -> Path:
        assert self._workdir.path is not None, "PostgresServer is not started"
        return self._workdir.path / "data"

    @property
    def log_path(self) -> Path:
        assert self._workdir.path is not None, "PostgresServer is not started"
        return self._workdir.path / "postgres.log"

    def url(self, dbname: str = default_dbname) -> str:
        """SQLAlchemy URL for a database on this server."""
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{dbname}"

    def dsn(self, dbname: str = default_dbname) -> str:
        """libpq conninfo string (for psycopg.connect) for a database on this server."""
        return f"host={HOST} port={self.port} user=postgres dbname={dbname} connect_timeout=10"

    def _pg(self, tool: str, *args: str, what: str) -> None:
        assert self._bindir is not None and self._workdir.path is not None
        cmd = [str(self._bindir / tool), *args]
        if IS_ROOT:
            # initdb and postgres refuse to run as root.
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        _run(cmd, self._workdir.path / "pg_ctl.log", what, cwd=self._workdir.path)

    def start(self) -> None:
        started = time.monotonic()
        self._bindir = _pg_bindir()
        if IS_ROOT:
            try:
                pg_user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "user 'postgres' does not exist; it comes with the package: "
                    f"sudo apt-get install -y postgresql ({ENSURE_HINT})"
                ) from None
        root = self._workdir.create()
        if IS_ROOT:
            os.chown(root, pg_user.pw_uid, pg_user.pw_gid)
        self.port = free_port()
        try:
            self._pg("initdb", "-D", str(self._data), *INITDB_ARGS.split(), what="initdb")
            options = f"-p {self.port} -k {self._data} {SERVER_OPTIONS}"
            self._pg(
                "pg_ctl", "-D", str(self._data), "-l", str(self.log_path), "-o", options,
                "-w", "-t", "30", "start", what="pg_ctl start",
            )  # fmt: skip
            self.create_database(self.default_dbname)
        except BaseException as exc:
            detail = str(exc)
            if self.log_path.exists():
                detail += "\n" + _log_tail(self.log_path)
            self.stop()
            if not isinstance(exc, Exception):  # KeyboardInterrupt: cleaned up, pass it on
                raise
            raise RuntimeError(f"PostgreSQL did not start: {detail}") from exc
        log.info(
            "PostgreSQL (%s) on port %d in %.2f s, data in %s",
            self._bindir,
            self.port,
            time.monotonic() - started,
            self._data,
        )

    def create_database(self, name: str) -> None:
        """CREATE DATABASE name (owned by postgres)."""
        import psycopg  # local: only PostgreSQL runs need the driver
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        log.debug("created database %s on port %d", name, self.port)

    def stop(self) -> None:
        if self._workdir.path is None:
            return
        started = time.monotonic()
        if (self._data / "postmaster.pid").exists():
            try:
                # Fast shutdown: disconnects clients instead of waiting for them.
                self._pg(
                    "pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "-t", "30", "stop",
                    what="pg_ctl stop",
                )  # fmt: skip
            except RuntimeError:
                log.exception("could not stop PostgreSQL on port %d", self.port)
        # As an ordinary user the cluster lives in base_dir: drop its ~40 MB, keep the logs.
        shutil.rmtree(self._data, ignore_errors=True)
        self._workdir.remove()
        log.info("PostgreSQL on port %d stopped in %.2f s", self.port, time.monotonic() - started)


# --------------------------------------------------------------------------- Dovecot

_DOVECOT_CONF = """\
# Throwaway Dovecot for the Sellerdesk tests, written by tests/servers.py.
protocols = imap
listen = {host}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = sellerdesk-test-{port}
ssl = no
disable_plaintext_auth = no
auth_verbose = yes
# Wrong passwords must fail fast in tests: the default delay is 2 s, plus the
# anvil penalty (disabled below) of up to several seconds per failure. Dovecot
# 2.3 still answers a failure on its next 0.5 s failure-queue tick.
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 100
{identity}
# One passwd-file per user: Dovecot re-stats a passwd-file at most once a
# second, so a user appended to a shared file could stay unknown for up to 1 s;
# a new file is read on its first lookup.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users/%u
}}
userdb {{
  driver = static
  args = home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{chroot}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{chroot}
}}
{extra}"""


_DOVECOT_OAUTH2 = """\
auth_mechanisms = plain login xoauth2 oauthbearer
# After the passwd-file passdb: a user it does not know, or a token as the password,
# falls through to this one, which asks the introspection endpoint about the token.
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""

_DOVECOT_OAUTH2_EXT = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def _dovecot_binary() -> str:
    # /usr/sbin is not on an ordinary user's PATH on Debian.
    binary = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        raise RuntimeError(
            "dovecot binary not found. Install it with: "
            f"sudo apt-get install -y dovecot-imapd ({ENSURE_HINT})"
        )
    if Path("/usr/lib/dovecot").is_dir() and not Path("/usr/lib/dovecot/imap-login").exists():
        raise RuntimeError(
            "Dovecot is installed without IMAP (/usr/lib/dovecot/imap-login missing). Install: "
            f"sudo apt-get install -y dovecot-imapd ({ENSURE_HINT})"
        )
    return binary


def _signal_group(pgid: int, sig: int) -> bool:
    """Send sig to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


class DovecotServer:
    """A standalone Dovecot IMAP server (plaintext, passwd-file users, maildir)."""

    def __init__(
        self,
        base_dir: Path,
        *,
        extra_config: str = "",
        tls: tuple[Path, Path] | None = None,
        oauth2_introspection_url: str | None = None,
    ) -> None:
        self._workdir = _WorkDir(base_dir, "dovecot")
        #: Also take AUTHENTICATE XOAUTH2/OAUTHBEARER, checking tokens at this RFC 7662
        #: endpoint (Dovecot's `oauth2` passdb, `introspection_mode = post`).
        self.oauth2_introspection_url = oauth2_introspection_url
        #: Appended to the generated dovecot.conf (e.g. higher process limits for a bench).
        self.extra_config = extra_config
        #: (certificate, key) files: TLS on, STARTTLS on `port`, implicit TLS on `tls_port`.
        self.tls = tls
        self.port = 0
        self.tls_port = 0
        self._users: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        assert self._workdir.path is not None, "DovecotServer is not started"
        return self._workdir.path

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def maildir(self, user: str) -> Path:
        """The user's Maildir (exists once the user has logged in or received mail)."""
        return self.root / "mail" / user.lower() / "Maildir"

    def add_user(self, user: str, password: str) -> None:
        """Add a user, or change a password; works while Dovecot runs.

        Logins are case-insensitive (Dovecot lowercases them by default).
        Changing an existing user's password blocks ~1 s so that Dovecot's
        once-a-second re-check of the file is sure to see it.
        """
        user = user.lower()
        if not user or user in {".", ".."} or any(c in user + password for c in ":/\n"):
            raise ValueError("user and password must not contain ':', '/' or newlines")
        changed = self._users.get(user, password) != password
        self._users[user] = password
        if self._workdir.path is not None:
            self._write_user(user)
            if changed and self._proc is not None:
                time.sleep(1.1)

    def _write_user(self, user: str) -> None:
        users = self.root / "users"
        users.mkdir(exist_ok=True)
        # Write-then-rename so a concurrent login never reads a half-written file.
        # 0644: as root it is read by Dovecot's unprivileged auth worker.
        tmp = users / f".{user}.tmp"
        tmp.write_text(f"{user}:{self._users[user]}\n")
        tmp.chmod(0o644)
        tmp.replace(users / user)

    def _write_config(self) -> Path:
        chroot = ""
        if IS_ROOT:
            # Dovecot refuses uid 0 for mail processes.
            identity = "mail_uid = nobody\nmail_gid = nogroup"
        else:
            # Without root Dovecot cannot switch to its dovecot/dovenull users or
            # chroot; run every internal process as ourselves instead.
            user = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            identity = (
                f"default_internal_user = {user}\ndefault_internal_group = {group}\n"
                f"default_login_user = {user}"
            )
            chroot = "  chroot ="
        extra = self.extra_config
        if self.tls is not None:
            # Later settings override earlier ones: this turns the base file's TLS on.
            cert, key = self.tls
            extra = (
                f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n"
                f"service imap-login {{\n  inet_listener imaps {{\n    address = {HOST}\n"
                f"    port = {self.tls_port}\n  }}\n}}\n{extra}"
            )
        if self.oauth2_introspection_url is not None:
            (self.root / "dovecot-oauth2.conf.ext").write_text(
                _DOVECOT_OAUTH2_EXT.format(url=self.oauth2_introspection_url)
            )
            extra = _DOVECOT_OAUTH2.format(root=self.root) + extra
        conf = self.root / "dovecot.conf"
        conf.write_text(
            _DOVECOT_CONF.format(
                host=HOST,
                port=self.port,
                root=self.root,
                identity=identity,
                chroot=chroot,
                extra=extra,
            )
        )
        return conf

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("Dovecot is already running")
        started = time.monotonic()
        binary = _dovecot_binary()
        self._workdir.create()
        try:
            self._launch(binary)
            self._wait_for_greeting(timeout=15)
        except BaseException:
            self.stop()  # also removes the /tmp dir as root; the error quotes the logs
            raise
        log.info(
            "Dovecot on port %d in %.2f s, files in %s",
            self.port,
            time.monotonic() - started,
            self.root,
        )

    def _launch(self, binary: str) -> None:
        mail = self.root / "mail"
        mail.mkdir(exist_ok=True)
        if IS_ROOT:
            nobody = pwd.getpwnam("nobody")
            os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        if not self.port:
            self.port = free_port()
        if self.tls is not None and not self.tls_port:
            self.tls_port = free_port()
        for user in self._users:
            self._write_user(user)
        conf = self._write_config()
        # -F keeps the master in the foreground so we own its pid. Its stdio goes
        # to a file: with pipes, Dovecot's children keep them open and readers hang.
        # Own session (process group): stop() signals the whole group, because
        # imap processes outlive the master and would keep serving old sessions.
        with (self.root / "dovecot-stdio.log").open("ab") as out:
            self._proc = subprocess.Popen(
                [binary, "-F", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )

    def _wait_for_greeting(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                problem = f"exited with status {self._proc.returncode}"
                break
            try:
                with socket.create_connection((HOST, self.port), timeout=2) as sock:
                    if sock.recv(256).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        else:
            problem = f"did not greet on port {self.port} within {timeout:.0f} s"
        raise RuntimeError(
            f"Dovecot {problem}.\n{_log_tail(self.root / 'dovecot-stdio.log')}\n"
            f"{_log_tail(self.log_path)}"
        )

    def stop(self, *, keep_files: bool = False) -> None:
        """Stop Dovecot; return once the master is gone and the port is closed.

        As root this also deletes the private /tmp dir (logs are copied to
        base_dir first) unless keep_files=True, which a test that takes IMAP
        down and brings it back with start() needs to keep its mail.
        """
        if self._proc is not None:
            started = time.monotonic()
            pgid = self._proc.pid  # session leader: its pid is the group id
            was_running = self._proc.poll() is None
            _signal_group(pgid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("Dovecot ignored SIGTERM for 15 s; killing it")
                _signal_group(pgid, signal.SIGKILL)
                self._proc.wait(timeout=5)
            self._proc = None
            # Children exit on their own after SIGTERM; wait for the stragglers,
            # which may still hold the listening socket ("Address already in use").
            deadline = time.monotonic() + 5
            while _signal_group(pgid, 0) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _signal_group(pgid, signal.SIGKILL):
                log.warning("Dovecot children outlived the master by 5 s; killed them")
            while was_running and _port_open(self.port) and time.monotonic() < deadline + 5:
                time.sleep(0.05)
            log.info("Dovecot on port %d stopped in %.2f s", self.port, time.monotonic() - started)
        if not keep_files:
            self._workdir.remove()

    def restart(self) -> None:
        """Stop, then start again on the same port with the same users and mail."""
        self.stop(keep_files=True)
        self.start()


# --------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    """One message accepted by SmtpServer."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    auth_user: str | None = None


class _SinkHandler:
    """aiosmtpd handler: records messages, or answers with queued rejections."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if reply := self._server._take_rejection("mail"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if reply := self._server._take_rejection("rcpt"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if reply := self._server._take_rejection("data"):
            return reply
        raw = bytes(envelope.original_content)
        # SMTP carries CRLF; the email package works in LF and would otherwise
        # leave "\r\n" inside decoded bodies. `raw` keeps the bytes as sent.
        message = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
        auth = session.auth_data
        self._server._record(
            ReceivedMail(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,  # type: ignore[arg-type]  # policy.default yields EmailMessage
                raw=raw,
                auth_user=auth.login.decode() if auth is not None else None,
            )
        )
        return "250 Message accepted for delivery"

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:
        """AUTH XOAUTH2 (`user=U^Aauth=Bearer T^A^A`): the token is checked at the OAuth
        stand-in's introspection endpoint, as Dovecot's oauth2 passdb does."""
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if len(args) == 2:
            blob = b64decode(args[1])
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False)
            blob = answer
        fields = dict(
            part.split("=", 1)
            for part in blob.decode("utf-8", "replace").split("\x01")
            if "=" in part
        )
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        ok = bool(user) and self._server._token_user(token) == user
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(user.encode(), b""))


class SmtpServer:
    """An in-process aiosmtpd sink on 127.0.0.1.

    users: optional {login: password}; when given, AUTH PLAIN/LOGIN is offered
    without TLS and checked against it (unauthenticated mail is still accepted).
    oauth_introspection_url: when given, AUTH XOAUTH2 is offered without TLS, each token
    checked at that RFC 7662 endpoint (the OAuth stand-in's).
    """

    def __init__(
        self,
        users: dict[str, str] | None = None,
        *,
        tls: tuple[Path, Path] | None = None,
        implicit_tls: bool = False,
        oauth_introspection_url: str | None = None,
    ) -> None:
        self.port = 0
        self.users = users
        self.oauth_introspection_url = oauth_introspection_url
        #: (certificate, key): offer STARTTLS, or speak TLS from the start (implicit_tls).
        self.tls = tls
        self.implicit_tls = implicit_tls
        self._controller: Any = None
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._rejections: dict[str, list[str]] = {"mail": [], "rcpt": [], "data": []}

    @property
    def messages(self) -> list[ReceivedMail]:
        """A snapshot of the messages received so far, oldest first."""
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        """Forget received messages and pending rejections."""
        with self._lock:
            self._messages.clear()
            for queue in self._rejections.values():
                queue.clear()

    def reject_next(self, code: int, text: str, count: int = 1, *, at: str = "data") -> None:
        """Answer the next `count` commands of stage `at` with `code text`.

        at="data" (one count per message) makes smtplib raise SMTPDataError;
        at="rcpt" (one count per recipient) SMTPRecipientsRefused when all are
        refused; at="mail" SMTPSenderRefused. 4xx is temporary, 5xx permanent.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"rejection code must be 4xx or 5xx, not {code}")
        if at not in self._rejections:
            raise ValueError(f"at must be one of {sorted(self._rejections)}, not {at!r}")
        with self._lock:
            self._rejections[at].extend([f"{code} {text}"] * count)

    @property
    def is_running(self) -> bool:
        return self._controller is not None

    def wait_for_messages(self, count: int, timeout: float = 5) -> list[ReceivedMail]:
        """Wait until at least `count` messages arrived (for mail sent from another thread)."""
        deadline = time.monotonic() + timeout
        while len(messages := self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages, got {len(messages)}")
            time.sleep(0.02)
        return messages

    def _take_rejection(self, stage: str) -> str | None:
        with self._lock:
            queue = self._rejections[stage]
            return queue.pop(0) if queue else None

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)
        log.debug("SMTP sink got mail from %s to %s", mail.mail_from, mail.rcpt_tos)

    def _token_user(self, token: str) -> str | None:
        """The user an access token belongs to, by the introspection endpoint; None: dead."""
        if not self.oauth_introspection_url or not token:
            return None
        request = Request(  # noqa: S310 (the stand-in's http URL)
            self.oauth_introspection_url,
            data=urlencode({"token": token}).encode(),
            method="POST",
        )
        with urlopen(request, timeout=5) as answer:  # noqa: S310 (the stand-in's http URL)
            body = json.loads(answer.read())
        return body.get("username") if body.get("active") else None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult

        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users is not None and self.users.get(login) == password
        # handled=False: aiosmtpd then sends the 535 itself; with handled=True a
        # failed login gets no answer at all and smtplib waits forever.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("SmtpServer is already running")
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            raise RuntimeError(
                "aiosmtpd is not installed: .venv/bin/pip install -r requirements-dev.txt"
            ) from None
        started = time.monotonic()
        if not self.port:
            # Controller cannot take port 0 (it connects to the port to check it is up).
            self.port = free_port()
        # Controller only reports a failed bind after its whole ready_timeout.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, self.port))
            except OSError as exc:
                raise RuntimeError(
                    f"SMTP sink cannot listen on {HOST}:{self.port}: {exc}"
                ) from None
        kwargs: dict[str, Any] = {}
        if self.users is not None or self.oauth_introspection_url is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if self.tls is not None:
            import ssl

            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            kwargs["ssl_context" if self.implicit_tls else "tls_context"] = context
        controller = Controller(
            _SinkHandler(self),
            hostname=HOST,
            port=self.port,
            ready_timeout=10,
            # A fixed name skips socket.getfqdn(), which can stall on odd DNS setups.
            server_hostname="sellerdesk-test-smtp",
            **kwargs,
        )
        try:
            controller.start()
        except Exception as exc:
            controller.stop(no_assert=True)
            controller.loop.close()
            raise RuntimeError(f"aiosmtpd could not listen on {HOST}:{self.port}: {exc}") from exc
        self._controller = controller
        log.info("SMTP sink on port %d in %.3f s", self.port, time.monotonic() - started)

    def stop(self) -> None:
        if self._controller is None:
            return
        self._controller.stop()
        self._controller = None
        log.info("SMTP sink on port %d stopped", self.port)

    def restart(self) -> None:
        """Stop, then listen again on the same port (received messages are kept)."""
        self.stop()
        self.start()
