"""Sign-ins kept on the server: one UserSession row per login, checked on every request.

flask-login keeps `User.get_id()` in the session cookie and, with "Keep me logged in",
in the remember-me cookie. Here that value is a random token naming one row, of which
only the SHA-256 is stored; the user loader (portal/security.py) resolves it on every
request. A missing or expired row, or an inactive user, means anonymous. So logging out
deletes the row and every copy of both cookies stops working; a password change or
reset, and deactivation, delete all of a user's rows (and the browsers it trusted to
skip the second factor: portal/services/two_factor.py).

A row expires: remembered, when its remember-me cookie would (REMEMBER_COOKIE_DURATION
after the login, however it is used); otherwise after IDLE_LIMIT without a request.
Expired rows are deleted at the next login of anyone.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.models import TrustedBrowser, User, UserSession
from portal.services.audit import record_event

log = logging.getLogger(__name__)

#: A browser session (no remember-me) unused this long has ended: Flask's own limit on
#: a session cookie's age (PERMANENT_SESSION_LIFETIME's default).
IDLE_LIMIT = timedelta(days=31)
#: How stale last_seen_at may get: a request writes it at most this often.
ACTIVITY_RESOLUTION = timedelta(minutes=1)
#: Longer values are not a token of ours; not worth hashing.
_MAX_REF_LENGTH = 100
_MAX_USER_AGENT = 255


def token_digest(token: str) -> str:
    """What is stored for a random token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _attach(user: User, row: UserSession, ref: str) -> User:
    user.current_session = row
    user.session_ref = ref
    return user


def start_session(
    user: User,
    *,
    remember: bool,
    remember_for: timedelta,
    ip_address: str | None,
    user_agent: str | None,
    now: datetime,
) -> UserSession:
    """Record a new sign-in of `user` and make it the one `user.get_id()` names.

    The token is returned only through `user.get_id()`, for the cookies; the row keeps
    its hash. `remember_for` is the remember-me cookie's lifetime.
    """
    prune_expired_sessions(now=now)
    token = secrets.token_urlsafe(32)
    row = UserSession(
        user=user,
        token_hash=token_digest(token),
        created_at=now,
        last_seen_at=now,
        expires_at=now + (remember_for if remember else IDLE_LIMIT),
        ip_address=(ip_address or "")[:45],
        user_agent=(user_agent or "")[:_MAX_USER_AGENT],
        is_remembered=remember,
    )
    db.session.add(row)
    db.session.flush()
    log.info("user %s signed in (session %s, remembered=%s)", user.id, row.id, remember)
    _attach(user, row, token)
    return row


def resolve_session(ref: str | None, *, now: datetime) -> User | None:
    """The active user whose live sign-in `ref` names, with it attached; else None."""
    if not ref or len(ref) > _MAX_REF_LENGTH:
        return None
    row = db.session.scalar(
        select(UserSession)
        # The organisation too: every request's two-factor guard reads it for a seller.
        .options(joinedload(UserSession.user).joinedload(User.organisation))
        .where(UserSession.token_hash == token_digest(ref))
    )
    if row is None or row.expires_at <= now or not row.user.is_active:
        return None
    return _attach(row.user, row, ref)


def note_activity(row: UserSession, *, now: datetime, ip_address: str | None) -> bool:
    """Move `row`'s last_seen_at (and a browser session's end) on; at most once a
    ACTIVITY_RESOLUTION, so most requests write nothing. True when it changed the row."""
    if now - row.last_seen_at < ACTIVITY_RESOLUTION:
        return False
    row.last_seen_at = now
    row.ip_address = (ip_address or "")[:45]
    if not row.is_remembered:
        row.expires_at = now + IDLE_LIMIT
    db.session.flush()
    return True


def list_sessions(user: User, *, now: datetime) -> list[UserSession]:
    """`user`'s live sign-ins, the most recently seen first."""
    return list(
        db.session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.expires_at > now)
            .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
        )
    )


def end_session(user: User, session_id: int) -> bool:
    """End `user`'s sign-in `session_id`: its session and remember-me cookies stop working
    at once. False when `user` has no such sign-in (another user's is never touched)."""
    ended = db.session.execute(
        delete(UserSession).where(UserSession.id == session_id, UserSession.user_id == user.id)
    ).rowcount
    log.info("user %s signed out (session %s, ended=%s)", user.id, session_id, ended)
    return ended == 1


def end_sessions(user: User, *, keep: UserSession | None = None) -> int:
    """End every sign-in of `user` (but `keep`, when given); how many ended.

    Every browser `user` trusted to skip the second factor is forgotten too, `keep`'s
    included: a trusted browser's cookie does not say which sign-in it belongs to.
    """
    stmt = delete(UserSession).where(UserSession.user_id == user.id)
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep.id)
    ended = db.session.execute(stmt).rowcount
    db.session.execute(delete(TrustedBrowser).where(TrustedBrowser.user_id == user.id))
    log.info("ended %s session(s) of user %s", ended, user.id)
    return ended


def sign_out_session(user: User, session_id: int, *, current: UserSession) -> bool:
    """`user` ends one of their other sign-ins from their account page (audited); False
    when it is not theirs, or is the one in use (that is the logout)."""
    if session_id == current.id or not end_session(user, session_id):
        return False
    record_event(
        "user.session_ended",
        actor=user,
        organisation_id=user.organisation_id,
        target=user,
        details={"session_id": session_id},
    )
    return True


def sign_out_elsewhere(user: User, *, current: UserSession) -> int:
    """`user` ends every sign-in but `current` (audited); how many ended."""
    ended = end_sessions(user, keep=current)
    record_event(
        "user.sessions_ended",
        actor=user,
        organisation_id=user.organisation_id,
        target=user,
        details={"count": ended, "kept_session_id": current.id},
    )
    return ended


class SessionError(ValueError):
    """An action on sign-ins that is not allowed; the message says why."""


def end_sessions_by_admin(user: User, *, actor: User | None) -> int:
    """An admin (or the CLI, `actor` None) signs `user` out everywhere (audited); how
    many sign-ins ended. Not their own: their account page does that."""
    if actor is not None and actor.id == user.id:
        raise SessionError("Sign yourself out on your Account page, not here.")
    ended = end_sessions(user)
    record_event(
        "user.sessions_ended",
        actor=actor,
        organisation_id=user.organisation_id,
        target=user,
        details={"count": ended, "by_admin": True},
    )
    return ended


def prune_expired_sessions(*, now: datetime) -> int:
    """Delete every expired sign-in (their addresses and devices are kept no longer)."""
    return db.session.execute(delete(UserSession).where(UserSession.expires_at <= now)).rowcount
