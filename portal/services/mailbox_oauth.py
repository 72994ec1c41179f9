"""OAuth2 mailboxes: "Connect Microsoft 365" / "Connect Google" (authorisation code + PKCE).

The flow:

1. An admin clicks "Connect …" on an IMAP mailbox (a CSRF-checked POST). We issue a
   random, single-use `state` bound to the admin's sign-in (a MailboxOAuthState row, only
   its hash kept, at most STATE_TTL) and redirect to the provider's consent page with the
   PKCE challenge of a verifier derived from the state and SECRET_KEY (so the verifier is
   stored nowhere and never leaves the server).
2. The provider sends the browser back to our callback with `code` and `state` (or
   `error`). We redeem the state (deleting its row: it works once, in that sign-in only),
   exchange the code with the verifier, and store the refresh token and the first access
   token encrypted with TOKEN_KEY.

Keeping the access token fresh, which commits, is in mailbox_tokens.py. Nothing here
commits; tokens are never logged, audited or shown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from portal import oauth_client
from portal.crypto import encrypt_secret
from portal.extensions import db
from portal.models import Mailbox, MailboxOAuthState, User, UserSession
from portal.services.audit import record_event
from portal.services.mailbox_config import is_from_environment, public_settings
from portal.services.mailboxes import MailSourceError
from portal.services.sessions import token_digest
from portal.sqltypes import parse_id

log = logging.getLogger(__name__)

STATE_TTL = timedelta(minutes=10)
MAX_PENDING_STATES = 5


class MailboxOAuthError(Exception):
    """The connection could not be made; str() is a sentence for the admin."""


def can_connect(mailbox: Mailbox) -> bool:
    """Only an IMAP mailbox made in the portal can be connected with OAuth."""
    if is_from_environment(mailbox):
        return False
    try:
        return public_settings(mailbox).kind == "imap"
    except MailSourceError:
        return False


def pkce_verifier(state: str, *, secret_key: str) -> str:
    """The PKCE code verifier of `state`: 43 base64url characters, derivable only here."""
    digest = hmac.new(
        secret_key.encode(), b"mailbox-oauth-pkce:" + state.encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue_state(sign_in: UserSession, *, mailbox: Mailbox, provider: str, now: datetime) -> str:
    """A fresh state for connecting `mailbox` with `provider`, pending in `sign_in`."""
    _drop_expired(sign_in, now)
    older = db.session.scalars(
        select(MailboxOAuthState.id)
        .where(MailboxOAuthState.user_session_id == sign_in.id)
        .order_by(MailboxOAuthState.issued_at.desc(), MailboxOAuthState.id.desc())
        .offset(MAX_PENDING_STATES - 1)
    ).all()
    if older:
        db.session.execute(delete(MailboxOAuthState).where(MailboxOAuthState.id.in_(older)))
    # The mailbox id up front is not secret; it lets a refused callback still point at the
    # right row. The random part is what makes it unguessable.
    state = f"{mailbox.id}.{secrets.token_urlsafe(32)}"
    db.session.add(
        MailboxOAuthState(
            user_session_id=sign_in.id,
            mailbox_id=mailbox.id,
            provider=provider,
            state_hash=token_digest(state),
            issued_at=now,
        )
    )
    db.session.flush()
    return state


def mailbox_id_of_state(state: str | None) -> int | None:
    """The mailbox id a state names (unverified: only to pick where to show a message)."""
    return parse_id((state or "").partition(".")[0])


def redeem_state(sign_in: UserSession, state: str | None, *, now: datetime) -> tuple[int, str]:
    """Consume `state`, pending in `sign_in`: (mailbox id, provider), or MailboxOAuthError.

    The state is deleted whatever the outcome, so it never works twice: the caller commits
    before it exchanges the code.
    """
    record = (
        db.session.scalar(
            select(MailboxOAuthState).where(MailboxOAuthState.state_hash == token_digest(state))
        )
        if state and len(state) <= 200
        else None
    )
    if record is not None and record.user_session_id != sign_in.id:
        record = None  # another sign-in's: as if it were not there
    claimed = False
    if record is not None:
        mailbox_id, provider, issued_at = record.mailbox_id, record.provider, record.issued_at
        # Deleting it is the claim: of two requests with one state, only one deletes it.
        deleted = db.session.execute(
            delete(MailboxOAuthState).where(MailboxOAuthState.id == record.id)
        )
        claimed = deleted.rowcount == 1
    _drop_expired(sign_in, now)
    if not claimed:
        raise MailboxOAuthError(
            "This answer from the provider does not match a connection you started here: it "
            "was already used, it was started in another browser, or the link was altered. "
            'Nothing was stored; click "Connect" on the mailbox to start again.'
        )
    if now - issued_at > STATE_TTL:
        minutes = int(STATE_TTL.total_seconds() // 60)
        raise MailboxOAuthError(
            f"The connection took longer than {minutes} minutes and has expired. Nothing was "
            'stored; click "Connect" on the mailbox to start again.'
        )
    return mailbox_id, provider


def _drop_expired(sign_in: UserSession, now: datetime) -> None:
    db.session.execute(
        delete(MailboxOAuthState).where(
            MailboxOAuthState.user_session_id == sign_in.id,
            MailboxOAuthState.issued_at < now - STATE_TTL,
        )
    )


def authorize_url(
    settings: oauth_client.ProviderSettings,
    mailbox: Mailbox,
    *,
    state: str,
    redirect_uri: str,
    secret_key: str,
) -> str:
    """The provider's consent page for `mailbox`, its user name as the login hint."""
    return oauth_client.authorize_url(
        settings,
        state=state,
        verifier=pkce_verifier(state, secret_key=secret_key),
        redirect_uri=redirect_uri,
        login_hint=public_settings(mailbox).username,
    )


