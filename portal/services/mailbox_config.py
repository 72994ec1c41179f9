"""Mailboxes an admin adds in the portal, beside the MAIL_SOURCE one; and "Test connection".

The connection test goes through the mail package's IMAP source (`ingest.mail.imap`),
the one a poll uses, so it fails exactly where a poll would.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass, replace
from pathlib import Path

from flask import current_app
from imapclient.exceptions import IMAPClientError, LoginError
from sqlalchemy import select, update

from ingest.mail.imap import ImapSource
from ingest.mail.source import SourceSettings
from ingest.mail.tls import describe_tls_error
from portal.crypto import SecretUnreadable, encrypt_secret
from portal.extensions import db
from portal.models import Mailbox, Message, User
from portal.services.audit import record_event
from portal.services.mailbox_tokens import MailboxAuthError, connection_settings
from portal.services.mailboxes import (
    DEFAULT_MAILBOX_NAME,
    IMAP_SCHEMES,
    MailSourceError,
    is_connected,
    parse_source_url,
    source_url_without_password,
)
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

SECURITY_LABELS = {
    "tls": "TLS (imaps)",
    "starttls": "STARTTLS",
    "plain": "none (plain text)",
}
DEFAULT_PORTS = {"tls": 993, "starttls": 143, "plain": 143}
CHECK_TIMEOUT = 10.0


class MailboxConfigError(ValueError):
    """A mailbox change that is not allowed; the message is shown to the admin."""


def is_from_environment(mailbox: Mailbox) -> bool:
    """The MAIL_SOURCE mailbox: every poll re-reads it from the environment."""
    return mailbox.name == DEFAULT_MAILBOX_NAME


def is_unverified(mailbox: Mailbox) -> bool:
    """True when the mailbox's URL turns certificate checks off (`?verify=0`)."""
    try:
        return not parse_source_url(mailbox.source_url).verify
    except MailSourceError:
        return False


def public_settings(mailbox: Mailbox) -> SourceSettings:
    """The mailbox's settings without its password (for forms and pages)."""
    return replace(parse_source_url(mailbox.source_url), processed_folder=mailbox.processed_folder)


def imap_settings(
    *,
    host: str,
    port: int | None,
    security: str,
    username: str,
    folder: str,
    processed_folder: str | None,
    ca_file: str | None = None,
    verify: bool = True,
) -> SourceSettings:
    """Validated IMAP settings (no password: it is stored apart, encrypted)."""
    if security not in IMAP_SCHEMES.values():
        raise MailboxConfigError(f"Unknown security {security!r}.")
    if not host.strip() or any(c.isspace() for c in host.strip()):
        raise MailboxConfigError("An IMAP mailbox needs a server name without spaces.")
    if not username.strip():
        raise MailboxConfigError("An IMAP mailbox needs a user name.")
    return SourceSettings(
        kind="imap",
        host=host.strip(),
        port=port or DEFAULT_PORTS[security],
        security=security,
        username=username.strip(),
        folder=(folder or "").strip() or "INBOX",
        processed_folder=(processed_folder or "").strip() or None,
        ca_file=(ca_file or "").strip() or None if security != "plain" else None,
        verify=verify or security == "plain",
    )


def maildir_settings(*, path: str) -> SourceSettings:
    return SourceSettings(kind="maildir", path=os.path.expanduser(path.strip()))


def _describe(mailbox: Mailbox) -> dict[str, object]:
    # Secret-free: the public URL never carries the password.
    return {
        "name": mailbox.name,
        "source": mailbox.source_url,
        "processed_folder": mailbox.processed_folder,
        "enabled": mailbox.is_enabled,
    }


def create_mailbox(
    *,
    actor: User | None,
    name: str,
    settings: SourceSettings,
    password: str | None = None,
    is_enabled: bool = True,
    connect_later: bool = False,
) -> Mailbox:
    """Add a mailbox for the worker to poll; an IMAP password is stored encrypted. With
    `connect_later` an IMAP mailbox may have none: an admin connects it with OAuth next."""
    name = name.strip()
    if name == DEFAULT_MAILBOX_NAME:
        raise MailboxConfigError(f'"{DEFAULT_MAILBOX_NAME}" is the MAIL_SOURCE mailbox.')
    if db.session.scalar(select(Mailbox.id).where(Mailbox.name == name)) is not None:
        raise MailboxConfigError(f'A mailbox named "{name}" already exists.')
    if settings.kind == "imap" and not password and not connect_later:
        raise MailboxConfigError("An IMAP mailbox needs a password.")
    mailbox = Mailbox(
        name=name,
        source_url=source_url_without_password(settings),
        processed_folder=settings.processed_folder if settings.kind == "imap" else None,
        password_encrypted=encrypt_secret(password) if password else None,
        is_enabled=is_enabled,
        last_uid=0,
    )
    db.session.add(mailbox)
    db.session.flush()
    record_event("mailbox.added", actor=actor, target=mailbox, details=_describe(mailbox))
    log.info("Mailbox %s added: %s", name, mailbox.source_url)
    return mailbox


