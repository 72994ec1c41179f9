from flask import (
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, logout_user
from werkzeug.security import check_password_hash

from portal.auth import bp
from portal.auth.forms import ChangePasswordForm, LoginForm, LogoutForm, SignupForm
from portal.auth.signin import (
    CLOSED_ORGANISATION,
    ask_for_code,
    browser_trusted,
    finish_login,
    locked_out,
    start_session,
)
from portal.extensions import db, limiter
from portal.services import lockout, two_factor
from portal.services import sessions as session_service
from portal.services import signup as signup_service
from portal.services import users as user_service
from portal.sqltypes import utcnow


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_RATE_LIMIT"],
    methods=["POST"],
    error_message="Too many login attempts. Please wait a minute and try again.",
)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        email, now = form.email.data, utcnow()
        until = lockout.locked_until(email, now=now)
        if until is not None:
            form.password.errors.append(locked_out(until, now))
            return render_template("auth/login.html", form=form), 429
        checked = user_service.check_login(email, form.password.data)
        user = checked.user
        if checked.closed:
            form.password.errors.append(CLOSED_ORGANISATION)
            return render_template("auth/login.html", form=form), 403
        if user is None:
            until = lockout.record_failure(email, now=now)
            db.session.commit()
            form.password.errors.append(
                "Wrong e-mail or password." + (" " + locked_out(until, now) if until else "")
            )
        elif two_factor.has_second_factor(user) and not browser_trusted(user, now=now):
            # The failed-attempt count is kept until the code is right too, so guessing
            # codes after a right password keeps growing the lockout.
            db.session.commit()
            return ask_for_code(
                user,
                remember=form.remember.data,
                next_url=request.args.get("next"),
                browser_time_zone=form.time_zone.data,
            )
        else:
            return finish_login(
                user,
                remember=form.remember.data,
                next_url=request.args.get("next"),
                browser_time_zone=form.time_zone.data,
            )
    return render_template("auth/login.html", form=form)


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["SIGNUP_RATE_LIMIT"],
    methods=["POST"],
    error_message="Too many sign-up attempts. Please wait a minute and try again.",
)
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = SignupForm()
    if form.validate_on_submit():
        email = form.email.data.strip()
        try:
            signup_service.request_sign_up(
                email,
                form.password.data,
                organisation_name=form.organisation.data,
                name=form.name.data or "",
                now=utcnow(),
            )
        except user_service.AccountError as exc:
            db.session.rollback()
            form.email.errors.append(str(exc))
        else:
            db.session.commit()
            # One answer whether or not the address had an account, and no sign-in
            # (which would tell); a fresh session all the same.
            session.clear()
            flash(
                f"We have sent a mail to {email}. Log in with your e-mail address and "
                "the password you chose.",
                "info",
            )
            return redirect(url_for("auth.login"))
    return render_template("auth/signup.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    form = LogoutForm()
    if form.validate_on_submit():
        if current_user.is_authenticated:
            # Ends this sign-in on the server: copies of its cookies are worth nothing now.
            user = current_user._get_current_object()
            session_service.end_session(user, user.current_session.id)
            db.session.commit()
        logout_user()
        # logout_user() leaves a note in the session to delete the remember-me cookie;
        # it must survive the clear, or that cookie outlives the logout and logs the
        # user back in as soon as the browser has dropped its session cookie.
        forget_remember_cookie = session.get("_remember")
        session.clear()
        if forget_remember_cookie:
            session["_remember"] = forget_remember_cookie
        flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        if not check_password_hash(current_user.password_hash, form.current_password.data):
            form.current_password.errors.append("This is not your current password.")
        else:
            user = current_user._get_current_object()
            user_service.change_password(user, form.new_password.data, actor=user)
            # The change ends every sign-in of the user, this one included: start a new
            # one here (keeping remember-me if this browser had it).
            remembered = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
            start_session(user, remember=remembered in request.cookies)
            flash("Your password has been changed.", "success")
            return redirect(url_for("main.dashboard"))
    return render_template("auth/change_password.html", form=form)


# The second factor's and the passkeys' pages register their routes on `bp` too.
from portal.auth import passkey_views, two_factor_views  # noqa: E402,F401
