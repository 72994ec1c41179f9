import csv
import io
from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from portal.downloads import download
from portal.reports.forms import ReportForm
from portal.services import reports as report_service
from portal.services.organisations import list_visible_organisations
from portal.sqltypes import utcnow

bp = Blueprint("reports", __name__)


def _read_form():
    """The form, the visible organisations chosen and the period; None for the last
    two when the form has errors (shown next to the fields)."""
    form = ReportForm(request.args)
    visible = [s.organisation for s in list_visible_organisations(current_user)]
    form.organisation.choices = {"": "All organisations"} | {
        str(org.id): org.name for org in visible
    }
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
    chosen = [str(org.id) for org in visible]
    if "organisation" in form and form.organisation.data:
        chosen = [form.organisation.data]
    return form, visible, [int(i) for i in chosen], (start, min(end, now), now)


def _rows(organisation_ids, period):
    start, end, now = period
    return report_service.channel_report(
        organisation_ids=organisation_ids, start=start, end=end, now=now
    )


def _cell(value: str) -> str:
    # An organisation's name starting with = or + would run as a formula in a spreadsheet.
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


@bp.route("/reports")
@login_required
def index():
    form, visible, organisation_ids, period = _read_form()
    context = {"form": form, "visible": visible, "period": period}
    if period is not None and organisation_ids:
        start, end, now = period
        days = report_service.messages_per_day(
            organisation_ids=organisation_ids, start=start, end=end
        )
        context.update(
            rows=[report_service.report_row(r) for r in _rows(organisation_ids, period)],
            count_bars=[(d.day.isoformat(), d.messages) for d in days],
            count_top=max((d.messages for d in days), default=0),
            rate_bars=[(d.day.isoformat(), d.answered_24h_pct) for d in days],
            agents=report_service.replies_per_agent(
                organisation_ids=organisation_ids, start=start, end=end
            ),
            assignees=report_service.open_threads_per_assignee(organisation_ids=organisation_ids),
            backlog=report_service.backlog(organisation_ids=organisation_ids, now=now),
        )
    status = 200 if period is not None or not request.args else 400
    return render_template("reports/index.html", **context), status


@bp.route("/reports.csv", endpoint="download")
@login_required
def download_csv():
    form, visible, organisation_ids, period = _read_form()
    if period is None:
        return render_template("reports/index.html", form=form, visible=visible), 400
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(report_service.REPORT_COLUMNS)
    for figures in _rows(organisation_ids, period) if organisation_ids else []:
        writer.writerow([_cell(value) for value in report_service.report_row(figures)])
    # Through the one download helper: saved, never rendered or sniffed.
    return download(
        out.getvalue().encode("utf-8"),
        filename="report.csv",
        mimetype="text/csv",
    )
