"""Admin pages for people: users (roles, access, passwords, assignments) and organisations."""

from datetime import timedelta

from flask import (
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from portal.admin import bp
from portal.admin.people_forms import (
    ROLE_LABELS,
    AssignForm,
    ChangeRoleForm,
    CloseOrganisationForm,
    CreateUserForm,
    DeactivateForm,
    EndSessionsForm,
    ReactivateForm,
    ReopenOrganisationForm,
    ReplyPermissionForm,
    ResetPasswordForm,
    ResetTwoFactorForm,
    RevokeForm,
    StaffInviteForm,
    UnassignForm,
    UserFilterForm,
)
from portal.crypto import SecretUnreadable, decrypt_secret, encrypt_secret
from portal.extensions import db
from portal.models import Invitation, Organisation, Role, User
from portal.services import invitations as invitation_service
from portal.services import offboarding, two_factor
from portal.services import sessions as session_service
from portal.services import users as user_service
from portal.sqltypes import parse_id, utcnow

# The temporary password travels to the next page in the session cookie, encrypted
# (the cookie is only signed), and is removed from it when that page is shown.
_HANDOVER_KEY = "admin_temporary_password"


def _hand_over_password(user: User, password: str) -> None:
    session[_HANDOVER_KEY] = {"user_id": user.id, "sealed": encrypt_secret(password).decode()}


def _take_password(user: User) -> str | None:
    handed = session.pop(_HANDOVER_KEY, None)
    if not handed or handed.get("user_id") != user.id:
        return None
    try:
        return decrypt_secret(handed["sealed"].encode())
    except SecretUnreadable:
        return None


def _org_id(value: str | None) -> int | None:
    return parse_id(value)


@bp.route("/users")
def users():
    form = UserFilterForm(request.args)
    filters = user_service.UserFilters(
        role=Role(form.role.data) if form.role.data in {r.value for r in Role} else None,
        is_active={"yes": True, "no": False}.get(form.active.data),
    )
    return render_template(
        "admin/people/users.html",
        form=form,
        users=user_service.list_users(filters),
        role_labels=ROLE_LABELS,
    )


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = CreateUserForm(organisations=user_service.organisation_choices())
    if form.validate_on_submit():
        organisation_id = _org_id(form.organisation.data)
        try:
            user, password = user_service.create_user_with_temporary_password(
                form.email.data,
                role=Role(form.role.data),
                organisation=db.session.get(Organisation, organisation_id)
                if organisation_id
                else None,
                new_organisation=form.new_organisation.data,
                name=form.name.data or "",
                actor=current_user,
            )
        except user_service.AccountError as exc:
            db.session.rollback()
            form.email.errors.append(str(exc))
        else:
            db.session.commit()
            _hand_over_password(user, password)
            flash(f"User {user.email} created.", "success")
            return redirect(url_for("admin.user_temporary_password", user_id=user.id))
    status = 422 if form.is_submitted() else 200
    return render_template("admin/people/user_new.html", form=form), status


def _render_user(user: User, *, failed: str | None = None, form=None, status=200):
    organisations = user_service.organisation_choices()
    assigned = {org.id for org in user.assigned_organisations}
    forms = {
        "role": ChangeRoleForm(
            formdata=None,
            prefix="role",
            organisations=organisations,
            role=user.role.value,
            organisation=str(user.organisation_id or ""),
        ),
        "deactivate": DeactivateForm(formdata=None, prefix="deactivate"),
        "reactivate": ReactivateForm(formdata=None, prefix="reactivate"),
        "reset": ResetPasswordForm(formdata=None, prefix="reset"),
        "sessions": EndSessionsForm(formdata=None, prefix="sessions"),
        "two_factor": ResetTwoFactorForm(formdata=None, prefix="two_factor"),
        "assign": AssignForm(
            formdata=None,
            prefix="assign",
            organisations=[(i, n) for i, n in organisations if i not in assigned],
        ),
        "unassign": UnassignForm(formdata=None, prefix="unassign"),
    }
    if failed is not None:
        forms[failed] = form
    return (
        render_template(
            "admin/people/user_detail.html",
            user=user,
            forms=forms,
            role_labels=ROLE_LABELS,
            Role=Role,
            session_count=len(session_service.list_sessions(user, now=utcnow())),
            has_second_factor=two_factor.has_second_factor(user),
        ),
        status,
    )


@bp.route("/users/<int:user_id>")
def user_detail(user_id: int):
    return _render_user(db.get_or_404(User, user_id))


@bp.route("/users/<int:user_id>/temporary-password")
def user_temporary_password(user_id: int):
    user = db.get_or_404(User, user_id)
    password = _take_password(user)
    response = make_response(
        render_template("admin/people/temporary_password.html", user=user, password=password)
    )
    # Never keep the page with the password in a cache or the browser history.
    response.headers["Cache-Control"] = "no-store"
    return response


def _user_action(user_id: int, name: str, form_cls, perform, message, **form_kwargs):
    """The shared shape of the user actions: validate, call the service, commit."""
    user = db.get_or_404(User, user_id)
    form = form_cls(prefix=name, **form_kwargs)
    if not form.validate_on_submit():
        return _render_user(user, failed=name, form=form, status=422)
    try:
        result = perform(user, form)
    except (user_service.AccountError, session_service.SessionError) as exc:
        db.session.rollback()
        field = getattr(form, "role", None)
        (field.errors if field is not None else form.form_errors).append(str(exc))
        return _render_user(user, failed=name, form=form, status=422)
    db.session.commit()
    return message(user, result)


def _back_to(user: User, text: str):
    flash(text, "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/deactivate", methods=["POST"])
def user_deactivate(user_id: int):
    return _user_action(
        user_id,
        "deactivate",
        DeactivateForm,
        lambda user, form: user_service.deactivate_user(user, actor=current_user),
        lambda user, _: _back_to(user, f"{user.email} is deactivated and can no longer log in."),
    )


@bp.route("/users/<int:user_id>/reactivate", methods=["POST"])
def user_reactivate(user_id: int):
    return _user_action(
        user_id,
        "reactivate",
        ReactivateForm,
        lambda user, form: user_service.reactivate_user(user, actor=current_user),
        lambda user, _: _back_to(user, f"{user.email} can log in again."),
    )


@bp.route("/users/<int:user_id>/role", methods=["POST"])
def user_role(user_id: int):
    return _user_action(
        user_id,
        "role",
        ChangeRoleForm,
        lambda user, form: user_service.change_role(
            user,
            Role(form.role.data),
            organisation=db.session.get(Organisation, _org_id(form.organisation.data))
            if form.role.data == Role.SELLER.value
            else None,
            actor=current_user,
        ),
        lambda user, changed: _back_to(
            user,
            f"{user.email} is now {ROLE_LABELS[user.role].lower()}."
            if changed
            else "Nothing changed.",
        ),
        organisations=user_service.organisation_choices(),
    )


def _password_reset_done(user: User, password: str):
    _hand_over_password(user, password)
    flash(f"Password of {user.email} reset.", "success")
    return redirect(url_for("admin.user_temporary_password", user_id=user.id))


@bp.route("/users/<int:user_id>/reset-password", methods=["POST"])
def user_reset_password(user_id: int):
    return _user_action(
        user_id,
        "reset",
        ResetPasswordForm,
        lambda user, form: user_service.reset_password(user, actor=current_user),
        _password_reset_done,
    )


@bp.route("/users/<int:user_id>/sign-out", methods=["POST"])
def user_end_sessions(user_id: int):
    return _user_action(
        user_id,
        "sessions",
        EndSessionsForm,
        lambda user, form: session_service.end_sessions_by_admin(user, actor=current_user),
        lambda user, ended: _back_to(user, f"{user.email} is signed out everywhere ({ended})."),
    )


@bp.route("/users/<int:user_id>/reset-two-factor", methods=["POST"])
def user_reset_two_factor(user_id: int):
    return _user_action(
        user_id,
        "two_factor",
        ResetTwoFactorForm,
        lambda user, form: two_factor.reset_second_factor(user, actor=current_user),
        lambda user, _: _back_to(
            user,
            f"Second factor of {user.email} reset; their sign-ins have ended."
            + (
                " They set up a new one at their next login."
                if two_factor.is_required(user)
                else ""
            ),
        ),
    )


@bp.route("/users/<int:user_id>/assign", methods=["POST"])
def user_assign(user_id: int):
    user = db.get_or_404(User, user_id)
    assigned = {org.id for org in user.assigned_organisations}
    organisations = [(i, n) for i, n in user_service.organisation_choices() if i not in assigned]
    form = AssignForm(prefix="assign", organisations=organisations)
    if not form.validate_on_submit():
        return _render_user(user, failed="assign", form=form, status=422)
    organisation = db.get_or_404(Organisation, _org_id(form.organisation.data))
    try:
        user_service.assign_agent(user, organisation, actor=current_user)
    except user_service.AccountError as exc:
        db.session.rollback()
        form.organisation.errors.append(str(exc))
        return _render_user(user, failed="assign", form=form, status=422)
    db.session.commit()
    return _back_to(user, f"{user.email} now works for {organisation.name}.")


@bp.route("/users/<int:user_id>/unassign/<int:org_id>", methods=["POST"])
def user_unassign(user_id: int, org_id: int):
    user = db.get_or_404(User, user_id)
    organisation = db.get_or_404(Organisation, org_id)
    if not UnassignForm(prefix="unassign").validate_on_submit():
        abort(400)
    removed = user_service.unassign_agent(user, organisation, actor=current_user)
    db.session.commit()
    return _back_to(
        user,
        f"{user.email} no longer works for {organisation.name}." if removed else "Nothing changed.",
    )


@bp.route("/invitations", methods=["GET", "POST"])
def invitations():
    """Invite support agents and admins; the open invitations, to withdraw."""
    form = StaffInviteForm()
    if form.validate_on_submit():
        try:
            invitation_service.invite(
                form.email.data, role=Role(form.role.data), actor=current_user, now=utcnow()
            )
        except invitation_service.InvitationError as exc:
            db.session.rollback()
            form.email.errors.append(str(exc))
        else:
            db.session.commit()
            flash(f"Invitation sent to {form.email.data.strip()}.", "success")
            return redirect(url_for("admin.invitations"))
    return render_template(
        "admin/people/invitations.html",
        form=form,
        invitations=invitation_service.list_open(None, now=utcnow()),
    )


@bp.route("/invitations/<int:invitation_id>/revoke", methods=["POST"])
def revoke_invitation(invitation_id: int):
    invitation = db.get_or_404(Invitation, invitation_id)
    if not RevokeForm().validate_on_submit():
        abort(400)
    try:
        invitation_service.revoke(invitation, actor=current_user, now=utcnow())
    except invitation_service.InvitationError as exc:
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"The invitation to {invitation.email} is withdrawn.", "success")
    return redirect(url_for("admin.invitations"))