def update_mailbox(
    mailbox: Mailbox,
    *,
    actor: User | None,
    name: str,
    settings: SourceSettings,
    password: str | None = None,
    is_enabled: bool,
    connect_later: bool = False,
) -> Mailbox:
    """Change a portal mailbox; an empty `password` keeps the stored one (none is needed
    for a mailbox connected with OAuth, or with `connect_later`)."""
    if is_from_environment(mailbox):
        raise MailboxConfigError("This mailbox comes from MAIL_SOURCE; change it there.")
    name = name.strip()
    if name == DEFAULT_MAILBOX_NAME:
        raise MailboxConfigError(f'"{DEFAULT_MAILBOX_NAME}" is the MAIL_SOURCE mailbox.')
    taken = db.session.scalar(
        select(Mailbox.id).where(Mailbox.name == name, Mailbox.id != mailbox.id)
    )
    if taken is not None:
        raise MailboxConfigError(f'A mailbox named "{name}" already exists.')
    before = _describe(mailbox)
    url = source_url_without_password(settings)
    if url.partition("?")[0] != mailbox.source_url.partition("?")[0]:
        # Another server, account or folder: its UIDs mean nothing here. Start over;
        # content de-duplication keeps mail already stored from being stored again.
        mailbox.uidvalidity = None
        mailbox.last_uid = 0
        mailbox.backlog = None
    mailbox.name = name
    mailbox.source_url = url
    mailbox.processed_folder = settings.processed_folder if settings.kind == "imap" else None
    mailbox.is_enabled = is_enabled
    if settings.kind != "imap":
        mailbox.password_encrypted = None
    elif password:
        mailbox.password_encrypted = encrypt_secret(password)
    elif mailbox.password_encrypted is None and not (connect_later or is_connected(mailbox)):
        raise MailboxConfigError("An IMAP mailbox needs a password.")
    after = _describe(mailbox)
    changes = {key: after[key] for key in after if after[key] != before[key]}
    if password and settings.kind == "imap":
        changes["password_changed"] = True
    db.session.flush()
    if changes:
        record_event("mailbox.updated", actor=actor, target=mailbox, details=changes)
    return mailbox


def create_mailbox_from_url(
    *, actor: User | None, name: str, url: str, password: str | None = None
) -> Mailbox:
    """Add a mailbox from a MAIL_SOURCE-style URL (the CLI's way); a password in the URL
    is used when `password` is not given, and is never stored in the URL."""
    try:
        settings = parse_source_url(url.strip())
    except MailSourceError as exc:
        raise MailboxConfigError(str(exc)) from None
    return create_mailbox(
        actor=actor,
        name=name,
        settings=settings,
        password=password or settings.password or None,
    )


def get_mailbox(name: str) -> Mailbox:
    """The mailbox called `name`, or MailboxConfigError."""
    mailbox = db.session.scalar(select(Mailbox).where(Mailbox.name == name.strip()))
    if mailbox is None:
        raise MailboxConfigError(f'No mailbox named "{name}".')
    return mailbox


def list_mailboxes() -> list[Mailbox]:
    """Every mailbox, by name."""
    return list(db.session.scalars(select(Mailbox).order_by(Mailbox.name)))


def remove_mailbox(mailbox: Mailbox, *, actor: User | None) -> None:
    """Forget a portal mailbox; mail stored from it stays (its link to the mailbox is cleared)."""
    if is_from_environment(mailbox):
        raise MailboxConfigError("This mailbox comes from MAIL_SOURCE; change it there.")
    details = _describe(mailbox)
    db.session.execute(
        update(Message).where(Message.mailbox_id == mailbox.id).values(mailbox_id=None)
    )
    record_event("mailbox.removed", actor=actor, target=mailbox, details=details)
    db.session.delete(mailbox)
    db.session.flush()
    log.info("Mailbox %s removed", details["name"])


def set_mailbox_enabled(mailbox: Mailbox, enabled: bool, *, actor: User | None) -> bool:
    """Start or stop polling a mailbox; returns False when nothing changed."""
    if mailbox.is_enabled == enabled:
        return False
    mailbox.is_enabled = enabled
    if enabled:
        # Polled at the next pass, not after the backoff of its last failures.
        mailbox.next_attempt_at = None
    db.session.flush()
    record_event(
        "mailbox.enabled" if enabled else "mailbox.disabled",
        actor=actor,
        target=mailbox,
        details={"name": mailbox.name},
    )
    return True


# --- "Test connection" -----------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    #: One sentence for the admin: the server's own words on failure.
    message: str
    message_count: int | None = None
    #: Messages beyond the mailbox's checkpoint (what the next poll would fetch).
    waiting: int | None = None


_BYTES_REPR_RE = re.compile(r"""^b(['"])(.*)\1$""", re.DOTALL)


