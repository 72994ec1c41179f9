"""The second factor: TOTP (RFC 6238), recovery codes, browsers trusted for 30 days.

A user has a second factor once a TOTP secret is confirmed (`enable_totp`, or
`provision_totp` for the command line). Admins and agents must have one
(`must_enrol`); sellers may, and must when their organisation's owner requires it
(`set_organisation_requirement`). A code is accepted for a time step within one step of
now and only after the last step accepted, so no code works twice, not even within
its window. Recovery codes are random, kept as SHA-256 (their entropy makes a slow
hash pointless) and each works once. A trusted browser is a row naming the random
token of a signed cookie: deleting the row revokes the cookie. Changing the factor
ends the user's other sign-ins and forgets every trusted browser; so does ending
all of a user's sign-ins (portal/services/sessions.py, end_sessions).
Like every service it flushes and never commits.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import delete, func, select

from portal.crypto import decrypt_secret, encrypt_secret
from portal.extensions import db
from portal.models import (
    Organisation,
    Passkey,
    RecoveryCode,
    Role,
    TrustedBrowser,
    User,
    UserSession,
)
from portal.services.audit import record_event
from portal.services.sessions import end_sessions
from portal.services.users import AccountError

log = logging.getLogger(__name__)

ISSUER = "Sellerdesk"
#: Roles that cannot use the portal without a second factor.
REQUIRED_ROLES = frozenset({Role.ADMIN, Role.AGENT})
RECOVERY_CODE_COUNT = 10
TRUST_FOR = timedelta(days=30)
#: Codes of one time step before or after now are accepted (clock drift, slow typing).
VALID_WINDOW = 1
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_SEPARATORS = re.compile(r"[\s-]+")


class TwoFactorError(AccountError):
    """A code refused, or a change the rules forbid; the message is shown to the user."""


def has_second_factor(user: User) -> bool:
    """An authenticator app, or a passkey (portal/services/passkeys.py)."""
    return user.totp_enabled_at is not None or _has_passkey(user)


def _has_passkey(user: User) -> bool:
    return (
        db.session.scalar(select(Passkey.id).where(Passkey.user_id == user.id).limit(1)) is not None
    )


def is_required(user: User) -> bool:
    organisation = user.organisation
    return user.role in REQUIRED_ROLES or bool(organisation and organisation.requires_two_factor)


def set_organisation_requirement(
    organisation: Organisation, required: bool, *, actor: User
) -> bool:
    """Require (or stop requiring) a second factor of the organisation's sellers; False
    when unchanged. An owner turning it on must have one first, so that the change
    cannot lock its own author out of the page they made it on."""
    if organisation.requires_two_factor == required:
        return False
    if required and actor.role == Role.SELLER and not has_second_factor(actor):
        raise TwoFactorError(
            "Turn on two-factor sign-in for your own account first (Account, "
            "Two-factor sign-in), then require it of everyone."
        )
    organisation.requires_two_factor = required
    db.session.flush()
    record_event(
        "organisation.two_factor_requirement_changed",
        actor=actor,
        organisation_id=organisation.id,
        target=organisation,
        details={"requires_two_factor": required},
    )
    return True


def must_enrol(user: User) -> bool:
    """Whether `user` may see nothing but the enrolment until they have a second factor."""
    return is_required(user) and not has_second_factor(user)


def new_totp_secret() -> str:
    """A fresh base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _normalise(code: str) -> str:
    return _SEPARATORS.sub("", code or "").lower()


def _accepted_step(secret: str, code: str, *, now: datetime, after: int | None) -> int | None:
    """The time step `code` is right for, near `now` and later than `after`; else None."""
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _audit(kind: str, user: User, *, actor: User | None, **details: object) -> None:
    record_event(
        kind,
        actor=actor,
        organisation_id=user.organisation_id,
        target=user,
        details=details or None,
    )


def _end_other_sign_ins(user: User, keep: UserSession | None) -> None:
    # sessions.end_sessions forgets every trusted browser of the user as well.
    end_sessions(user, keep=keep)


def _replace_recovery_codes(user: User, *, now: datetime) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    db.session.add_all(
        RecoveryCode(user_id=user.id, code_hash=_digest(_normalise(c)), created_at=now)
        for c in codes
    )
    db.session.flush()
    return codes


def enable_totp(
    user: User, secret: str, code: str, *, now: datetime, keep: UserSession | None
) -> list[str]:
    """Turn TOTP on for `user` with `secret`, confirmed by `code` from their app.

    Replaces any earlier authenticator and recovery codes; ends every other sign-in
    (but `keep`) and trusted browser. Returns the new recovery codes, to show once.
    """
    step = _accepted_step(secret, _normalise(code), now=now, after=None)
    if step is None:
        raise TwoFactorError(
            "This code does not match. Check the time on your phone and enter the newest code."
        )
    _set_secret(user, secret)
    user.totp_enabled_at = now
    user.totp_last_counter = step
    codes = _replace_recovery_codes(user, now=now)
    _end_other_sign_ins(user, keep)
    _audit("user.two_factor_enabled", user, actor=user, method="totp")
    return codes


