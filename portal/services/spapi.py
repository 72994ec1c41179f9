"""SP-API website authorisation: "Authorise with Amazon", the successor of the MWS token.

The flow (Amazon's "website authorization workflow"):

1. The seller clicks "Authorise with Amazon" on a channel page. We issue a random,
   single-use `state` bound to the sign-in (so to the user and the browser) and the
   channel, kept on the server (a SpapiState row, only its hash) for at most STATE_TTL,
   and redirect to the Seller Central consent page of the
   channel's region with our application ID and that state.
2. After consenting, Amazon redirects the browser back to our callback with `state`,
   `selling_partner_id` and `spapi_oauth_code` (valid five minutes, usable once).
3. We redeem the state (deleting its row: a replayed session cookie brings nothing
   back), exchange the code at the Login-with-Amazon token endpoint
   for a refresh token, and store it encrypted on every channel of the organisation
   in that region (one authorisation covers a whole region); each channel then
   awaits an admin's verification, exactly like a submitted MWS token.

The refresh token lives in memory only between the exchange and encryption: it is
never logged, audited, shown or exported (the audit and the pages carry a masked
hint such as "Atzr|…abcd"). The access token Amazon returns beside it is discarded.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from urllib.request import Request

from sqlalchemy import delete, select

from portal.amazon_api import lwa_token_request, opener_without_redirects
from portal.crypto import encrypt_secret, mask_secret
from portal.extensions import db
from portal.models import (
    Channel,
    ChannelStatus,
    Credential,
    CredentialKind,
    SpapiState,
    User,
    UserSession,
)
from portal.services.audit import record_event
from portal.services.channels import set_channel_status
from portal.services.credentials import CredentialError, clean_seller_id
from portal.services.sessions import token_digest
from portal.sqltypes import parse_id

log = logging.getLogger(__name__)

#: How long a started authorisation may take before its state is refused.
STATE_TTL = timedelta(minutes=10)
#: Started authorisations kept per sign-in (several tabs); the oldest is dropped.
MAX_PENDING_STATES = 5
REFRESH_TOKEN_PREFIX = "Atzr|"  # noqa: S105 (Amazon's refresh-token prefix, not a secret)
#: Upper bound of what we read from the token endpoint.
MAX_RESPONSE_BYTES = 64 * 1024
REGION_NAMES = {"NA": "North America", "EU": "Europe", "FE": "Far East"}


class SpapiError(ValueError):
    """The authorisation failed; the message tells the seller what happened and what to do."""


@dataclass(frozen=True)
class SpapiSettings:
    application_id: str
    client_id: str
    client_secret: str = field(repr=False)
    #: Region (NA, EU, FE) -> Seller Central consent URL.
    consent_urls: Mapping[str, str]
    token_url: str
    #: Fixed redirect URI (as registered with Amazon), or "" for the portal's own URL.
    redirect_uri: str
    timeout: float

    def is_available_for(self, region: str) -> bool:
        return bool(self.consent_urls.get(region))


def spapi_settings(config: Mapping[str, Any]) -> SpapiSettings | None:
    """The SP-API settings, or None when the application ID or LWA client is missing."""
    application_id = (config.get("SPAPI_APPLICATION_ID") or "").strip()
    client_id = (config.get("LWA_CLIENT_ID") or "").strip()
    client_secret = (config.get("LWA_CLIENT_SECRET") or "").strip()
    token_url = (config.get("LWA_TOKEN_URL") or "").strip()
    if not (application_id and client_id and client_secret and token_url):
        return None
    return SpapiSettings(
        application_id=application_id,
        client_id=client_id,
        client_secret=client_secret,
        consent_urls={
            region: (config.get(f"SPAPI_CONSENT_URL_{region}") or "").strip()
            for region in REGION_NAMES
        },
        token_url=token_url,
        redirect_uri=(config.get("SPAPI_REDIRECT_URI") or "").strip(),
        timeout=float(config.get("LWA_TIMEOUT") or 10),
    )


def settings_for_channel(config: Mapping[str, Any], channel: Channel) -> SpapiSettings | None:
    """The settings when "Authorise with Amazon" is offered for `channel`'s region, else None."""
    settings = spapi_settings(config)
    if settings is None or not settings.is_available_for(channel.marketplace_info.region):
        return None
    return settings


