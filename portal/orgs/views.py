from flask import Blueprint, Response, render_template, request, stream_with_context, url_for
from flask_login import current_user, login_required

from portal.extensions import db
from portal.models import Organisation
from portal.security import get_visible_or_404
from portal.services import audit_log
from portal.services import export as export_service
from portal.services.organisations import list_team
from portal.sqltypes import utcnow

bp = Blueprint("orgs", __name__, url_prefix="/orgs")


@bp.route("/<int:org_id>")
@login_required
def detail(org_id: int):
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    members, agents = list_team(organisation)
    return render_template(
        "orgs/detail.html", organisation=organisation, members=members, agents=agents
    )


@bp.route("/<int:org_id>/export.jsonl")
@login_required
def export_messages(org_id: int):
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    filename = export_service.export_filename(organisation, on=utcnow().date())
    lines = export_service.start_organisation_export(organisation, actor=current_user)
    # The audit event is committed before the first byte goes out.
    db.session.commit()
    return Response(
        stream_with_context(lines),
        mimetype="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/<int:org_id>/audit")
@login_required
def audit(org_id: int):
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    cursors = {k: request.args.get(k, type=int) for k in ("before", "after")}
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
