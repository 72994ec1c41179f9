import csv
import io
from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from portal.downloads import download
from portal.reports.forms import ReportForm
from portal.reports.tables import AGENT_COLUMNS, CHANNEL_COLUMNS, SORT_CHOICES, sort_rows
from portal.services import reports as report_service
from portal.services.organisations import list_visible_organisations
from portal.services.threads import assignable_users_of
from portal.sqltypes import utcnow

bp = Blueprint("reports", __name__)


def _read_form():
    """The form, the visible organisations, and the report's scope and period; None for
    the last two when the form has errors (shown next to the fields)."""
    form = ReportForm(request.args)
    visible = [s.organisation for s in list_visible_organisations(current_user)]
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
        return form, visible, None, None
    now = utcnow()
    if form.period.data == "custom":
        start = datetime.combine(form.start.data, time.min, tzinfo=UTC)
        end = datetime.combine(form.end.data + timedelta(days=1), time.min, tzinfo=UTC)
    else:
        start, end = now - timedelta(days=int(form.period.data)), now
    chosen = visible_ids
    if "organisation" in form and form.organisation.data:
        chosen = [int(form.organisation.data)]
    scope = {
        "organisation_ids": chosen,
        "channel_id": int(form.channel.data) if form.channel.data else None,
        "marketplace": form.marketplace.data or None,
        "agent_id": int(form.agent.data) if form.agent.data else None,
    }
    return form, visible, scope, (start, min(end, now), now)


def _channel_rows(scope, period):
    """The per-channel Figures (sorted as asked) and the total, last."""
    start, end, now = period
    *channels, total = report_service.channel_report(start=start, end=end, now=now, **scope)
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
    form, visible, scope, period = _read_form()
    context = {
        "form": form,
        "visible": visible,
        "period": period,
        "channel_columns": CHANNEL_COLUMNS,
        "agent_columns": AGENT_COLUMNS,
    }
    if period is not None and scope["organisation_ids"]:
        start, end, now = period
        days = report_service.messages_per_day(start=start, end=end, **scope)
        agents = report_service.agent_report(start=start, end=end, **scope)
        context.update(
            rows=_channel_rows(scope, period),
            count_bars=[(d.day.isoformat(), d.messages) for d in days],
            count_top=max((d.messages for d in days), default=0),
            rate_bars=[(d.day.isoformat(), d.answered_24h_pct) for d in days],
            distribution=report_service.response_distribution(start=start, end=end, **scope),
            late_buckets=("24_48h", "over_48h"),
            agents=sort_rows(agents, AGENT_COLUMNS, request.args.get("sort", ""), _direction()),
            assignees=report_service.open_threads_per_assignee(**scope),
            backlog=report_service.backlog(now=now, **scope),
            sort_links=_sort_links(),
            report_row=report_service.report_row,
        )
    status = 200 if period is not None or not request.args else 400
    return render_template("reports/index.html", **context), status


@bp.route("/reports.csv", endpoint="download")
@login_required
def download_csv():
    form, visible, scope, period = _read_form()
    if period is None:
        return render_template(
            "reports/index.html",
            form=form,
            visible=visible,
            channel_columns=CHANNEL_COLUMNS,
            agent_columns=AGENT_COLUMNS,
        ), 400
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(report_service.REPORT_COLUMNS)
    for figures in _channel_rows(scope, period) if scope["organisation_ids"] else []:
        writer.writerow([_cell(value) for value in report_service.report_row(figures)])
    # Through the one download helper: saved, never rendered or sniffed.
    return download(
        out.getvalue().encode("utf-8"),
        filename="report.csv",
        mimetype="text/csv",
    )