def region_channels(channel: Channel) -> list[Channel]:
    """The organisation's channels in `channel`'s region: what one authorisation covers."""
    region = channel.marketplace_info.region
    return sorted(
        (c for c in channel.organisation.channels if c.marketplace_info.region == region),
        key=lambda c: c.marketplace,
    )


def is_spapi_credential(credential: Credential | None) -> bool:
    return credential is not None and credential.kind == CredentialKind.SPAPI_REFRESH_TOKEN


def mask_refresh_token(token: str) -> str:
    """Enough of a refresh token to recognise it, e.g. "Atzr|…abcd"."""
    if token.startswith(REFRESH_TOKEN_PREFIX):
        return f"{REFRESH_TOKEN_PREFIX}…{token[-4:]}"
    return mask_secret(token)


# --- state: single-use, bound to user and channel, short-lived -------------------------


def issue_state(sign_in: UserSession, *, channel: Channel, now: datetime) -> str:
    """A fresh state for `channel`, pending in the sign-in `sign_in` (only its hash kept)."""
    _drop_expired(sign_in, now)
    pending = db.session.scalars(
        select(SpapiState.id)
        .where(SpapiState.user_session_id == sign_in.id)
        .order_by(SpapiState.issued_at.desc(), SpapiState.id.desc())
        .offset(MAX_PENDING_STATES - 1)
    ).all()
    if pending:
        db.session.execute(delete(SpapiState).where(SpapiState.id.in_(pending)))
    # The channel id up front is not secret; it lets a refused callback still show its
    # message on the right channel page. The random part is what makes it unguessable.
    state = f"{channel.id}.{secrets.token_urlsafe(32)}"
    db.session.add(
        SpapiState(
            user_session_id=sign_in.id,
            channel_id=channel.id,
            state_hash=token_digest(state),
            issued_at=now,
        )
    )
    db.session.flush()
    return state


def channel_id_of_state(state: str | None) -> int | None:
    """The channel id a state names (unverified: only to pick the page for a message)."""
    return parse_id((state or "").partition(".")[0])


