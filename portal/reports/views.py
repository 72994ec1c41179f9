import csv
import io

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from portal.downloads import download
from portal.extensions import db
from portal.reports.forms import RefreshForm, ReportForm
from portal.reports.tables import AGENT_COLUMNS, CHANNEL_COLUMNS, SORT_CHOICES, sort_rows
from portal.services import report_snapshots
from portal.services import reports as report_service
from portal.services.organisations import visible_organisations
from portal.services.threads import assignable_users_of
from portal.sqltypes import utcnow

bp = Blueprint("reports", __name__)


def _read_form():
    """The form, the visible organisations, and the report's parameters
    (report_snapshots.report_params); None for the last when the form has errors (shown
    next to the fields) or the user sees no organisation."""
    form = ReportForm(request.args)
    visible = visible_organisations(current_user)
    visible_ids = [org.id for org in visible]
    form.organisation.choices = {"": "All organisations"} | {
        str(org.id): org.name for org in visible
    }
    channels = report_service.report_channels(organisation_ids=visible_ids) if visible_ids else []
    form.channel.choices = {"": "All channels"} | {str(i): name for i, name, _ in channels}
    form.marketplace.choices = {"": "All marketplaces"} | {
        code: code for code in sorted({code for _, _, code in channels})
    }
    form.agent.choices = {"": "Anyone"} | {
        str(user.id): user.display_name for user in assignable_users_of(visible_ids)
    }
    form.sort.choices = SORT_CHOICES
    if len(visible) < 2:
        del form.organisation
    if not form.validate():
        return form, visible, None
    chosen = visible_ids
    if "organisation" in form and form.organisation.data:
        chosen = [int(form.organisation.data)]
    if not chosen:
        return form, visible, None
    if form.period.data == "custom":
        period = {"start": form.start.data, "end": form.end.data}
    else:
        period = {"days": int(form.period.data)}
    params = report_snapshots.report_params(
        organisation_ids=chosen,
        channel_id=int(form.channel.data) if form.channel.data else None,
        marketplace=form.marketplace.data or None,
        agent_id=int(form.agent.data) if form.agent.data else None,
        **period,
    )
    return form, visible, params


def _figures(params) -> report_snapshots.Snapshot:
    """The report's figures: kept ones while fresh, else computed now (and kept)."""
    snapshot = report_snapshots.figures(
        params, now=utcnow(), fresh_seconds=current_app.config["REPORTS_FRESH_SECONDS"]
    )
    if snapshot.written:  # a commit otherwise only expires what the page goes on to read
        db.session.commit()
    return snapshot


def _channel_rows(page: report_snapshots.ReportPage):
    """The per-channel Figures (sorted as asked) and the total, last."""
    *channels, total = page.rows
    channels = sort_rows(channels, CHANNEL_COLUMNS, request.args.get("sort", ""), _direction())
    return [*channels, total]


def _direction():
    return "desc" if request.args.get("dir") == "desc" else "asc"


def _sort_links():
    """Per column key: the URL that sorts by it (the other way round when it already
    is) and its aria-sort value."""
    current, direction = request.args.get("sort", ""), _direction()
    links = {}
    for column in (*CHANNEL_COLUMNS, *AGENT_COLUMNS):
        again = column.key == current
        args = request.args.to_dict() | {
            "sort": column.key,
            "dir": "desc" if again and direction == "asc" else "asc",
        }
        aria = ("ascending" if direction == "asc" else "descending") if again else None
        links[column.key] = (args, aria)
    return links


def _cell(value: str) -> str:
    # An organisation's name starting with = or + would run as a formula in a spreadsheet.
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


@bp.route("/reports")
@login_required
def index():
    form, visible, params = _read_form()
    context = {
        "form": form,
        "visible": visible,
        "asked": not form.errors,
        "channel_columns": CHANNEL_COLUMNS,
        "agent_columns": AGENT_COLUMNS,
    }
    if params is not None:
        snapshot = _figures(params)
        page = snapshot.figures
        context.update(
            snapshot=snapshot,
            refresh_form=RefreshForm(formdata=None),
            period=(page.start, page.end, page.now),
            rows=_channel_rows(page),
            count_bars=[(d.day.isoformat(), d.messages) for d in page.days],
            count_top=max((d.messages for d in page.days), default=0),
            rate_bars=[(d.day.isoformat(), d.answered_24h_pct) for d in page.days],
            distribution=page.distribution,
            late_buckets=("24_48h", "over_48h"),
            agents=sort_rows(
                page.agents, AGENT_COLUMNS, request.args.get("sort", ""), _direction()
            ),
            assignees=page.assignees,
            backlog=page.backlog,
            sort_links=_sort_links(),
            report_row=report_service.report_row,
        )
    status = 200 if not form.errors or not request.args else 400
    return render_template("reports/index.html", **context), status


@bp.route("/reports/refresh", methods=["POST"])
@login_required
def refresh():
    """Recompute the report the query string names now, rather than show kept figures
    (at most once a minute per report), then show it."""
    if not RefreshForm().validate_on_submit():
        abort(400)
    form, _, params = _read_form()
    if params is None:
        return redirect(url_for("reports.index", **request.args))
    now = utcnow()
    if report_snapshots.may_refresh(params, now=now):
        report_snapshots.recompute(params, now=now)
        db.session.commit()
    else:
        flash("These figures were computed less than a minute ago.", "info")
    return redirect(url_for("reports.index", **request.args))


@bp.route("/reports.csv", endpoint="download")
@login_required
def download_csv():
    form, visible, params = _read_form()
    if form.errors:
        return render_template(
            "reports/index.html",
            form=form,
            visible=visible,
            asked=True,
            channel_columns=CHANNEL_COLUMNS,
            agent_columns=AGENT_COLUMNS,
        ), 400
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(report_service.REPORT_COLUMNS)
    # The same figures as the page shows (kept ones while fresh), so the two agree.
    for figures in _channel_rows(_figures(params).figures) if params is not None else []:
        writer.writerow([_cell(value) for value in report_service.report_row(figures)])
    # Through the one download helper: saved, never rendered or sniffed.
    return download(
        out.getvalue().encode("utf-8"),
        filename="report.csv",
        mimetype="text/csv",
    )
