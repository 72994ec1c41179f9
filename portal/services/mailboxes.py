"""Mailboxes: the configured source, connection settings, checkpoint and health.

Their leases, which commit, are in leases.py.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from urllib.parse import parse_qs, quote, unquote, urlsplit

from sqlalchemy import delete, func, select

from ingest.mail.source import SourceSettings
from ingest.mail.tls import TlsOptionError, tls_options, tls_query
from portal.crypto import decrypt_secret, encrypt_secret
from portal.extensions import db
from portal.models import Mailbox, MailboxPollHour
from portal.sqltypes import upsert_insert, utcnow

log = logging.getLogger(__name__)

DEFAULT_MAILBOX_NAME = "default"
IMAP_SCHEMES = {"imap": "plain", "imap+starttls": "starttls", "imaps": "tls"}
#: Mailboxes that providers post mail to (services/http_ingress.py): `http-ingress://`,
#: `http-ingress://?provider=mailgun` or `?provider=ses`; never polled.
HTTP_INGRESS_SCHEME = "http-ingress"
HTTP_PROVIDERS = ("generic", "mailgun", "ses")
MAX_BACKOFF = timedelta(minutes=30)


class MailSourceError(ValueError):
    """A MAIL_SOURCE value that cannot be used; the message says what is wrong."""


def parse_source_url(url: str) -> SourceSettings:
    """Read `imap://user:pass@host:port/FOLDER`, `imap+starttls://…`, `imaps://…`, `maildir:PATH`."""
    if url.startswith("maildir:"):
        path = url[len("maildir:") :]
        if not path:
            raise MailSourceError("maildir: needs a path, e.g. maildir:/var/mail/sellerdesk")
        return SourceSettings(kind="maildir", path=os.path.expanduser(path))
    if url.startswith(f"{HTTP_INGRESS_SCHEME}:"):
        return _http_ingress_settings(url)
    parts = urlsplit(url)
    security = IMAP_SCHEMES.get(parts.scheme)
    if security is None:
        raise MailSourceError(
            f"unsupported mail source scheme {parts.scheme!r}: use imap://, imap+starttls://, "
            "imaps://, maildir:PATH or http-ingress://"
        )
    if not parts.hostname or not parts.username:
        raise MailSourceError("an IMAP mail source needs a user and a host: imap://user:pass@host/")
    try:
        port = parts.port or (993 if security == "tls" else 143)
    except ValueError:
        raise MailSourceError(f"bad port in mail source {parts.netloc!r}") from None
    query = parse_qs(parts.query)
    try:
        ca_file, verify = tls_options(parts.query)
    except TlsOptionError as exc:
        raise MailSourceError(str(exc)) from None
    if (ca_file or not verify) and security == "plain":
        raise MailSourceError("ca= and verify= need TLS: use imaps:// or imap+starttls://")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return SourceSettings(
        kind="imap",
        host=parts.hostname,
        port=port,
        security=security,
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
        folder=folder,
        processed_folder=(query.get("processed") or [None])[0],
        ca_file=ca_file,
        verify=verify,
    )


def _http_ingress_settings(url: str) -> SourceSettings:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    provider = (query.get("provider") or ["generic"])[0].strip().lower()
    if parts.netloc or parts.path.strip("/") or set(query) - {"provider"}:
        raise MailSourceError(
            "an HTTP ingress mailbox is http-ingress:// with at most ?provider=generic, "
            "?provider=mailgun or ?provider=ses"
        )
    if provider not in HTTP_PROVIDERS:
        raise MailSourceError(
            f"unknown HTTP ingress provider {provider!r}: use {', '.join(HTTP_PROVIDERS)}"
        )
    return SourceSettings(kind="http", provider=provider)


def is_http_ingress(source_url: str) -> bool:
    """True for a mailbox that providers post mail to (never polled)."""
    return source_url.startswith(f"{HTTP_INGRESS_SCHEME}:")


def polled():
    """A WHERE clause for the mailboxes the worker polls: an HTTP mailbox has no polls, so
    its never-set last_success_at says nothing about ingestion being stalled."""
    return Mailbox.source_url.not_like(f"{HTTP_INGRESS_SCHEME}:%")


def source_url_without_password(settings: SourceSettings) -> str:
    if settings.kind == "maildir":
        return f"maildir:{settings.path}"
    if settings.kind == "http":
        return f"{HTTP_INGRESS_SCHEME}://?provider={settings.provider}"
    scheme = {v: k for k, v in IMAP_SCHEMES.items()}[settings.security]
    query = tls_query(settings.ca_file, settings.verify)
    return (
        f"{scheme}://{quote(settings.username, safe='')}@{settings.host}:{settings.port}/"
        f"{quote(settings.folder, safe='')}"
    ) + (f"?{query}" if query else "")


def sync_configured_mailbox(url: str) -> Mailbox:
    """Make the MAIL_SOURCE mailbox exist (row "default") and match the setting."""
    settings = parse_source_url(url)
    mailbox = db.session.scalar(select(Mailbox).where(Mailbox.name == DEFAULT_MAILBOX_NAME))
    public_url = source_url_without_password(settings)
    if mailbox is None:
        mailbox = Mailbox(name=DEFAULT_MAILBOX_NAME, source_url=public_url)
        db.session.add(mailbox)
        log.info("Added the configured mailbox %s", public_url)
    elif mailbox.source_url.partition("?")[0] != public_url.partition("?")[0]:
        # Another server or folder: its UIDs mean nothing here, start its checkpoint over.
        log.warning("Mail source changed from %s to %s", mailbox.source_url, public_url)
        mailbox.source_url = public_url
        mailbox.uidvalidity = None
        mailbox.last_uid = 0
    elif mailbox.source_url != public_url:
        # Only the TLS options changed: same server and folder, the checkpoint holds.
        log.info("Mail source options changed from %s to %s", mailbox.source_url, public_url)
        mailbox.source_url = public_url
    mailbox.processed_folder = settings.processed_folder
    if settings.password and (
        mailbox.password_encrypted is None
        or decrypt_secret(mailbox.password_encrypted) != settings.password
    ):
        mailbox.password_encrypted = encrypt_secret(settings.password)
    db.session.flush()
    return mailbox


def source_settings(mailbox: Mailbox) -> SourceSettings:
    """Connection settings for `mailbox`, with its password decrypted."""
    settings = parse_source_url(mailbox.source_url)
    password = decrypt_secret(mailbox.password_encrypted) if mailbox.password_encrypted else ""
    return SourceSettings(
        **{**settings.__dict__, "password": password, "processed_folder": mailbox.processed_folder}
    )


def is_connected(mailbox: Mailbox) -> bool:
    """Connected with OAuth ("Connect Microsoft 365" / "Connect Google"): logs in with XOAUTH2."""
    return bool(mailbox.oauth_provider and mailbox.oauth_refresh_token_encrypted)


def is_due(mailbox: Mailbox, now: datetime) -> bool:
    """False while the mailbox is backing off after failures."""
    return mailbox.next_attempt_at is None or mailbox.next_attempt_at <= now


def record_poll_failure(
    mailbox: Mailbox, error: str, *, poll_seconds: int, fetched: int = 0
) -> None:
    """Note a failed poll and schedule the next try with exponential backoff."""
    now = utcnow()
    mailbox.last_fetched = fetched
    # Whatever the server still holds is unknown after a failure; don't show a stale figure.
    mailbox.backlog = None
    mailbox.consecutive_failures += 1
    delay = timedelta(seconds=poll_seconds) * (2 ** min(mailbox.consecutive_failures - 1, 10))
    mailbox.next_attempt_at = now + min(delay, MAX_BACKOFF)
    mailbox.last_error = error
    mailbox.last_error_at = now
    mailbox.last_poll_finished_at = now
    count_poll(mailbox, failed=True, now=now)


def record_poll_success(mailbox: Mailbox, summary_line: str, *, fetched: int = 0) -> None:
    """Note a completed poll; `poll_mailbox` has already set the backlog it saw."""
    now = utcnow()
    mailbox.last_fetched = fetched
    mailbox.consecutive_failures = 0
    mailbox.next_attempt_at = None
    mailbox.last_success_at = now
    mailbox.last_poll_finished_at = now
    mailbox.last_poll_summary = summary_line
    count_poll(mailbox, failed=False, now=now)


def mail_waiting() -> int:
    """The mail the enabled mailboxes' last polls saw still waiting at their end (mail
    that arrived meanwhile, or the rest of a poll cut short), in all."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(Mailbox.backlog), 0)).where(Mailbox.is_enabled)
    )
    return int(total or 0)


#: How long the hourly poll counts are kept: the admin dashboard shows 7 days.
POLL_HOURS_KEPT = timedelta(days=8)


def count_poll(mailbox: Mailbox, *, failed: bool, now: datetime) -> None:
    """Add one poll (failed or not) to the mailbox's row for this UTC hour, and drop its
    rows older than POLL_HOURS_KEPT. One statement decides between insert and update,
    so an IDLE fetch and a pass finishing in the same hour cannot both insert."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    table = MailboxPollHour.__table__
    insert = upsert_insert(db.session.get_bind().dialect.name, table).values(
        mailbox_id=mailbox.id, hour=hour, polls=1, failures=int(failed)
    )
    db.session.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.mailbox_id, table.c.hour],
            set_={
                "polls": table.c.polls + 1,
                "failures": table.c.failures + int(failed),
            },
        )
    )
    db.session.execute(
        delete(MailboxPollHour).where(
            MailboxPollHour.mailbox_id == mailbox.id,
            MailboxPollHour.hour < hour - POLL_HOURS_KEPT,
        )
    )
