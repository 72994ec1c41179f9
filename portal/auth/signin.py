"""The steps of a sign-in that the password and second-factor pages share: where to go
next, the second step's state, the trusted-browser cookie, starting the session."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app, redirect, request, session, url_for
from flask_login import login_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from portal.extensions import db
from portal.models import User
from portal.services import lockout, two_factor
from portal.services import sessions as session_service
from portal.services import users as user_service
from portal.sqltypes import utcnow

TRUST_COOKIE = "sellerdesk_trusted_browser"
#: The password was right this long ago at most for the code step to accept a code.
PENDING_FOR = timedelta(minutes=10)
_PENDING_KEY = "two_factor_pending"


#: What a closed organisation's user is told once their password or passkey was right
#: (services/offboarding.py).
CLOSED_ORGANISATION = (
    "This organisation's account is closed, so it cannot sign in. "
    "Contact the Sellerdesk team if it should be reopened."
)


def safe_next(target: str | None) -> str:
    # Only same-site paths: no scheme, no host, and not "//host" or "\\host". No control
    # characters either: browsers drop tabs and newlines (so "/\t/host" is "//host"), and
    # a Location header cannot carry a newline at all (it would be a 500 after the login).
    if target and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        parts = urlsplit(target)
        if (
            not parts.scheme
            and not parts.netloc
            and target.startswith("/")
            and not target.startswith(("//", "/\\"))
        ):
            return target
    return url_for("main.dashboard")


def locked_out(until: datetime, now: datetime) -> str:
    """The same words for every address, with and without an account."""
    seconds = max(1, round((until - now).total_seconds()))
    wait = f"{seconds} seconds" if seconds < 120 else f"{round(seconds / 60)} minutes"
    return (
        "Too many failed logins for this e-mail address: "
        f"try again in {wait} (at {until:%H:%M:%S} UTC)."
    )


def _remember_for() -> timedelta:
    duration = current_app.config["REMEMBER_COOKIE_DURATION"]
    return duration if isinstance(duration, timedelta) else timedelta(seconds=duration)


def start_session(user: User, remember: bool = False) -> None:
    # A fresh session on login, so nothing planted before it (session fixation) survives,
    # naming a new sign-in on the server that logging out ends.
    session.clear()
    session_service.start_session(
        user,
        remember=remember,
        remember_for=_remember_for(),
        ip_address=request.remote_addr,
        user_agent=request.user_agent.string,
        now=utcnow(),
    )
    db.session.commit()
    login_user(user, remember=remember)


def finish_login(
    user: User,
    *,
    remember: bool,
    next_url: str | None,
    trust: bool = False,
    browser_time_zone: str | None = None,
):
    """Both factors are right (or only a password is needed): sign `user` in."""
    lockout.clear(user.email)
    user_service.record_login(user, browser_time_zone=browser_time_zone)
    token = two_factor.trust_browser(user, now=utcnow()) if trust else None
    start_session(user, remember=remember)
    response = redirect(safe_next(next_url))
    if token is not None:
        response.set_cookie(
            TRUST_COOKIE,
            _serializer().dumps({"user": user.id, "token": token}),
            max_age=int(two_factor.TRUST_FOR.total_seconds()),
            httponly=True,
            secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
            samesite="Lax",
        )
    return response


def browser_trusted(user: User, *, now: datetime) -> bool:
    """Whether this browser's cookie says `user` trusted it, and it is not revoked."""
    raw = request.cookies.get(TRUST_COOKIE)
    if not raw:
        return False
    try:
        value = _serializer().loads(raw, max_age=int(two_factor.TRUST_FOR.total_seconds()))
    except BadSignature:
        return False
    if not isinstance(value, dict) or value.get("user") != user.id:
        return False
    return two_factor.is_trusted(user, str(value.get("token")), now=now)


def ask_for_code(
    user: User, *, remember: bool, next_url: str | None, browser_time_zone: str | None = None
):
    """The password was right and a second factor is needed: on to the code step.

    Nothing of a sign-in exists yet; the session holds only whose password it was.
    """
    session.clear()
    session[_PENDING_KEY] = {
        "user": user.id,
        "remember": bool(remember),
        "next": next_url or "",
        "time_zone": browser_time_zone or "",
        "at": utcnow().timestamp(),
    }
    return redirect(url_for("auth.login_two_factor"))


def pending_sign_in(now: datetime) -> tuple[User, dict] | None:
    """The user whose password was right in this browser, lately, and the step's state."""
    state = session.get(_PENDING_KEY)
    if not isinstance(state, dict):
        return None
    started = datetime.fromtimestamp(float(state.get("at", 0)), tz=now.tzinfo)
    if now - started > PENDING_FOR:
        session.pop(_PENDING_KEY, None)
        return None
    user = db.session.get(User, int(state.get("user", 0)))
    if user is None or not user.is_active or not two_factor.has_second_factor(user):
        return None
    return user, state


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="trusted-browser")
