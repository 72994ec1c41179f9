"""Who may see what: role checks and tenant scoping, in one place.

Views never check roles or organisations ad hoc; they use `role_required` and
the scoping helpers here, so a forgotten filter cannot leak another seller's data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import Integer, Select, bindparam, false, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute

from portal.extensions import db, login_manager
from portal.models import Organisation, Role, User, agent_assignments
from portal.services import sessions as session_service
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M")

# Pages a user who must change their password may still open.
_PASSWORD_CHANGE_ALLOWED = {"auth.change_password", "auth.logout", "static"}

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
    def refuse_nul_characters():
        # No query or form value ever needs a NUL character, and PostgreSQL can neither
        # store nor compare one (the driver raises, a 500): refuse them at the door, for
        # every route alike. Form fuzzing found these (tests/security/test_fuzz_forms.py).
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


def scope_kind(user: User) -> str:
    """Which rule scopes `user`: "all" (admins), "assigned" (agents), "own" or "none" (sellers)."""
    if user.role == Role.ADMIN:
        return "all"
    if user.role == Role.AGENT:
        return "assigned"
    return "own" if user.organisation_id is not None else "none"


#: The parameters a statement built by scope_by_kind takes, by name.
SCOPE_USER_ID = "scope_user_id"
SCOPE_ORGANISATION_ID = "scope_organisation_id"


def scope_parameters(user: User) -> dict[str, int | None]:
    """The values for the parameters of scope_by_kind(…, scope_kind(user))."""
    return {SCOPE_USER_ID: user.id, SCOPE_ORGANISATION_ID: user.organisation_id}


def _visible_ids(kind: str, user_id: Any, organisation_id: Any) -> Select | None:
    if kind == "all":
        return None
    if kind == "assigned":
        return select(agent_assignments.c.organisation_id).where(
            agent_assignments.c.user_id == user_id
        )
    if kind == "own":
        return select(Organisation.id).where(Organisation.id == organisation_id)
    return select(Organisation.id).where(false())


def visible_organisation_ids(user: User) -> Select | None:
    """A subquery of the organisation ids `user` may see; None means all (admins)."""
    return _visible_ids(scope_kind(user), user.id, user.organisation_id)


def scope_to_user(stmt: Select, org_column: InstrumentedAttribute, user: User) -> Select:
    """Restrict `stmt` to rows whose `org_column` is an organisation `user` may see."""
    visible = visible_organisation_ids(user)
    if visible is None:
        return stmt
    return stmt.where(org_column.in_(visible))


def scope_by_kind(stmt: Select, org_column: InstrumentedAttribute, kind: str) -> Select:
    """scope_to_user for any user of `kind`, the user's values left as named parameters.

    For statements built once and run for many users: execute them with
    scope_parameters(user). A parameter left out is an error, never an unscoped query.
    """
    visible = _visible_ids(
        kind,
        bindparam(SCOPE_USER_ID, type_=Integer, required=True),
        bindparam(SCOPE_ORGANISATION_ID, type_=Integer, required=True),
    )
    if visible is None:
        return stmt
    return stmt.where(org_column.in_(visible))


def can_see_organisation(user: User, organisation_id: int | None) -> bool:
    if organisation_id is None:
        return user.role == Role.ADMIN
    visible = visible_organisation_ids(user)
    if visible is None:
        return True
    found = db.session.scalar(
        select(Organisation.id).where(
            Organisation.id == organisation_id, Organisation.id.in_(visible)
        )
    )
    return found is not None


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
