"""Admin page for the audit log: every event, filtered, newest first."""

from flask import render_template, request, url_for

from portal.admin import bp
from portal.admin.people_forms import AuditFilterForm
from portal.services import audit_log
from portal.services import users as user_service
from portal.sqltypes import parse_id


def _int_or_none(value):
    return parse_id(value)


@bp.route("/audit")
def audit():
    form = AuditFilterForm(
        request.args,
        organisations=user_service.organisation_choices(),
        actors=audit_log.actor_choices(),
        kinds=audit_log.event_kinds(),
    )
    form.validate()  # a bad date is shown beside its field and ignored
    actor = form.actor.data
    filters = audit_log.AuditFilters(
        organisation_id=_int_or_none(form.organisation.data),
        actor=actor if actor == audit_log.SYSTEM_ACTOR else _int_or_none(actor),
        kind=form.kind.data or None,
        since=form.since.data if not form.since.errors else None,
        until=form.until.data if not form.until.errors else None,
    )
    page = audit_log.list_audit_events(
        filters,
        before=_int_or_none(request.args.get("before")),
        after=_int_or_none(request.args.get("after")),
    )
    args = {k: v for k, v in request.args.items() if k not in ("before", "after") and v}
    return render_template(
        "admin/audit/index.html",
        form=form,
        page=page,
        newer_url=url_for("admin.audit", **args, after=page.newer_cursor)
        if page.newer_cursor
        else None,
        older_url=url_for("admin.audit", **args, before=page.older_cursor)
        if page.older_cursor
        else None,
        newest_url=url_for("admin.audit", **args) if page.newer_cursor else None,
    )