def provision_totp(user: User, *, now: datetime, actor: User | None) -> str:
    """Give `user` a new TOTP secret without a confirming code (operators, benchmarks).

    Returns the secret, which is shown once; every sign-in and trusted browser of
    `user` ends, and their recovery codes are deleted (they make new ones on their page).
    """
    secret = new_totp_secret()
    _set_secret(user, secret)
    user.totp_enabled_at = now
    user.totp_last_counter = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    _end_other_sign_ins(user, None)
    _audit("user.two_factor_provisioned", user, actor=actor, method="totp", email=user.email)
    return secret


def check_code(user: User, code: str, *, now: datetime) -> str | None:
    """Accept `code` as `user`'s second factor: "totp" or "recovery code", else None.

    An accepted code is used up: its time step (TOTP) or the recovery code itself.
    """
    code = _normalise(code)
    if not code or not has_second_factor(user):
        return None
    if user.totp_secret_encrypted:
        step = _accepted_step(totp_secret(user), code, now=now, after=user.totp_last_counter)
        if step is not None:
            user.totp_last_counter = step
            db.session.flush()
            return "totp"
    # A single UPDATE: two requests with the same recovery code cannot both use it.
    used = db.session.execute(
        RecoveryCode.__table__.update()
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _digest(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
    ).rowcount
    if used:
        _audit("user.recovery_code_used", user, actor=user, left=recovery_codes_left(user))
        return "recovery code"
    return None


def recovery_codes_left(user: User) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    )


def regenerate_recovery_codes(user: User, code: str, *, now: datetime) -> list[str]:
    """New recovery codes for `user` (the old ones stop working), after a current code."""
    if check_code(user, code, now=now) is None:
        raise TwoFactorError("This code is not right: enter the newest code of your app.")
    codes = _replace_recovery_codes(user, now=now)
    _audit("user.recovery_codes_replaced", user, actor=user)
    return codes


def totp_secret(user: User) -> str:
    """The user's base32 TOTP secret (SecretUnreadable if TOKEN_KEY changed unrotated)."""
    return decrypt_secret(user.totp_secret_encrypted)


def _set_secret(user: User, secret: str | None) -> None:
    user.totp_secret_encrypted = encrypt_secret(secret) if secret else None


def members_without_second_factor(organisation: Organisation) -> int:
    """How many active seller users of the organisation have no second factor yet."""
    return db.session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.organisation_id == organisation.id,
            User.is_active.is_(True),
            User.totp_enabled_at.is_(None),
        )
    )


def _remove_second_factor(user: User) -> None:
    _set_secret(user, None)
    user.totp_enabled_at = None
    user.totp_last_counter = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def disable_two_factor(user: User, code: str, *, now: datetime, keep: UserSession | None) -> None:
    """`user` turns their own second factor off, confirming with a current code; refused
    where their role requires one. Ends their other sign-ins and trusted browsers."""
    if is_required(user) and not _has_passkey(user):
        raise TwoFactorError(
            f"Your {'role' if user.role in REQUIRED_ROLES else 'organisation'} requires "
            "two-factor sign-in: it cannot be turned off (add a passkey first to use that "
            "instead of the app)."
        )
    if check_code(user, code, now=now) is None:
        raise TwoFactorError("This code is not right: enter the newest code of your app.")
    _remove_second_factor(user)
    _end_other_sign_ins(user, keep)
    _audit("user.two_factor_disabled", user, actor=user)


def reset_second_factor(user: User, *, actor: User | None) -> None:
    """An admin removes `user`'s second factors (a lost phone: the authenticator app,
    recovery codes and passkeys): every sign-in and trusted
    browser of `user` ends; an admin or agent enrols again at the next login."""
    if actor is not None and actor.id == user.id:
        # It would end the actor's own session and leave them to enrol again anyway.
        raise TwoFactorError(
            "You cannot reset your own second factor here; ask another admin, or replace "
            "your authenticator on your Two-factor page."
        )
    had = has_second_factor(user)
    _remove_second_factor(user)
    # A lost phone may be a lost laptop too: its passkeys go with the app.
    db.session.execute(delete(Passkey).where(Passkey.user_id == user.id))
    _end_other_sign_ins(user, None)
    db.session.flush()
    _audit("user.two_factor_reset", user, actor=actor, email=user.email, had_second_factor=had)


# --- trusted browsers -----------------------------------------------------------------


def trust_browser(user: User, *, now: datetime) -> str:
    """Trust a browser of `user` for TRUST_FOR: the token its (signed) cookie carries."""
    token = secrets.token_urlsafe(32)
    db.session.execute(
        delete(TrustedBrowser).where(
            TrustedBrowser.user_id == user.id, TrustedBrowser.expires_at <= now
        )
    )
    db.session.add(
        TrustedBrowser(
            user_id=user.id, token_hash=_digest(token), created_at=now, expires_at=now + TRUST_FOR
        )
    )
    db.session.flush()
    return token


def is_trusted(user: User, token: str, *, now: datetime) -> bool:
    """Whether `token` names a live trusted browser of `user`."""
    return (
        db.session.scalar(
            select(TrustedBrowser.id).where(
                TrustedBrowser.user_id == user.id,
                TrustedBrowser.token_hash == _digest(token),
                TrustedBrowser.expires_at > now,
            )
        )
        is not None
    )


def forget_trusted_browsers(user: User) -> int:
    """Revoke every trusted browser of `user`; how many there were."""
    return db.session.execute(
        delete(TrustedBrowser).where(TrustedBrowser.user_id == user.id)
    ).rowcount
