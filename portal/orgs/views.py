from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required

from portal.downloads import download
from portal.extensions import db
from portal.models import Organisation, Role
from portal.orgs.forms import ReplyPermissionForm
from portal.security import get_visible_or_404
from portal.services import audit_log
from portal.services import export as export_service
from portal.services.organisations import list_team
from portal.services.users import set_sellers_can_reply
from portal.sqltypes import parse_id, utcnow

bp = Blueprint("orgs", __name__, url_prefix="/orgs")


def _manages(organisation: Organisation) -> bool:
    # The seller business decides for itself; admins may act for it. Agents may not.
    return current_user.role == Role.ADMIN or (
        current_user.role == Role.SELLER and current_user.organisation_id == organisation.id
    )


@bp.route("/<int:org_id>")
@login_required
def detail(org_id: int):
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    members, agents = list_team(organisation)
    form = ReplyPermissionForm(formdata=None) if _manages(organisation) else None
    return render_template(
        "orgs/detail.html",
        organisation=organisation,
        members=members,
        agents=agents,
        reply_permission_form=form,
    )


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
