"""OAuth2 for mailboxes (XOAUTH2 at Microsoft 365 and Google): the authorisation URL with
PKCE, the code exchange and the refresh, with typed refusals.

No database and no Flask: the caller hands in the provider's settings
(`provider_settings(config, name)`) and gets tokens back. Tokens are never logged or put
into an exception's text; an OAuthError carries a sentence for an admin and whether the
provider refused the grant for good (`refused`: consent revoked, token expired, wrong
client secret) or only failed to answer (try again later).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from urllib.request import Request

from portal.amazon_api import opener_without_redirects

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Provider:
    key: str  # "microsoft" | "google"
    label: str  # "Microsoft 365"
    #: IMAP and SMTP access, and a refresh token (FACTS: the providers' scopes).
    scopes: tuple[str, ...]
    #: Extra authorisation parameters that make the provider hand out a refresh token.
    extra: tuple[tuple[str, str], ...] = ()


PROVIDERS: dict[str, Provider] = {
    "microsoft": Provider(
        "microsoft",
        "Microsoft 365",
        (
            "https://outlook.office.com/IMAP.AccessAsUser.All",
            "https://outlook.office.com/SMTP.Send",
            "offline_access",
        ),
    ),
    "google": Provider(
        "google",
        "Google",
        ("https://mail.google.com/",),
        # Google gives a refresh token only with access_type=offline, and again on a
        # repeated consent only when asked for the consent screen.
        (("access_type", "offline"), ("prompt", "consent")),
    ),
}


@dataclass(frozen=True)
class ProviderSettings:
    provider: Provider
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    timeout: float


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    #: None when the provider kept the old one (it did not rotate).
    refresh_token: str | None

    def __repr__(self) -> str:  # never the tokens themselves
        return f"Tokens(expires_in={self.expires_in}, rotated={self.refresh_token is not None})"


class OAuthError(Exception):
    """The provider refused or did not answer; str() is a sentence for an admin."""

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        #: True: the grant is gone (reconnect needed); False: try again later.
        self.refused = refused


def provider_settings(config: Mapping[str, Any], key: str) -> ProviderSettings | None:
    """The provider's settings, or None when it is unknown or has no client ID."""
    provider = PROVIDERS.get(key)
    if provider is None:
        return None
    prefix = f"OAUTH_{key.upper()}_"
    client_id = config.get(prefix + "CLIENT_ID") or ""
    if not client_id:
        return None
    return ProviderSettings(
        provider=provider,
        client_id=client_id,
        client_secret=config.get(prefix + "CLIENT_SECRET") or "",
        authorize_url=config[prefix + "AUTHORIZE_URL"],
        token_url=config[prefix + "TOKEN_URL"],
        timeout=float(config.get("OAUTH_TIMEOUT") or 10),
    )


def code_challenge(verifier: str) -> str:
    """PKCE S256 (RFC 7636): base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(
    settings: ProviderSettings, *, state: str, verifier: str, redirect_uri: str, login_hint: str
) -> str:
    """The provider's consent page for IMAP, SMTP and offline access, with PKCE."""
    parts = urlsplit(settings.authorize_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [
        ("response_type", "code"),
        ("client_id", settings.client_id),
        ("redirect_uri", redirect_uri),
        ("scope", " ".join(settings.provider.scopes)),
        ("state", state),
        ("code_challenge", code_challenge(verifier)),
        ("code_challenge_method", "S256"),
        *settings.provider.extra,
    ]
    if login_hint:
        query.append(("login_hint", login_hint))
    return urlunsplit(parts._replace(query=urlencode(query)))


def exchange_code(
    settings: ProviderSettings, *, code: str, verifier: str, redirect_uri: str
) -> Tokens:
    """The tokens for an authorisation code (with its PKCE verifier), or OAuthError."""
    tokens = _token_call(
        settings,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        what="the authorisation",
    )
    if tokens.refresh_token is None:
        raise OAuthError(
            f"{settings.provider.label} connected but gave no refresh token, so Sellerdesk "
            "could not keep reading the mailbox. Connect again and allow offline access.",
            refused=True,
        )
    return tokens


def refresh(settings: ProviderSettings, *, refresh_token: str) -> Tokens:
    """A new access token (and, where the provider rotates it, a new refresh token)."""
    return _token_call(
        settings,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        what="the stored authorisation",
    )


def _token_call(settings: ProviderSettings, fields: dict[str, str], *, what: str) -> Tokens:
    label = settings.provider.label
    body = urlencode(
        {**fields, "client_id": settings.client_id, "client_secret": settings.client_secret}
    ).encode()
    request = Request(  # noqa: S310 (the configured http(s) token URL)
        settings.token_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    try:
        with opener_without_redirects().open(request, timeout=settings.timeout) as response:
            status, raw = response.status, response.read(MAX_RESPONSE_BYTES)
    except HTTPError as exc:
        with exc:
            status, raw = exc.code, exc.read(MAX_RESPONSE_BYTES)
    except (URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        timed_out = isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)
        log.warning("%s token endpoint unreachable: %s", label, reason)
        raise OAuthError(
            f"{label}'s sign-in service did not answer ({'no answer in time' if timed_out else 'could not reach it'}); "
            "Sellerdesk tries again with a growing pause.",
            refused=False,
        ) from None
    try:
        answer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    if status == 200:
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise OAuthError(
                f"{label} answered without an access token; Sellerdesk tries again later.",
                refused=False,
            )
        refresh_token = answer.get("refresh_token")
        try:
            expires_in = int(answer.get("expires_in") or 3600)
        except (TypeError, ValueError):
            expires_in = 3600
        return Tokens(
            access,
            expires_in,
            refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        )
    error = str(answer.get("error") or "")[:64]
    description = str(answer.get("error_description") or "")[:300]
    log.warning("%s token endpoint refused: HTTP %s %s", label, status, error)
    said = f" ({label} said: {description})" if description else ""
    if error == "invalid_grant":
        raise OAuthError(
            f"{label} refused {what}: the consent was revoked or the token expired{said}. "
            f'An admin must click "Connect {label}" on the mailbox again.',
            refused=True,
        )
    if error in ("invalid_client", "unauthorized_client"):
        raise OAuthError(
            f"{label} refused Sellerdesk's client ID or secret{said}. Check "
            f"OAUTH_{settings.provider.key.upper()}_CLIENT_ID and _CLIENT_SECRET.",
            refused=True,
        )
    if status >= 500 or not error:
        raise OAuthError(
            f"{label}'s sign-in service failed (HTTP {status}); Sellerdesk tries again "
            "with a growing pause.",
            refused=False,
        )
    raise OAuthError(f"{label} refused {what} ({error}){said}.", refused=True)