def _server_text(exc: Exception) -> str:
    """The server's own words: imapclient prefixes "select failed: ", and a refused
    login arrives as the repr of the response bytes ("b'[AUTHENTICATIONFAILED] …'")."""
    text = str(exc)
    for prefix in ("login failed: ", "select failed: "):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    match = _BYTES_REPR_RE.match(text)
    return match.group(2) if match else text


def _imap_failure(exc: Exception, s: SourceSettings, timeout: float) -> str:
    where = f"{s.host}:{s.port}"
    if isinstance(exc, LoginError):
        return f"Authentication failed for {s.username} on {where}: {_server_text(exc)}"
    if isinstance(exc, ConnectionRefusedError):
        return f"Connection refused by {where}: nothing accepts IMAP connections on that port."
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return f"Timed out: {where} did not answer within {timeout:g} s."
    if isinstance(exc, socket.gaierror):
        return f"Host not found: {s.host} ({exc.strerror})."
    if refused := describe_tls_error(exc):
        return f"TLS failed with {where} ({SECURITY_LABELS[s.security]}): {refused}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed with {where} ({SECURITY_LABELS[s.security]}): {exc}"
    if isinstance(exc, IMAPClientError):
        if str(exc).lower().startswith("select failed"):
            return f'Folder "{s.folder}" cannot be opened: {_server_text(exc)}'
        return f"IMAP error from {where}: {exc}"
    if isinstance(exc, OSError):
        return f"Network error talking to {where}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _check_imap(mailbox: Mailbox, settings: SourceSettings, timeout: float) -> ConnectionCheck:
    try:
        with ImapSource(settings, timeout=timeout) as source:
            assert source.client is not None  # noqa: S101 (type narrowing: the session is open here)
            count = len(source.client.search(["ALL"]))
            same_folder = source.uidvalidity == mailbox.uidvalidity
            waiting = len(source.pending(mailbox.last_uid if same_folder else 0))
    except Exception as exc:
        message = _imap_failure(exc, settings, timeout)
        log.info("Connection test of mailbox %s failed: %s", mailbox.name, message)
        return ConnectionCheck(ok=False, message=message)
    return ConnectionCheck(
        ok=True,
        message=(
            f"Connected to {settings.host}:{settings.port} as {settings.username}; folder "
            f'"{settings.folder}" holds {count} message{"" if count == 1 else "s"}, '
            f"{waiting} not yet fetched."
        ),
        message_count=count,
        waiting=waiting,
    )


def _check_maildir(settings: SourceSettings) -> ConnectionCheck:
    root = Path(settings.path)
    if not root.is_dir():
        return ConnectionCheck(ok=False, message=f"Maildir {root} does not exist.")
    missing = [sub for sub in ("new", "cur", "tmp") if not (root / sub).is_dir()]
    if missing:
        return ConnectionCheck(
            ok=False, message=f"{root} is not a Maildir: {', '.join(missing)}/ missing."
        )
    try:
        waiting = sum(1 for e in os.scandir(root / "new") if e.is_file())
        done = sum(1 for e in os.scandir(root / "cur") if e.is_file())
    except OSError as exc:
        return ConnectionCheck(ok=False, message=f"Cannot read {root}: {exc.strerror or exc}")
    if not os.access(root / "new", os.W_OK) or not os.access(root / "cur", os.W_OK):
        return ConnectionCheck(
            ok=False, message=f"{root} is read-only: processed mail cannot be moved to cur/."
        )
    count = waiting + done
    return ConnectionCheck(
        ok=True,
        message=f"Maildir {root} holds {count} message{'' if count == 1 else 's'}, "
        f"{waiting} not yet fetched.",
        message_count=count,
        waiting=waiting,
    )


def check_connection(mailbox: Mailbox, *, timeout: float = CHECK_TIMEOUT) -> ConnectionCheck:
    """Log in and open the folder as a poll would; report the count or the exact error.

    Changes nothing: no flags are set and the checkpoint stays where it is.
    """
    try:
        # A connected (OAuth) mailbox refreshes its access token here when due (committed).
        settings = connection_settings(mailbox, current_app.config, now=utcnow())
    except (MailSourceError, SecretUnreadable, MailboxAuthError) as exc:
        return ConnectionCheck(ok=False, message=str(exc))
    if settings.kind == "maildir":
        return _check_maildir(settings)
    if settings.kind == "http":
        return _check_http(mailbox, settings)
    return _check_imap(mailbox, settings, timeout)


def _check_http(mailbox: Mailbox, settings: SourceSettings) -> ConnectionCheck:
    # Nothing to connect to: providers post to us. Say whether it can take mail.
    if mailbox.ingress_token_hash is None:
        return ConnectionCheck(ok=False, message="This HTTP mailbox has no path token.")
    if settings.provider != "ses" and mailbox.signing_key_encrypted is None:
        return ConnectionCheck(ok=False, message="This HTTP mailbox has no signing key.")
    last = mailbox.last_delivery_at
    when = last.isoformat(timespec="seconds") if last else "none yet"
    return ConnectionCheck(
        ok=True, message=f"HTTP ingress ({settings.provider}) ready; last delivery: {when}."
    )
