"""The web guards: login and role checks, security headers, tenant objects or 404.

Views never check roles or organisations ad hoc; they use `role_required` and
`get_visible_or_404`. The query scoping underneath (which organisations a user may
see) is in portal/services/scoping.py, where services use it without Flask.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, redirect, request, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from portal.extensions import db, login_manager
from portal.models import Role, User
from portal.services import sessions as session_service
from portal.services import two_factor
from portal.services.scoping import can_see_organisation
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M")

# Pages a user who must change their password may still open.
_PASSWORD_CHANGE_ALLOWED = {"auth.change_password", "auth.logout", "static"}
# Pages an admin or agent without a second factor may open: its enrolment, and leaving.
_ENROLMENT_ALLOWED = {
    "auth.two_factor_page",
    "auth.passkeys_page",  # a passkey is a second factor too
    "auth.passkey_registration_options",
    "auth.add_passkey",
    "auth.logout",
    "static",
}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see this page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(ref: str) -> User | None:
        # The session's and the remember-me cookie's value name one server-side sign-in
        # (portal/services/sessions.py): one ended by a logout, a password change or
        # reset, or a deactivation is no longer anyone's, whatever cookie carries it.
        # Loaded first thing in a request (force_password_change below asks), so a
        # transaction is open here only if something else queried first: then the
        # activity waits for a later request rather than commit someone else's work.
        fresh = not db.session().in_transaction()
        now = utcnow()
        user = session_service.resolve_session(ref, now=now)
        if user is not None and fresh:
            _note_activity(user, now)
        return user

    @app.before_request
    def force_password_change():
        if (
            current_user.is_authenticated
            and current_user.must_change_password
            and request.endpoint not in _PASSWORD_CHANGE_ALLOWED
        ):
            return redirect(url_for("auth.change_password"))
        return None

    @app.before_request
    def force_two_factor_enrolment():
        # After the password change a forced one asks for (the guard above) comes this.
        if (
            current_user.is_authenticated
            and not current_user.must_change_password
            and two_factor.must_enrol(current_user)
            and request.endpoint not in _ENROLMENT_ALLOWED
        ):
            return redirect(url_for("auth.two_factor_page"))
        return None

    @app.before_request
    def refuse_nul_characters():
        # No query or form value ever needs a NUL character, and PostgreSQL can neither
        # store nor compare one (the driver raises, a 500): refuse them at the door, for
        # every route alike. Form fuzzing found these (tests/security/test_fuzz_forms.py).
        # Not for mail posted over HTTP: its form is raw mail, read by the view under its
        # own size limit (INBOUND_MAX_BYTES), and kept as bytes.
        if request.endpoint in _RAW_MAIL_ENDPOINTS:
            return None
        if _has_nul(request.args) or (
            request.method != "GET" and (_has_nul(request.form) or _has_nul_filename())
        ):
            abort(400)
        return None

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        return response


_RAW_MAIL_ENDPOINTS = frozenset({"inbound.deliver", "inbound.deliver_mime"})


def _note_activity(user: User, now: datetime) -> None:
    # At most once a minute per sign-in; committed at once, since a GET commits nothing.
    # It is bookkeeping: if the database is busy, skip it and let a later request do it.
    row = user.current_session
    row_id = row.id
    try:
        if session_service.note_activity(row, now=now, ip_address=request.remote_addr):
            db.session.commit()
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("could not record the activity of session %s: %s", row_id, exc)


def _has_nul(values) -> bool:
    return any("\x00" in key or "\x00" in value for key, value in values.items(multi=True))


def _has_nul_filename() -> bool:
    return any("\x00" in (f.filename or "") for f in request.files.values())


def role_required(*roles: Role) -> Callable[[F], F]:
    """Let only logged-in users with one of `roles` in; others get 403 (anonymous: login)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def get_visible_or_404(
    model: type[M], object_id: int, user: User, *, org_attr: str = "organisation_id"
) -> M:
    """Load one tenant object, answering 404 (not 403) when `user` may not see it.

    404 rather than 403 so that a seller cannot even learn that another seller's
    object with that id exists.
    """
    obj = db.session.get(model, object_id)
    if obj is None or not can_see_organisation(user, getattr(obj, org_attr)):
        abort(404)
    return obj
