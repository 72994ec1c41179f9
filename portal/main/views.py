from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required

from portal.services.organisations import list_visible_organisations

bp = Blueprint("main", __name__)


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    return redirect(url_for("auth.login"))


@bp.route("/dashboard")
@login_required
def dashboard():
    summaries = list_visible_organisations(current_user)
    return render_template("main/dashboard.html", summaries=summaries)
