"""Passkeys (WebAuthn, through the `webauthn` library): registering them, and checking
one as a second factor or as a password-less sign-in.

The relying party is the host of PUBLIC_URL (WEBAUTHN_RP_ID overrides it) and the only
origin accepted is PUBLIC_URL's: a passkey made for the portal answers nowhere else.
Each ceremony's challenge is made here and kept by the caller (the signed session) until
the browser's answer comes back; it works once. Like every service it flushes and never
commits.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Passkey, User
from portal.services import two_factor
from portal.services.audit import record_event
from portal.services.users import AccountError

# The webauthn library is imported where a passkey is used, not with this module: every
# process of the portal imports the services (the ingest worker too) and most never
# see a passkey, while the library and its CBOR and ASN.1 parsers take 6 MB of memory.
if TYPE_CHECKING:
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor

RP_NAME = "Sellerdesk"
#: Kept by the caller no longer than this (the browser's prompt times out first).
CEREMONY_SECONDS = 300
MAX_PER_USER = 20


@functools.cache
def _transports() -> frozenset[str]:
    from webauthn.helpers.structs import AuthenticatorTransport

    return frozenset(t.value for t in AuthenticatorTransport)


@functools.cache
def _refused() -> tuple[type[Exception], ...]:
    """What the library raises for an answer that is malformed or does not verify."""
    from webauthn.helpers.exceptions import (
        InvalidAuthenticationResponse,
        InvalidCBORData,
        InvalidJSONStructure,
        InvalidRegistrationResponse,
    )

    return (
        InvalidRegistrationResponse,
        InvalidAuthenticationResponse,
        InvalidJSONStructure,
        InvalidCBORData,
        ValueError,
        KeyError,
        TypeError,
    )


class PasskeyError(AccountError):
    """A passkey refused, or a change the rules forbid; the message is shown to the user."""


@dataclass(frozen=True)
class Ceremony:
    """Options for the browser (JSON text) and the challenge to keep until its answer."""

    options_json: str
    challenge: bytes


def rp_id() -> str:
    return current_app.config.get("WEBAUTHN_RP_ID") or urlsplit(expected_origin()).hostname


def available() -> bool:
    """Whether browsers can make passkeys for the portal: never for an IP address."""
    try:
        ipaddress.ip_address(rp_id())
    except ValueError:
        return True
    return False


def expected_origin() -> str:
    parts = urlsplit(current_app.config["PUBLIC_URL"])
    return f"{parts.scheme}://{parts.netloc}"


def user_handle(user: User) -> bytes:
    # Stable and opaque: the authenticator stores it with a discoverable credential;
    # it names no e-mail address.
    return hashlib.sha256(f"sellerdesk-user:{user.id}".encode()).digest()


def list_passkeys(user: User) -> list[Passkey]:
    return list(
        db.session.scalars(select(Passkey).where(Passkey.user_id == user.id).order_by(Passkey.id))
    )


def has_passkey(user: User) -> bool:
    return bool(
        db.session.scalar(
            select(func.count()).select_from(Passkey).where(Passkey.user_id == user.id)
        )
    )


def _descriptors(passkeys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

    return [
        PublicKeyCredentialDescriptor(
            id=p.credential_id,
            transports=[
                AuthenticatorTransport(t) for t in p.transports.split(",") if t in _transports()
            ],
        )
        for p in passkeys
    ]


def registration_ceremony(user: User) -> Ceremony:
    """Options to make a new passkey for `user` (discoverable, so it can also sign in
    without a password), excluding the authenticators that hold one already."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    options = generate_registration_options(
        rp_id=rp_id(),
        rp_name=RP_NAME,
        user_name=user.email,
        user_id=user_handle(user),
        user_display_name=user.name or user.email,
        timeout=CEREMONY_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(list_passkeys(user)),
    )
    return Ceremony(options_to_json(options), options.challenge)


