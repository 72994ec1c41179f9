from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required, logout_user

from portal.downloads import download
from portal.extensions import db
from portal.models import Invitation, Organisation, OrgRole, User
from portal.orgs.forms import (
    ConfirmEraseBuyerForm,
    EraseBuyerForm,
    InviteForm,
    LeaveForm,
    MemberRoleForm,
    RenameForm,
    ReplyPermissionForm,
    RevokeInvitationForm,
    TwoFactorRequirementForm,
)
from portal.security import get_visible_or_404
from portal.services import audit_log, buyer_data, two_factor
from portal.services import export as export_service
from portal.services import invitations as invitation_service
from portal.services import users as user_service
from portal.services.organisations import list_team
from portal.services.scoping import can_manage_organisation
from portal.services.users import set_sellers_can_reply
from portal.sqltypes import parse_id, utcnow

bp = Blueprint("orgs", __name__, url_prefix="/orgs")


def _manages(organisation: Organisation) -> bool:
    # The seller business's owners decide for it; admins may act for it. Members and
    # agents may not.
    return can_manage_organisation(current_user, organisation.id)


@bp.route("/<int:org_id>")
@login_required
def detail(org_id: int):
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    return _render_detail(organisation)


def _render_detail(organisation: Organisation, *, failed: dict | None = None, status: int = 200):
    members, agents = list_team(organisation)
    manages = _manages(organisation)
    forms = {
        "reply_permission": ReplyPermissionForm(formdata=None) if manages else None,
        # Its one hidden field holds the change the button makes.
        "two_factor": TwoFactorRequirementForm(
            formdata=None,
            prefix="two-factor",
            required="0" if organisation.requires_two_factor else "1",
        ),
        "rename": RenameForm(formdata=None, prefix="rename", name=organisation.name),
        "invite": InviteForm(formdata=None, prefix="invite"),
        "role": MemberRoleForm(formdata=None, prefix="role"),
        "revoke": RevokeInvitationForm(formdata=None, prefix="revoke"),
        "leave": LeaveForm(formdata=None, prefix="leave"),
    }
    forms.update(failed or {})
    invitations = invitation_service.list_open(organisation, now=utcnow()) if manages else []
    return (
        render_template(
            "orgs/detail.html",
            organisation=organisation,
            members=members,
            agents=agents,
            manages=manages,
            forms=forms,
            invitations=invitations,
            without_second_factor=(
                two_factor.members_without_second_factor(organisation) if manages else 0
            ),
            reply_permission_form=forms["reply_permission"],
        ),
        status,
    )


def _managed_or_403(org_id: int) -> Organisation:
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    if not _manages(organisation):
        abort(403)
    return organisation


def _refused(organisation: Organisation, name: str, form, field, message: str):
    db.session.rollback()
    (field.errors if field is not None else form.form_errors).append(message)
    return _render_detail(organisation, failed={name: form}, status=422)


def _done(organisation: Organisation, message: str):
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("orgs.detail", org_id=organisation.id))


@bp.route("/<int:org_id>/rename", methods=["POST"])
@login_required
def rename(org_id: int):
    organisation = _managed_or_403(org_id)
    form = RenameForm(prefix="rename")
    if not form.validate_on_submit():
        return _render_detail(organisation, failed={"rename": form}, status=422)
    try:
        user_service.rename_organisation(organisation, form.name.data, actor=current_user)
    except user_service.AccountError as exc:
        return _refused(organisation, "rename", form, form.name, str(exc))
    return _done(organisation, f"The organisation is now called {organisation.name}.")


@bp.route("/<int:org_id>/invitations", methods=["POST"])
@login_required
def invite(org_id: int):
    organisation = _managed_or_403(org_id)
    form = InviteForm(prefix="invite")
    if not form.validate_on_submit():
        return _render_detail(organisation, failed={"invite": form}, status=422)
    try:
        invitation_service.invite(
            form.email.data,
            organisation=organisation,
            org_role=OrgRole(form.org_role.data),
            actor=current_user,
            now=utcnow(),
        )
    except invitation_service.InvitationError as exc:
        return _refused(organisation, "invite", form, form.email, str(exc))
    return _done(organisation, f"Invitation sent to {form.email.data.strip()}.")


@bp.route("/<int:org_id>/invitations/<int:invitation_id>/revoke", methods=["POST"])
@login_required
def revoke_invitation(org_id: int, invitation_id: int):
    organisation = _managed_or_403(org_id)
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None or invitation.organisation_id != organisation.id:
        abort(404)
    if not RevokeInvitationForm(prefix="revoke").validate_on_submit():
        abort(400)
    try:
        invitation_service.revoke(invitation, actor=current_user, now=utcnow())
    except invitation_service.InvitationError as exc:
        flash(str(exc), "error")
        return redirect(url_for("orgs.detail", org_id=organisation.id))
    return _done(organisation, f"The invitation to {invitation.email} is withdrawn.")


@bp.route("/<int:org_id>/members/<int:user_id>/role", methods=["POST"])
@login_required
def member_role(org_id: int, user_id: int):
    organisation = _managed_or_403(org_id)
    member = db.session.get(User, user_id)
    if member is None or member.organisation_id != organisation.id:
        abort(404)
    form = MemberRoleForm(prefix="role")
    if not form.validate_on_submit():
        return _render_detail(organisation, failed={"role": form}, status=422)
    try:
        changed = user_service.set_org_role(member, OrgRole(form.org_role.data), actor=current_user)
    except user_service.AccountError as exc:
        return _refused(organisation, "role", form, None, str(exc))
    return _done(
        organisation, f"{member.email} is now {member.org_role}." if changed else "Nothing changed."
    )


