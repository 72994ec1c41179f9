"""Access tokens of OAuth mailboxes, refreshed shortly before they expire. This module COMMITS.

Why it commits: Microsoft rotates refresh tokens, and the old one stops working once the
new one is issued. The new refresh token is therefore stored, with the access token it
came with, in the transaction that made the refresh, committed at once, before anything
uses the access token (osTicket lost mail for days by keeping the old one). One refresh
runs at a time per mailbox: a lock in the process (an IDLE watch and a poll), the row lock
across processes on PostgreSQL. On SQLite, without row locks, a refresh refused because
another process had just rotated the token waits briefly for that commit and tries again
with the new one, rather than calling a working mailbox revoked.

The honest window: a crash after the provider answered and before the commit loses the
rotated token; the next refresh then fails (invalid_grant), and the mailbox turns red and
asks for "Connect" again, loudly, as any refused refresh does.

A refused refresh (consent revoked, token expired, client secret wrong) is recorded
(`oauth_refused_at`), audited and mailed to the admins once, committed, then raised as
MailboxAuthError for the poll to record as its failure, which retries with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from imapclient.exceptions import LoginError
from sqlalchemy import select

from ingest.mail.source import SourceSettings
from portal import oauth_client
from portal.crypto import SecretUnreadable, decrypt_secret, encrypt_secret
from portal.extensions import db
from portal.models import Mailbox
from portal.services import alerts
from portal.services.audit import record_event
from portal.services.mailboxes import is_connected, source_settings

log = logging.getLogger(__name__)

#: An access token is renewed this long before the provider says it expires.
TOKEN_MARGIN = timedelta(minutes=5)
#: On SQLite: how long a refused refresh waits for another process's rotated token.
ROTATION_GRACE = 2.0
#: Refreshes tried when each finds the token rotated by someone else meanwhile.
ROTATION_TRIES = 3


class MailboxAuthError(Exception):
    """No access token could be had; str() is a sentence for the health page."""


def connection_settings(
    mailbox: Mailbox, config: Mapping[str, Any], *, now: datetime
) -> SourceSettings:
    """What a poll, an IDLE watch or a connection test logs in with: the password, or
    for a connected mailbox a fresh access token (XOAUTH2). May refresh, and commit."""
    settings = source_settings(mailbox)
    if settings.kind != "imap":
        return settings
    if not is_connected(mailbox):
        if not settings.password:
            raise MailboxAuthError(
                "No password and not connected: use “Connect Microsoft 365” or “Connect "
                "Google” beside the mailbox, or enter its password."
            )
        return settings
    return replace(settings, oauth_token=access_token(mailbox, config, now=now))


def access_token(mailbox: Mailbox, config: Mapping[str, Any], *, now: datetime) -> str:
    """A valid access token for the connected `mailbox`, refreshed (and committed) when it
    would expire within TOKEN_MARGIN; MailboxAuthError when none can be had."""
    token = _cached(mailbox, now)
    if token is not None:
        return token
    # One refresh at a time per mailbox in this process (an IDLE watch and a poll may ask
    # together); the row lock does the same across processes on PostgreSQL.
    with _lock_for(mailbox.id):
        return _refreshed(mailbox, config, now=now, tries=ROTATION_TRIES)


def _refreshed(mailbox: Mailbox, config: Mapping[str, Any], *, now: datetime, tries: int) -> str:
    # Lock and re-read: another process may have refreshed (and rotated) meanwhile.
    db.session.commit()
    locked = db.session.scalar(
        select(Mailbox)
        .where(Mailbox.id == mailbox.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None:
        raise MailboxAuthError("The mailbox was removed.")
    token = _cached(locked, now)
    if token is not None:
        db.session.commit()
        return token
    settings = oauth_client.provider_settings(config, locked.oauth_provider or "")
    if settings is None:
        db.session.rollback()
        raise MailboxAuthError(
            f"The mailbox is connected with {locked.oauth_provider}, but "
            f"OAUTH_{(locked.oauth_provider or '').upper()}_CLIENT_ID is not set."
        )
    try:
        refresh_token = decrypt_secret(locked.oauth_refresh_token_encrypted or b"")
    except SecretUnreadable as exc:
        db.session.rollback()
        raise MailboxAuthError(str(exc)) from None
    try:
        tokens = oauth_client.refresh(settings, refresh_token=refresh_token)
    except oauth_client.OAuthError as exc:
        db.session.rollback()
        if exc.refused and tries > 1 and _rotated_elsewhere(mailbox, refresh_token):
            # Another process (SQLite has no row locks) rotated it meanwhile: the token
            # we sent was the old one. Try once more with the one now stored.
            return _refreshed(mailbox, config, now=now, tries=tries - 1)
        if exc.refused:
            _record_refusal(mailbox, str(exc), now=now)
        raise MailboxAuthError(str(exc)) from None
    locked.oauth_access_token_encrypted = encrypt_secret(tokens.access_token)
    locked.oauth_access_expires_at = now + timedelta(seconds=tokens.expires_in)
    if tokens.refresh_token is not None and tokens.refresh_token != refresh_token:
        locked.oauth_refresh_token_encrypted = encrypt_secret(tokens.refresh_token)
        log.info("Mailbox %s: stored the provider's rotated refresh token", locked.name)
    if locked.oauth_refused_at is not None:
        locked.oauth_refused_at = None
        record_event(
            "mailbox.oauth_restored",
            actor=None,
            target=locked,
            details={"name": locked.name, "provider": settings.provider.key},
        )
    db.session.commit()
    return tokens.access_token


_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(mailbox_id: int) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(mailbox_id, threading.Lock())


def _rotated_elsewhere(mailbox: Mailbox, sent: str) -> bool:
    """Whether the stored refresh token is no longer the one `sent`. On SQLite, which has no
    row locks, another process may have refreshed with it just before us and not yet
    committed the rotated one: give that commit ROTATION_GRACE to land."""
    deadline = time.monotonic() + (ROTATION_GRACE if db.engine.dialect.name == "sqlite" else 0)
    while True:
        stored = _stored_refresh_token(mailbox)
        db.session.rollback()
        if stored not in (None, sent):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _stored_refresh_token(mailbox: Mailbox) -> str | None:
    fresh = db.session.scalar(
        select(Mailbox).where(Mailbox.id == mailbox.id).execution_options(populate_existing=True)
    )
    if fresh is None or fresh.oauth_refresh_token_encrypted is None:
        return None
    try:
        return decrypt_secret(fresh.oauth_refresh_token_encrypted)
    except SecretUnreadable:
        return None


def explain_login_refused(
    mailbox: Mailbox, exc: BaseException, config: Mapping[str, Any], *, now: datetime
) -> str | None:
    """The server refused a connected mailbox's access token before it expired (consent
    withdrawn at the provider, say): forget the token and refresh at once, so that this
    very poll says why. The provider's refusal as a sentence, or None (the refresh worked,
    or the mailbox does not use OAuth). May commit."""
    if not isinstance(exc, LoginError) or not is_connected(mailbox):
        return None
    mailbox.oauth_access_token_encrypted = None
    mailbox.oauth_access_expires_at = None
    try:
        access_token(mailbox, config, now=now)
    except MailboxAuthError as refused:
        return str(refused)
    return None


def _cached(mailbox: Mailbox, now: datetime) -> str | None:
    if (
        mailbox.oauth_access_token_encrypted is None
        or mailbox.oauth_access_expires_at is None
        or mailbox.oauth_access_expires_at - TOKEN_MARGIN <= now
    ):
        return None
    try:
        return decrypt_secret(mailbox.oauth_access_token_encrypted)
    except SecretUnreadable:
        return None  # refreshed instead


def _record_refusal(mailbox: Mailbox, error: str, *, now: datetime) -> None:
    """Audit and alert the first refusal of a run of them (committed)."""
    mailbox.oauth_access_token_encrypted = None
    mailbox.oauth_access_expires_at = None
    if mailbox.oauth_refused_at is None:
        mailbox.oauth_refused_at = now
        record_event(
            "mailbox.oauth_refused",
            actor=None,
            target=mailbox,
            details={"name": mailbox.name, "provider": mailbox.oauth_provider, "error": error},
        )
    alerts.mailbox_authorisation_refused(mailbox, error=error, now=now)
    db.session.commit()
    log.warning("Mailbox %s: the provider refused its authorisation: %s", mailbox.name, error)