@bp.route("/organisations")
def organisations():
    return render_template(
        "admin/people/organisations.html",
        rows=user_service.list_organisations_for_admin(),
        now=utcnow(),
    )


@bp.route("/organisations/<int:org_id>/close", methods=["GET", "POST"])
def organisation_close(org_id: int):
    """Offboarding: what closing does and when the data goes; closes on confirmation."""
    organisation = db.get_or_404(Organisation, org_id)
    grace_days = current_app.config["OFFBOARDING_GRACE_DAYS"]
    form = CloseOrganisationForm()
    if organisation.is_closed:
        flash(f"{organisation.name} is already closed.", "info")
        return redirect(url_for("admin.organisations", _anchor=f"org-{organisation.id}"))
    if not form.validate_on_submit():
        return render_template(
            "admin/people/organisation_close.html",
            organisation=organisation,
            form=form,
            grace_days=grace_days,
            erase_after=utcnow() + timedelta(days=grace_days),
        ), 422 if form.is_submitted() else 200
    try:
        offboarding.close_organisation(
            organisation, actor=current_user, now=utcnow(), grace_days=grace_days
        )
    except offboarding.OffboardingError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.organisations", _anchor=f"org-{organisation.id}"))
    db.session.commit()
    flash(
        f"{organisation.name} is closed: its channels are disabled, its Amazon "
        "authorisations deleted and its users signed out. Its buyer data will be erased "
        f"after {organisation.erase_after:%Y-%m-%d %H:%M} UTC.",
        "success",
    )
    return redirect(url_for("admin.organisations", _anchor=f"org-{organisation.id}"))


