"""The admin console: one blueprint, its pages split by area into modules of this package."""

from flask import Blueprint, abort
from flask_login import current_user

from portal.extensions import login_manager
from portal.models import Role

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def admins_only():
    # One guard for every admin page, so a new page cannot forget it.
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.role != Role.ADMIN:
        abort(403)
    return None
