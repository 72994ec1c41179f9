"""The second factor's pages: the login's code step and the user's own /account/two-factor."""

from __future__ import annotations

import segno
from flask import (
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    session,
    url_for,
)
from flask_login import current_user, login_required
from markupsafe import Markup

from portal.auth import bp
from portal.auth.forms import (
    DisableTwoFactorForm,
    EnableTotpForm,
    RecoveryCodesForm,
    TwoFactorLoginForm,
)
from portal.auth.passkey_views import passkey_step_context
from portal.auth.signin import finish_login, locked_out, pending_sign_in
from portal.extensions import db, limiter
from portal.services import lockout, two_factor
from portal.sqltypes import utcnow

#: The secret being enrolled, until a code confirms it: in the (signed) session only.
_ENROLMENT_KEY = "totp_enrolment"


@bp.route("/login/two-factor", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_RATE_LIMIT"],
    methods=["POST"],
    error_message="Too many login attempts. Please wait a minute and try again.",
)
def login_two_factor():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    now = utcnow()
    pending = pending_sign_in(now)
    if pending is None:
        flash("Log in with your e-mail and password first.", "info")
        return redirect(url_for("auth.login"))
    user, state = pending
    form = TwoFactorLoginForm()
    if form.validate_on_submit():
        # The account's lockout counts wrong codes like wrong passwords.
        until = lockout.locked_until(user.email, now=now)
        if until is not None:
            form.code.errors.append(locked_out(until, now))
            return render_template(
                "auth/login_two_factor.html", form=form, **passkey_step_context(user)
            ), 429
        if two_factor.check_code(user, form.code.data, now=now) is None:
            until = lockout.record_failure(user.email, now=now)
            db.session.commit()
            form.code.errors.append(
                "This code is not right." + (" " + locked_out(until, now) if until else "")
            )
        else:
            return finish_login(
                user,
                remember=state.get("remember", False),
                next_url=state.get("next"),
                trust=form.trust.data,
                browser_time_zone=state.get("time_zone"),
            )
    return render_template("auth/login_two_factor.html", form=form, **passkey_step_context(user))


def _enrolment_secret() -> str:
    secret = session.get(_ENROLMENT_KEY)
    if not isinstance(secret, str) or not secret:
        secret = two_factor.new_totp_secret()
        session[_ENROLMENT_KEY] = secret
    return secret


def _qr_svg(data: str) -> Markup:
    # Inline SVG, so the page makes no request for it. Safe to mark: segno writes only
    # numbers and path commands; the URI's bytes become modules of the code, never text.
    svg = segno.make(data, error="m").svg_inline(scale=4, border=2, title="QR code to scan")
    return Markup(svg)  # noqa: S704 (see above)


def _render_account(enable=None, codes=None, disable=None, status=200):
    user = current_user._get_current_object()
    secret = _enrolment_secret()
    uri = two_factor.provisioning_uri(user, secret)
    enabled = two_factor.has_second_factor(user)
    return (
        render_template(
            "auth/two_factor.html",
            enabled=enabled,
            required=two_factor.is_required(user),
            codes_left=two_factor.recovery_codes_left(user) if enabled else 0,
            secret=secret,
            qr=_qr_svg(uri),
            enable_form=enable or EnableTotpForm(formdata=None, prefix="enable"),
            codes_form=codes or RecoveryCodesForm(formdata=None, prefix="codes"),
            disable_form=disable or DisableTwoFactorForm(formdata=None, prefix="disable"),
        ),
        status,
    )


def _show_recovery_codes(codes: list[str]):
    response = make_response(render_template("auth/recovery_codes.html", codes=codes))
    # Shown once: never kept in a cache or the browser's history.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def two_factor_page():
    form = EnableTotpForm(prefix="enable")
    if not form.validate_on_submit():
        return _render_account(enable=form if form.is_submitted() else None)
    user = current_user._get_current_object()
    try:
        codes = two_factor.enable_totp(
            user, _enrolment_secret(), form.code.data, now=utcnow(), keep=user.current_session
        )
    except two_factor.TwoFactorError as exc:
        db.session.rollback()
        form.code.errors.append(str(exc))
        return _render_account(enable=form, status=422)
    db.session.commit()
    session.pop(_ENROLMENT_KEY, None)
    return _show_recovery_codes(codes)


@bp.route("/account/two-factor/recovery-codes", methods=["POST"])
@login_required
def two_factor_recovery_codes():
    form = RecoveryCodesForm(prefix="codes")
    user = current_user._get_current_object()
    if form.validate_on_submit():
        try:
            codes = two_factor.regenerate_recovery_codes(user, form.code.data, now=utcnow())
        except two_factor.TwoFactorError as exc:
            db.session.rollback()
            form.code.errors.append(str(exc))
        else:
            db.session.commit()
            return _show_recovery_codes(codes)
    return _render_account(codes=form, status=422)


@bp.route("/account/two-factor/disable", methods=["POST"])
@login_required
def two_factor_disable():
    form = DisableTwoFactorForm(prefix="disable")
    user = current_user._get_current_object()
    if form.validate_on_submit():
        try:
            two_factor.disable_two_factor(
                user, form.code.data, now=utcnow(), keep=user.current_session
            )
        except two_factor.TwoFactorError as exc:
            db.session.rollback()
            form.code.errors.append(str(exc))
        else:
            db.session.commit()
            flash("Two-factor sign-in is off.", "success")
            return redirect(url_for("auth.two_factor_page"))
    return _render_account(disable=form, status=422)