@bp.route("/<int:org_id>/leave", methods=["POST"])
@login_required
def leave(org_id: int):
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    if current_user.organisation_id != organisation.id:
        abort(403)
    form = LeaveForm(prefix="leave")
    if not form.validate_on_submit():
        abort(400)
    user = current_user._get_current_object()
    try:
        user_service.leave_organisation(user)
    except user_service.AccountError as exc:
        return _refused(organisation, "leave", form, None, str(exc))
    db.session.commit()
    logout_user()
    session.clear()
    flash(f"You have left {organisation.name}; your account is closed.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/<int:org_id>/reply-permission", methods=["POST"])
@login_required
def reply_permission(org_id: int):
    """The owner lets the organisation's sellers answer buyers themselves, or stops it."""
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    if not _manages(organisation):
        abort(403)
    form = ReplyPermissionForm()
    if not form.validate_on_submit():
        abort(400)
    allowed = form.allowed.data == "1"
    if set_sellers_can_reply(organisation, allowed, actor=current_user):
        db.session.commit()
        flash(
            "Sellers of your organisation may now reply to buyers."
            if allowed
            else "Only the support team replies to buyers now.",
            "success",
        )
    return redirect(url_for("orgs.detail", org_id=organisation.id))


@bp.route("/<int:org_id>/two-factor", methods=["POST"])
@login_required
def two_factor_requirement(org_id: int):
    """The owner requires a second factor of everyone in the organisation, or stops it."""
    organisation = _managed_or_403(org_id)
    form = TwoFactorRequirementForm(prefix="two-factor")
    if not form.validate_on_submit():
        abort(400)
    required = form.required.data == "1"
    try:
        changed = two_factor.set_organisation_requirement(
            organisation, required, actor=current_user._get_current_object()
        )
    except two_factor.TwoFactorError as exc:
        return _refused(organisation, "two_factor", form, None, str(exc))
    if not changed:
        return redirect(url_for("orgs.detail", org_id=organisation.id))
    return _done(
        organisation,
        "Everyone in your organisation now needs two-factor sign-in; those without it set "
        "it up at their next page."
        if required
        else "Two-factor sign-in is now each seller's own choice.",
    )


@bp.route("/<int:org_id>/export.jsonl")
@login_required
def export_messages(org_id: int):
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    filename = export_service.export_filename(organisation, on=utcnow().date())
    lines = export_service.start_organisation_export(organisation, actor=current_user)
    # The audit event is committed before the first byte goes out.
    db.session.commit()
    return download(
        stream_with_context(lines),
        filename=filename,
        mimetype="application/x-ndjson",
        headers={"Cache-Control": "no-store"},
    )


@bp.route("/<int:org_id>/audit")
@login_required
def audit(org_id: int):
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    cursors = {k: parse_id(request.args.get(k)) for k in ("before", "after")}
    page = audit_log.list_audit_events(
        audit_log.AuditFilters(organisation_id=organisation.id), **cursors
    )

    def page_url(**cursor):
        return url_for("orgs.audit", org_id=organisation.id, **cursor)

    return render_template(
        "orgs/audit.html",
        organisation=organisation,
        page=page,
        newest_url=page_url() if page.newer_cursor else None,
        newer_url=page_url(after=page.newer_cursor) if page.newer_cursor else None,
        older_url=page_url(before=page.older_cursor) if page.older_cursor else None,
    )


@bp.route("/<int:org_id>/buyers/erase", methods=["GET", "POST"])
@login_required
def erase_buyer(org_id: int):
    """Step one of a buyer's erasure: the address; a valid one shows what would go."""
    organisation = _managed_or_403(org_id)
    form = EraseBuyerForm()
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template(
            "orgs/erase_buyer.html", organisation=organisation, form=form
        ), status
    found = buyer_data.find_buyer_data(
        organisation, form.address.data, include_unassigned=current_user.is_admin
    )
    if found.is_empty:
        form.address.errors.append("Nothing is stored about this buyer in this organisation.")
        return render_template("orgs/erase_buyer.html", organisation=organisation, form=form), 422
    confirm = ConfirmEraseBuyerForm(formdata=None, address=found.address)
    return render_template(
        "orgs/erase_buyer.html",
        organisation=organisation,
        form=form,
        found=found,
        confirm_form=confirm,
    )


@bp.route("/<int:org_id>/buyers/erase/confirm", methods=["POST"])
@login_required
def erase_buyer_confirm(org_id: int):
    """Step two: erase, then say how much went."""
    organisation = _managed_or_403(org_id)
    form = ConfirmEraseBuyerForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        counts = buyer_data.erase_buyer(
            organisation,
            form.address.data,
            actor=current_user,
            now=utcnow(),
            include_unassigned=current_user.is_admin,
        )
    except buyer_data.BuyerDataError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("orgs.erase_buyer", org_id=organisation.id))
    parts = [
        _count(counts.threads, "conversation"),
        _count(counts.messages, "message"),
        _count(counts.attachments, "attachment"),
        _count(counts.orders, "order"),
    ]
    return _done(organisation, f"Erased the buyer's data: {', '.join(parts)}.")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