def add_passkey(
    user: User, *, name: str, credential: str, challenge: bytes, now: datetime
) -> Passkey:
    """Keep the passkey the browser made from `registration_ceremony`'s options."""
    from webauthn import verify_registration_response

    name = " ".join(name.split())
    if not name:
        raise PasskeyError("Give the passkey a name, such as the device it is on.")
    passkeys = list_passkeys(user)
    if any(p.name.casefold() == name.casefold() for p in passkeys):
        raise PasskeyError(f"You already have a passkey called {name!r}: choose another name.")
    if len(passkeys) >= MAX_PER_USER:
        raise PasskeyError(f"You have {MAX_PER_USER} passkeys: remove one before adding another.")
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=expected_origin(),
        )
        transports = json.loads(credential).get("response", {}).get("transports") or []
    except _refused():
        raise PasskeyError(
            "Your browser's answer could not be verified, so no passkey was added. Try again."
        ) from None
    if db.session.scalar(select(Passkey.id).where(Passkey.credential_id == verified.credential_id)):
        raise PasskeyError("This passkey is already registered.")
    passkey = Passkey(
        user_id=user.id,
        name=name,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=",".join(t for t in transports if t in _transports())[:200],
        created_at=now,
    )
    db.session.add(passkey)
    db.session.flush()
    record_event(
        "user.passkey_added",
        actor=user,
        organisation_id=user.organisation_id,
        target=user,
        details={"passkey": name},
    )
    return passkey


def sign_in_ceremony(user: User | None) -> Ceremony:
    """Options to sign in: with one of `user`'s passkeys (the second step after their
    password), or, for None, any passkey the browser holds for the portal (password-less,
    so the authenticator must verify the user: PIN or biometrics)."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

    options = generate_authentication_options(
        rp_id=rp_id(),
        timeout=CEREMONY_SECONDS * 1000,
        allow_credentials=_descriptors(list_passkeys(user)) if user is not None else None,
        user_verification=UserVerificationRequirement.PREFERRED
        if user is not None
        else UserVerificationRequirement.REQUIRED,
    )
    return Ceremony(options_to_json(options), options.challenge)


def check_passkey(credential: str, *, challenge: bytes, user: User | None, now: datetime) -> User:
    """The user the browser's answer proves to be present, else PasskeyError.

    With `user` (their password was right) only their own passkeys count; without one
    (password-less) the passkey names its user and must have verified them.
    """
    from webauthn import verify_authentication_response
    from webauthn.helpers import parse_authentication_credential_json

    refused = PasskeyError("This passkey was not accepted. Try again, or use another way in.")
    try:
        parsed = parse_authentication_credential_json(credential)
    except _refused():
        raise refused from None
    passkey = db.session.scalar(select(Passkey).where(Passkey.credential_id == parsed.raw_id))
    if passkey is None or (user is not None and passkey.user_id != user.id):
        raise refused
    owner = db.session.get(User, passkey.user_id)
    if user is None and (
        parsed.response.user_handle is not None
        and parsed.response.user_handle != user_handle(owner)
    ):
        raise refused
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=expected_origin(),
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=user is None,
        )
    except _refused():
        # Among them a signature counter that went back: a cloned authenticator.
        raise refused from None
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = now
    db.session.flush()
    return owner


def remove_passkey(user: User, passkey_id: int, *, actor: User) -> str | None:
    """Remove one of `user`'s passkeys; its name, or None if they have none such.

    Refused where it is the user's last second factor and one is required of them.
    """
    passkey = db.session.scalar(
        select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user.id)
    )
    if passkey is None:
        return None
    if (
        two_factor.is_required(user)
        and user.totp_enabled_at is None
        and len(list_passkeys(user)) == 1
    ):
        raise PasskeyError(
            "This is your only second factor and your account requires one: set up an "
            "authenticator app or add another passkey first."
        )
    name = passkey.name
    db.session.delete(passkey)
    db.session.flush()
    record_event(
        "user.passkey_removed",
        actor=actor,
        organisation_id=user.organisation_id,
        target=user,
        details={"passkey": name},
    )
    return name
