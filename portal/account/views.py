from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    url_for,
)
from flask_login import current_user, login_required

from portal.account.devices import describe_device
from portal.account.forms import (
    AcceptInvitationForm,
    AlertsForm,
    ClaimNotificationsForm,
    ForgotPasswordForm,
    NotificationsForm,
    ResetPasswordForm,
    SignOutElsewhereForm,
    SignOutSessionForm,
    TimeZoneForm,
)
from portal.extensions import db, limiter
from portal.services import alerts as alert_service
from portal.services import invitations as invitation_service
from portal.services import notifications as notification_service
from portal.services import password_reset
from portal.services import sessions as session_service
from portal.services import users as user_service
from portal.services.users import AccountError
from portal.sqltypes import utcnow

bp = Blueprint("account", __name__)


def _now():
    # Tests set CLOCK to move past a link's hour; otherwise the real time.
    return current_app.config.get("CLOCK", utcnow)()


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["PASSWORD_RESET_RATE_LIMIT"],
    methods=["POST"],
    error_message="Too many requests for a reset link. Please wait a minute and try again.",
)
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        email = form.email.data.strip()
        password_reset.request_password_reset(email, now=_now())
        db.session.commit()
        # The same words whether or not the address has an account.
        flash(
            f"If {email} has a Sellerdesk account, a link to choose a new password is on "
            "its way. It works once, for an hour.",
            "info",
        )
        return redirect(url_for("auth.login"))
    return render_template("account/forgot_password.html", form=form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token):
    try:
        user = password_reset.user_for_token(token, now=_now())
    except password_reset.ResetLinkError as exc:
        return render_template(
            "account/reset_password.html", form=None, problem=str(exc), forgot=ForgotPasswordForm()
        )
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            password_reset.reset_password(token, form.new_password.data, now=_now())
        except AccountError as exc:
            form.new_password.errors.append(str(exc).removeprefix("Password refused: "))
        else:
            db.session.commit()
            # Not signed in here: the login asks for whatever else the account needs.
            flash("Your password has been changed. Log in with it.", "success")
            return redirect(url_for("auth.login"))
    return render_template("account/reset_password.html", form=form, email=user.email)


@bp.route("/account")
@login_required
def index():
    return _render_index(_time_zone_form())


def _alerts_form(**kwargs) -> AlertsForm:
    chosen = alert_service.preferences(current_user)
    return AlertsForm(
        prefix="alerts",
        assigned=chosen.assigned,
        deadline=chosen.deadline,
        digest=chosen.digest,
        **kwargs,
    )


def _time_zone_form() -> TimeZoneForm:
    form = TimeZoneForm(time_zone=current_user.time_zone or "UTC")
    # "UTC" first: what a user without a zone reads times in.
    form.time_zone.choices = ["UTC"] + sorted(user_service.time_zone_names() - {"UTC"})
    return form


def _render_index(
    time_zone_form: TimeZoneForm,
    status: int = 200,
    alerts_form: AlertsForm | None = None,
    notifications_form: NotificationsForm | None = None,
):
    user = current_user._get_current_object()
    rows = session_service.list_sessions(user, now=utcnow())
    return render_template(
        "account/index.html",
        sessions=[(row, describe_device(row.user_agent)) for row in rows],
        current_session_id=user.current_session.id,
        elsewhere_form=SignOutElsewhereForm(),
        time_zone_form=time_zone_form,
        alerts_form=alerts_form or _alerts_form(formdata=None),
        notifications_form=notifications_form
        or NotificationsForm(
            prefix="notifications", formdata=None, browser=user.browser_notifications
        ),
    ), status


@bp.route("/account/alerts", methods=["POST"])
@login_required
def change_alerts():
    form = AlertsForm(prefix="alerts")
    if not form.validate_on_submit():
        return _render_index(_time_zone_form(), 400, alerts_form=form)
    chosen = alert_service.Preferences(
        assigned=form.assigned.data, deadline=form.deadline.data, digest=form.digest.data
    )
    if alert_service.set_preferences(current_user._get_current_object(), chosen):
        db.session.commit()
    flash("Your e-mail alerts are saved.", "success")
    return redirect(url_for("account.index") + "#alerts")


