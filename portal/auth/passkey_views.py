"""Passkeys' pages: the user's own /account/passkeys, and signing in with one, alone or
as the step after the password. The browser's side is static/js/passkeys.js; without
JavaScript (or WebAuthn) these forms stay hidden and the password and code work as ever."""

from __future__ import annotations

from datetime import datetime

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required

from portal.auth import bp
from portal.auth.forms import (
    AddPasskeyForm,
    LoginForm,
    PasskeySignInForm,
    RemovePasskeyForm,
    TwoFactorLoginForm,
)
from portal.auth.signin import CLOSED_ORGANISATION, finish_login, locked_out, pending_sign_in
from portal.extensions import db, limiter
from portal.services import lockout, passkeys
from portal.sqltypes import utcnow

#: The challenge of the ceremony under way, in the (signed) session until it is answered.
_CEREMONY_KEY = "webauthn_ceremony"


def _login_limit():
    return limiter.limit(
        lambda: current_app.config["LOGIN_RATE_LIMIT"],
        error_message="Too many login attempts. Please wait a minute and try again.",
    )


def _options(purpose: str, ceremony: passkeys.Ceremony, now: datetime) -> Response:
    session[_CEREMONY_KEY] = {
        "purpose": purpose,
        "challenge": ceremony.challenge.hex(),
        "at": now.timestamp(),
    }
    response = Response(ceremony.options_json, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _challenge(purpose: str, now: datetime) -> bytes | None:
    """The challenge kept for `purpose`, once: a second answer finds none."""
    state = session.pop(_CEREMONY_KEY, None)
    if not isinstance(state, dict) or state.get("purpose") != purpose:
        return None
    if now.timestamp() - float(state.get("at", 0)) > passkeys.CEREMONY_SECONDS:
        return None
    try:
        return bytes.fromhex(str(state.get("challenge")))
    except ValueError:
        return None


# A global, not a context variable: the passkeys' macro is imported without context.
@bp.app_template_global("passkeys_available")
def _passkeys_available() -> bool:
    return passkeys.available()


# --- the user's own passkeys --------------------------------------------------------


@bp.route("/account/passkeys")
@login_required
def passkeys_page():
    return _render_passkeys(AddPasskeyForm(formdata=None))


def _render_passkeys(form: AddPasskeyForm, status: int = 200):
    user = current_user._get_current_object()
    return render_template(
        "auth/passkeys.html",
        passkeys=passkeys.list_passkeys(user),
        form=form,
        remove_form=RemovePasskeyForm(),
    ), status


@bp.route("/account/passkeys/options", methods=["POST"])
@login_required
def passkey_registration_options():
    user = current_user._get_current_object()
    return _options("register", passkeys.registration_ceremony(user), utcnow())


@bp.route("/account/passkeys", methods=["POST"])
@login_required
def add_passkey():
    form, now = AddPasskeyForm(), utcnow()
    challenge = _challenge("register", now)
    if not form.validate_on_submit():
        return _render_passkeys(form, 422)
    if challenge is None:
        form.credential.errors.append("The passkey prompt expired. Try again.")
        return _render_passkeys(form, 422)
    try:
        passkey = passkeys.add_passkey(
            current_user._get_current_object(),
            name=form.name.data,
            credential=form.credential.data,
            challenge=challenge,
            now=now,
        )
    except passkeys.PasskeyError as exc:
        db.session.rollback()
        form.name.errors.append(str(exc))
        return _render_passkeys(form, 422)
    db.session.commit()
    flash(f"Passkey “{passkey.name}” added: use it to sign in.", "success")
    return redirect(url_for("auth.passkeys_page"))


@bp.route("/account/passkeys/<int:passkey_id>/remove", methods=["POST"])
@login_required
def remove_passkey(passkey_id: int):
    if not RemovePasskeyForm().validate_on_submit():
        abort(400)
    user = current_user._get_current_object()
    try:
        name = passkeys.remove_passkey(user, passkey_id, actor=user)
    except passkeys.PasskeyError as exc:
        flash(str(exc), "error")
        return redirect(url_for("auth.passkeys_page"))
    if name is None:  # another user's, or gone already
        abort(404)
    db.session.commit()
    flash(f"Passkey “{name}” removed.", "success")
    return redirect(url_for("auth.passkeys_page"))


# --- signing in -----------------------------------------------------------------------


def _purpose(pending) -> str:
    return f"sign-in:{pending[0].id}" if pending else "sign-in"


@bp.route("/login/passkey/options", methods=["POST"])
@_login_limit()
def passkey_sign_in_options():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    now = utcnow()
    pending = pending_sign_in(now)
    ceremony = passkeys.sign_in_ceremony(pending[0] if pending else None)
    return _options(_purpose(pending), ceremony, now)


@bp.route("/login/passkey", methods=["POST"])
@_login_limit()
def passkey_sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form, now = PasskeySignInForm(), utcnow()
    pending = pending_sign_in(now)
    challenge = _challenge(_purpose(pending), now)
    if not form.validate_on_submit() or challenge is None:
        return _refused(pending, "The passkey prompt expired. Try again.", 422)
    user = pending[0] if pending else None
    if user is not None:
        until = lockout.locked_until(user.email, now=now)
        if until is not None:
            return _refused(pending, locked_out(until, now), 429)
    try:
        owner = passkeys.check_passkey(
            form.credential.data, challenge=challenge, user=user, now=now
        )
    except passkeys.PasskeyError as exc:
        db.session.rollback()
        message = str(exc)
        if user is not None:  # counted like a wrong code after a right password
            until = lockout.record_failure(user.email, now=now)
            db.session.commit()
            message += (" " + locked_out(until, now)) if until else ""
        return _refused(pending, message, 401)
    until = lockout.locked_until(owner.email, now=now)
    if owner.organisation is not None and owner.organisation.is_closed:
        db.session.rollback()
        return _refused(pending, CLOSED_ORGANISATION, 403)
    if not owner.is_active or until is not None:
        db.session.rollback()
        message = locked_out(until, now) if until else "This account is closed."
        return _refused(pending, message, 403)
    state = pending[1] if pending else {}
    return finish_login(
        owner,
        remember=state.get("remember", False) if pending else bool(form.remember.data),
        next_url=state.get("next") if pending else request.args.get("next"),
        trust=bool(form.trust.data) if pending else False,
        browser_time_zone=state.get("time_zone") if pending else form.time_zone.data,
    )


def _refused(pending, message: str, status: int):
    """The page the passkey was tried on again, the reason beside its button."""
    if pending:
        return render_template(
            "auth/login_two_factor.html",
            form=TwoFactorLoginForm(formdata=None),
            passkey_error=message,
            **passkey_step_context(pending[0]),
        ), status
    return render_template(
        "auth/login.html", form=LoginForm(formdata=None), passkey_error=message
    ), status


def passkey_step_context(user) -> dict:
    """What the login's second step shows of passkeys for `user`."""
    return {
        "passkey_form": PasskeySignInForm(formdata=None) if passkeys.has_passkey(user) else None
    }
