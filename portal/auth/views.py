from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash

from portal.auth.forms import ChangePasswordForm, LoginForm, LogoutForm, SignupForm
from portal.extensions import db, limiter
from portal.services import lockout
from portal.services import sessions as session_service
from portal.services import signup as signup_service
from portal.services import users as user_service
from portal.sqltypes import utcnow

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
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


def _remember_for() -> timedelta:
    duration = current_app.config["REMEMBER_COOKIE_DURATION"]
    return duration if isinstance(duration, timedelta) else timedelta(seconds=duration)


def _start_session(user, remember: bool = False) -> None:
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
            form.password.errors.append(_locked_out(until, now))
            return render_template("auth/login.html", form=form), 429
        user = user_service.authenticate(email, form.password.data)
        if user is None:
            until = lockout.record_failure(email, now=now)
            db.session.commit()
            form.password.errors.append(
                "Wrong e-mail or password." + (" " + _locked_out(until, now) if until else "")
            )
        else:
            lockout.clear(email)
            user_service.record_login(user, browser_time_zone=form.time_zone.data)
            _start_session(user, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


def _locked_out(until: datetime, now: datetime) -> str:
    """The same words for every address, with and without an account."""
    seconds = max(1, round((until - now).total_seconds()))
    wait = f"{seconds} seconds" if seconds < 120 else f"{round(seconds / 60)} minutes"
    return (
        "Too many failed logins for this e-mail address: "
        f"try again in {wait} (at {until:%H:%M:%S} UTC)."
    )


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
            _start_session(user, remember=remembered in request.cookies)
            flash("Your password has been changed.", "success")
            return redirect(url_for("main.dashboard"))
    return render_template("auth/change_password.html", form=form)