@bp.route("/account/notifications", methods=["POST"])
@login_required
def change_notifications():
    form = NotificationsForm(prefix="notifications")
    if not form.validate_on_submit():
        return _render_index(_time_zone_form(), 400, notifications_form=form)
    user = current_user._get_current_object()
    if notification_service.set_browser_notifications(user, form.browser.data, now=utcnow()):
        db.session.commit()
    flash(
        "Browser notifications are on. Allow them in each browser you use: the button below asks."
        if form.browser.data
        else "Browser notifications are off.",
        "success",
    )
    return redirect(url_for("account.index") + "#notifications")


@bp.route("/notifications/claim", methods=["POST"])
@login_required
def claim_notifications():
    """What an open tab (static/js/notify.js) posts now and then: the user's browser
    notifications due, each to one tab only, with the link a click opens."""
    if not ClaimNotificationsForm().validate_on_submit():
        return jsonify(error="Reload the page."), 400
    user = current_user._get_current_object()
    events = notification_service.claim_notifications(user, now=utcnow())
    db.session.commit()
    return jsonify(
        notifications=[
            {
                "title": event.title,
                "body": event.body,
                "tag": event.tag,
                "url": url_for("inbox.thread_detail", thread_id=event.thread_id)
                if event.thread_id
                else url_for("inbox.index"),
            }
            for event in events
        ]
    )


@bp.route("/account/time-zone", methods=["POST"])
@login_required
def change_time_zone():
    form = _time_zone_form()
    if not form.validate_on_submit():
        return _render_index(form, 400)
    user_service.change_time_zone(current_user._get_current_object(), form.time_zone.data)
    db.session.commit()
    flash(f"Times are now shown in {form.time_zone.data}.", "success")
    return redirect(url_for("account.index"))


@bp.route("/account/sessions/<int:session_id>/sign-out", methods=["POST"])
@login_required
def sign_out_session(session_id):
    user = current_user._get_current_object()
    if not SignOutSessionForm().validate_on_submit():
        abort(400)
    # Another user's sign-in, or one already ended, is simply not found.
    if not session_service.sign_out_session(user, session_id, current=user.current_session):
        abort(404)
    db.session.commit()
    flash("That browser is signed out.", "success")
    return redirect(url_for("account.index"))


@bp.route("/account/sessions/sign-out-elsewhere", methods=["POST"])
@login_required
def sign_out_elsewhere():
    user = current_user._get_current_object()
    if not SignOutElsewhereForm().validate_on_submit():
        abort(400)
    ended = session_service.sign_out_elsewhere(user, current=user.current_session)
    db.session.commit()
    flash(
        f"Signed out everywhere else ({ended} other sign-in{'s' if ended != 1 else ''}).", "success"
    )
    return redirect(url_for("account.index"))


@bp.route("/invitations/<token>", methods=["GET", "POST"])
def accept_invitation(token):
    now = _now()
    try:
        invitation = invitation_service.open_invitation(token, now=now)
    except invitation_service.InvitationError as exc:
        return render_template("account/accept_invitation.html", form=None, problem=str(exc))
    form = AcceptInvitationForm()
    if form.validate_on_submit():
        try:
            invitation_service.accept(
                token, name=form.name.data or "", password=form.new_password.data, now=now
            )
        except AccountError as exc:
            db.session.rollback()
            form.new_password.errors.append(str(exc).removeprefix("Password refused: "))
        else:
            db.session.commit()
            flash("Welcome to Sellerdesk. Log in with your e-mail and new password.", "success")
            return redirect(url_for("auth.login"))
    return render_template("account/accept_invitation.html", form=form, invitation=invitation)
