"""Password reset by e-mail: a signed link, valid for an hour, that works once.

The link carries the user's id, the time it was issued and a fingerprint of the
user's password hash, signed with SECRET_KEY; nothing is stored. Setting a password
changes the hash (every hash has its own salt), so a used link, and any other link
issued before, no longer matches: single use without a table of tokens. The link
works for an hour from its issue; `now` comes from the caller, so tests move it.

Asking for a link answers the same whether or not the address has an account: the
mail is queued (system_mail.py) only for an active user and sent by the worker, so the
request's answer and its time hold no SMTP conversation either.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from portal.extensions import db
from portal.models import Message, User
from portal.services import lockout
from portal.services import users as user_service
from portal.services.audit import record_event
from portal.services.system_mail import external_url, queue_system_mail

log = logging.getLogger(__name__)

VALID_FOR = timedelta(hours=1)
#: One reset mail per address in this time however often it is asked for, so nobody can
#: fill someone's mailbox with links; the answer stays the same.
ONE_MAIL_PER = timedelta(minutes=5)
SUBJECT = "Reset your Sellerdesk password"
_SALT = "sellerdesk.password-reset"
#: A link's token is far shorter; longer input is not worth verifying.
_MAX_TOKEN_LENGTH = 300


class ResetLinkError(ValueError):
    """The link is forged, used, expired or its user disabled; shown as is."""


EXPIRED = "This link has expired or has already been used. Ask for a new one below."


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


def reset_token(user: User, *, now: datetime) -> str:
    """The signed token of a reset link for `user`, issued at `now`."""
    return _serializer().dumps({"u": user.id, "t": int(now.timestamp()), "p": _fingerprint(user)})


def request_password_reset(email: str, *, now: datetime) -> Message | None:
    """Queue a reset mail for the active user with `email` (no commit); None when there is
    none, or one went out less than ONE_MAIL_PER ago: the caller must not let either show."""
    user = user_service.find_user_by_email(email)
    if user is None or not user.is_active:
        log.info("password reset asked for an address without an active account")
        return None
    recent = db.session.scalar(
        select(Message.id)
        .where(
            Message.thread_id.is_(None),
            Message.to_addresses == user.email,
            Message.subject == SUBJECT,
            Message.created_at > now - ONE_MAIL_PER,
        )
        .limit(1)
    )
    if recent is not None:
        log.info("password reset for user %s asked again within %s", user.id, ONE_MAIL_PER)
        return None
    link = external_url("account.reset_password", token=reset_token(user, now=now))
    message = queue_system_mail(
        user.email,
        subject=SUBJECT,
        body=(
            f"Someone, hopefully you, asked to reset the password of the Sellerdesk "
            f"account {user.email}.\n\n"
            f"Choose a new password here. The link works once, for an hour:\n\n{link}\n\n"
            f"If you did not ask, ignore this mail: your password stays as it is.\n"
        ),
        kind="password_reset",
        organisation_id=user.organisation_id,
        now=now,
    )
    record_event(
        "user.password_reset_requested",
        actor=None,
        organisation_id=user.organisation_id,
        target=user,
    )
    return message


def user_for_token(token: str, *, now: datetime) -> User:
    """The active user whose live reset link this is; ResetLinkError otherwise."""
    if len(token) > _MAX_TOKEN_LENGTH:
        raise ResetLinkError(EXPIRED)
    try:
        data = _serializer().loads(token)
    except BadSignature:
        raise ResetLinkError(EXPIRED) from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), t) for k, t in (("u", int), ("t", int), ("p", str))
    ):
        raise ResetLinkError(EXPIRED)
    age = now.timestamp() - data["t"]
    if not 0 <= age <= VALID_FOR.total_seconds():
        raise ResetLinkError(EXPIRED)
    user = db.session.get(User, data["u"])
    if user is None or not user.is_active:
        raise ResetLinkError(EXPIRED)
    if not hmac.compare_digest(_fingerprint(user), data["p"]):
        raise ResetLinkError(EXPIRED)
    return user


def reset_password(token: str, new_password: str, *, now: datetime) -> User:
    """Set the password of the link's user (no commit): every sign-in of theirs ends, the
    link stops working, the address's failed logins are forgotten. Raises ResetLinkError,
    or users.AccountError when the password breaks the rules."""
    user = user_for_token(token, now=now)
    user_service.change_password(user, new_password, actor=user)
    lockout.clear(user.email)
    record_event(
        "user.password_reset_by_link",
        actor=user,
        organisation_id=user.organisation_id,
        target=user,
    )
    return user