def complete_connection(
    mailbox: Mailbox,
    *,
    settings: oauth_client.ProviderSettings,
    code: str | None,
    state: str,
    redirect_uri: str,
    secret_key: str,
    actor: User | None,
    now: datetime,
) -> Mailbox:
    """Exchange `code` and store the tokens encrypted (no commit); MailboxOAuthError on refusal."""
    if not code or len(code) > 4096:
        raise MailboxOAuthError(
            f"{settings.provider.label} sent no authorisation code back. Nothing was stored; "
            f'click "Connect {settings.provider.label}" to start again.'
        )
    try:
        tokens = oauth_client.exchange_code(
            settings,
            code=code,
            verifier=pkce_verifier(state, secret_key=secret_key),
            redirect_uri=redirect_uri,
        )
    except oauth_client.OAuthError as exc:
        raise MailboxOAuthError(f"{exc} Nothing was stored.") from None
    assert tokens.refresh_token is not None  # noqa: S101 (exchange_code refuses an answer without one)
    mailbox.oauth_provider = settings.provider.key
    mailbox.oauth_refresh_token_encrypted = encrypt_secret(tokens.refresh_token)
    mailbox.oauth_access_token_encrypted = encrypt_secret(tokens.access_token)
    mailbox.oauth_access_expires_at = now + timedelta(seconds=tokens.expires_in)
    mailbox.oauth_refused_at = None
    # Polled at the next pass, not after the backoff of the failures before.
    mailbox.next_attempt_at = None
    db.session.flush()
    record_event(
        "mailbox.oauth_connected",
        actor=actor,
        target=mailbox,
        details={"name": mailbox.name, "provider": settings.provider.key},
    )
    log.info("Mailbox %s connected with %s", mailbox.name, settings.provider.label)
    return mailbox


def provider_label(mailbox: Mailbox) -> str | None:
    provider = oauth_client.PROVIDERS.get(mailbox.oauth_provider or "")
    return provider.label if provider else None
