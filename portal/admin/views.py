"""Loads every admin page module (each registers its routes on `bp`)."""

from flask import render_template

from portal.admin import bp


@bp.route("")
def index():
    return render_template("admin/index.html")


# Area modules register their routes on import; keep one line per area.
from portal.admin import pages  # noqa: E402,F401  (see portal/admin/pages.py)