@bp.route("/organisations/<int:org_id>/reopen", methods=["POST"])
def organisation_reopen(org_id: int):
    organisation = db.get_or_404(Organisation, org_id)
    if not ReopenOrganisationForm().validate_on_submit():
        abort(400)
    try:
        offboarding.reopen_organisation(organisation, actor=current_user, now=utcnow())
    except offboarding.OffboardingError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(
            f"{organisation.name} is open again. Its channels need a new Amazon "
            "authorisation from its owners.",
            "success",
        )
    return redirect(url_for("admin.organisations", _anchor=f"org-{organisation.id}"))


@bp.route("/organisations/<int:org_id>/reply-permission", methods=["POST"])
def organisation_reply_permission(org_id: int):
    organisation = db.get_or_404(Organisation, org_id)
    form = ReplyPermissionForm()
    if not form.validate_on_submit():
        abort(400)
    allowed = form.allowed.data == "1"
    changed = user_service.set_sellers_can_reply(organisation, allowed, actor=current_user)
    db.session.commit()
    if changed:
        flash(
            f"Sellers of {organisation.name} may now reply to buyers."
            if allowed
            else f"Sellers of {organisation.name} can no longer reply to buyers.",
            "success",
        )
    else:
        flash("Nothing changed.", "info")
    return redirect(url_for("admin.organisations", _anchor=f"org-{organisation.id}"))