def redeem_state(sign_in: UserSession, state: str | None, *, now: datetime) -> int:
    """Consume `state`, pending in `sign_in`; the channel id it was issued for, or SpapiError.

    The state is deleted whatever the outcome (a refused late one too), so it can never
    be used twice: the caller commits before it goes on to exchange the code.
    """
    record = (
        db.session.scalar(select(SpapiState).where(SpapiState.state_hash == token_digest(state)))
        if state and len(state) <= 200
        else None
    )
    if record is not None and record.user_session_id != sign_in.id:
        if record.user_session.user_id != sign_in.user_id:
            raise SpapiError(
                "This authorisation was started by another user. Nothing was stored; "
                'click "Authorise with Amazon" to start again.'
            )
        record = None  # the same user's other browser: as if it were not there
    claimed = False
    if record is not None:
        channel_id, issued_at = record.channel_id, record.issued_at
        # Deleting it is the claim: of two requests with one state, only one deletes it.
        deleted = db.session.execute(delete(SpapiState).where(SpapiState.id == record.id))
        claimed = deleted.rowcount == 1
    _drop_expired(sign_in, now)
    if not claimed:
        raise SpapiError(
            "This answer from Amazon does not match an authorisation you started here: it was "
            "already used, it was started in another browser, or the link was altered. "
            'Nothing was stored. Click "Authorise with Amazon" to start again.'
        )
    if now - issued_at > STATE_TTL:
        minutes = int(STATE_TTL.total_seconds() // 60)
        raise SpapiError(
            f"The authorisation took longer than {minutes} minutes and has expired. "
            'Nothing was stored; click "Authorise with Amazon" to start again.'
        )
    return channel_id


def _drop_expired(sign_in: UserSession, now: datetime) -> None:
    db.session.execute(
        delete(SpapiState).where(
            SpapiState.user_session_id == sign_in.id, SpapiState.issued_at < now - STATE_TTL
        )
    )


def consent_url(settings: SpapiSettings, *, region: str, state: str, redirect_uri: str) -> str:
    """The Seller Central consent page of `region` for our application, with `state`.

    Query parameters already in the configured URL (e.g. `version=beta` for an app in
    draft state) are kept.
    """
    parts = urlsplit(settings.consent_urls[region])
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [
        ("application_id", settings.application_id),
        ("state", state),
        ("redirect_uri", redirect_uri),
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- the code exchange at Login with Amazon ---------------------------------------------


_UNAVAILABLE = (
    "Amazon's login service did not answer properly ({}). Nothing was stored; "
    'please click "Authorise with Amazon" again in a few minutes.'
)


def exchange_code(settings: SpapiSettings, *, code: str, redirect_uri: str) -> str:
    """Exchange an `spapi_oauth_code` for the seller's refresh token, or raise SpapiError."""
    request = _token_request(settings, code=code, redirect_uri=redirect_uri)
    status, answer = _post(request, timeout=settings.timeout)
    if status == 200:
        return _refresh_token_in(answer)
    raise _refusal(status, answer)


def _token_request(settings: SpapiSettings, *, code: str, redirect_uri: str) -> Request:
    if not settings.token_url.startswith(("https://", "http://")):
        raise SpapiError(_UNAVAILABLE.format("the token endpoint is misconfigured"))
    return lwa_token_request(
        settings.token_url,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
        },
    )


def _post(request: Request, *, timeout: float) -> tuple[int, dict[str, Any]]:
    """The endpoint's HTTP status and its JSON object ({} for anything else); SpapiError
    when it cannot be reached."""
    try:
        with opener_without_redirects().open(request, timeout=timeout) as response:
            status, raw = response.status, response.read(MAX_RESPONSE_BYTES)
    except HTTPError as exc:
        with exc:
            status, raw = exc.code, exc.read(MAX_RESPONSE_BYTES)
    except (URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        log.warning("LWA token endpoint unreachable: %s", reason)
        timed_out = isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)
        raise SpapiError(
            _UNAVAILABLE.format("no answer in time" if timed_out else "could not reach it")
        ) from None
    try:
        answer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        answer = None
    return status, answer if isinstance(answer, dict) else {}


def _refresh_token_in(answer: dict[str, Any]) -> str:
    token = answer.get("refresh_token")
    if isinstance(token, str) and token.strip() and len(token) <= 4096:
        return token.strip()
    log.error("LWA token endpoint answered 200 without a refresh token")
    raise SpapiError(_UNAVAILABLE.format("no refresh token in the answer"))


def _refusal(status: int, answer: dict[str, Any]) -> SpapiError:
    """What to tell the seller when the endpoint refused: whether to try again or call us."""
    error = str(answer.get("error") or "")[:64]
    description = str(answer.get("error_description") or "")[:200]
    log.warning("LWA token endpoint refused the code: HTTP %s %s %s", status, error, description)
    if error == "invalid_grant":
        return SpapiError(
            "Amazon did not accept the authorisation code: it expires five minutes after you "
            "confirm in Seller Central and works only once. Nothing was stored; please click "
            '"Authorise with Amazon" again.'
        )
    if error in ("invalid_client", "unauthorized_client"):
        return SpapiError(
            "Amazon refused Sellerdesk's application credentials, so the authorisation could not "
            "be completed. This needs fixing on our side: nothing was stored, please contact "
            "support."
        )
    if status >= 500 or not error:
        return SpapiError(_UNAVAILABLE.format(f"HTTP {status}"))
    return SpapiError(
        f"Amazon refused the authorisation ({error}). Nothing was stored; please click "
        '"Authorise with Amazon" again, or contact support if it keeps happening.'
    )


# --- storing and revoking ----------------------------------------------------------------


def complete_authorisation(
    channel: Channel,
    *,
    settings: SpapiSettings,
    code: str | None,
    selling_partner_id: str | None,
    redirect_uri: str,
    actor: User | None,
) -> list[Channel]:
    """Exchange Amazon's code and store the refresh token on the region's channels.

    Returns the channels now holding the token (pending verification). Raises
    SpapiError, with nothing stored, when Amazon's answer is incomplete or refused.
    """
    code = (code or "").strip()
    try:
        seller_id = clean_seller_id(selling_partner_id or "")
    except CredentialError:
        seller_id = ""
    if not code or not seller_id:
        raise SpapiError(
            "Amazon's answer was incomplete (no authorisation code or Seller ID). Nothing was "
            'stored; please click "Authorise with Amazon" again.'
        )
    refresh_token = exchange_code(settings, code=code, redirect_uri=redirect_uri)
    return store_refresh_token(
        channel, selling_partner_id=seller_id, refresh_token=refresh_token, actor=actor
    )


def store_refresh_token(
    channel: Channel, *, selling_partner_id: str, refresh_token: str, actor: User | None
) -> list[Channel]:
    """Store the (already exchanged) refresh token on every channel in `channel`'s region.

    Any credential on file there (an MWS token or an earlier authorisation) is replaced;
    each channel moves to pending verification, each audited.
    """
    hint = mask_refresh_token(refresh_token)
    channels = region_channels(channel)
    for target in channels:
        _replace_credential(
            target,
            selling_partner_id=selling_partner_id,
            refresh_token=refresh_token,
            hint=hint,
            authorised_from=channel.marketplace,
            actor=actor,
        )
    db.session.flush()
    log.info(
        "SP-API authorisation %s stored for organisation %s on channels %s",
        hint,
        channel.organisation_id,
        ",".join(c.marketplace for c in channels),
    )
    return channels


def _replace_credential(
    target: Channel,
    *,
    selling_partner_id: str,
    refresh_token: str,
    hint: str,
    authorised_from: str,
    actor: User | None,
) -> None:
    """Put the refresh token in place of `target`'s credential, audit it, and set the
    channel to await verification."""
    previous = target.credential
    if previous is not None:
        db.session.delete(previous)
        db.session.flush()
    db.session.add(
        Credential(
            channel=target,
            kind=CredentialKind.SPAPI_REFRESH_TOKEN,
            seller_id=selling_partner_id,
            # A ciphertext of its own per row (Fernet is randomised): rows share nothing.
            secret_encrypted=encrypt_secret(refresh_token),
            secret_hint=hint,
            submitted_by_id=actor.id if actor is not None else None,
        )
    )
    details: dict[str, Any] = {
        "kind": CredentialKind.SPAPI_REFRESH_TOKEN.value,
        "seller_id": selling_partner_id,
        "token": hint,
        "via": "amazon_authorisation",
        "authorised_from": authorised_from,
    }
    if previous is not None:
        details["replaced_kind"] = previous.kind.value
    record_event(
        "channel.token_replaced" if previous is not None else "channel.token_submitted",
        actor=actor,
        organisation_id=target.organisation_id,
        target=target,
        details=details,
    )
    set_channel_status(target, ChannelStatus.PENDING_VERIFICATION, reason="", actor=actor)
    # A new authorisation is what "Amazon authorisation needed" asked for.
    target.is_amazon_authorisation_needed = False


def channels_sharing_authorisation(channel: Channel) -> list[Channel]:
    """The region's channels holding the same seller's SP-API authorisation as `channel`."""
    credential = channel.credential
    if not is_spapi_credential(credential):
        return []
    assert credential is not None  # noqa: S101 (type narrowing: checked just above)
    return [
        c
        for c in region_channels(channel)
        if is_spapi_credential(c.credential)
        and c.credential is not None
        and c.credential.seller_id == credential.seller_id
    ]


def revoke_authorisation(channel: Channel, *, actor: User | None) -> list[Channel]:
    """Delete the SP-API refresh token the seller gave us and disable the channels holding it.

    One authorisation covers the region, so every channel of the region holding the same
    seller's token loses it: none keeps a copy of a token the seller took back.
    """
    channels = channels_sharing_authorisation(channel)
    if not channels:
        raise SpapiError("No Amazon authorisation is on file for this channel.")
    for target in channels:
        credential = target.credential
        assert credential is not None  # noqa: S101 (type narrowing: only channels with one are shared)
        record_event(
            "channel.token_deleted",
            actor=actor,
            organisation_id=target.organisation_id,
            target=target,
            details={
                "kind": credential.kind.value,
                "seller_id": credential.seller_id,
                "token": credential.secret_hint,
                "why": "Amazon authorisation revoked by the seller",
                "revoked_from": channel.marketplace,
            },
        )
        db.session.delete(credential)
        target.credential = None
        set_channel_status(
            target,
            ChannelStatus.DISABLED,
            reason="The Amazon authorisation was revoked in Sellerdesk.",
            actor=actor,
        )
    db.session.flush()
    log.info(
        "SP-API authorisation revoked for organisation %s on channels %s",
        channel.organisation_id,
        ",".join(c.marketplace for c in channels),
    )
    return channels
