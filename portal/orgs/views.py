from flask import Blueprint, Response, render_template, stream_with_context
from flask_login import current_user, login_required

from portal.extensions import db
from portal.models import Organisation
from portal.security import get_visible_or_404
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
