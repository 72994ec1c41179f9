from flask import Blueprint, render_template
from flask_login import current_user, login_required

from portal.models import Organisation
from portal.security import get_visible_or_404
from portal.services.organisations import list_team

bp = Blueprint("orgs", __name__, url_prefix="/orgs")


@bp.route("/<int:org_id>")
@login_required
def detail(org_id: int):
    organisation = get_visible_or_404(Organisation, org_id, current_user, org_attr="id")
    members, agents = list_team(organisation)
    return render_template(
        "orgs/detail.html", organisation=organisation, members=members, agents=agents
    )
