"""Loads every admin page module (each registers its routes on `bp`)."""

from flask import render_template
from sqlalchemy import func, select

from portal.admin import bp
from portal.extensions import db
from portal.models import Channel, ChannelStatus
from portal.services import dashboard, health
from portal.sqltypes import utcnow


@bp.route("")
def index():
    """What needs an admin now: tokens to verify, mail to decide on, replies stuck; and
    per mailbox what ingestion stored and how its polls went."""
    by_status = dict(
        db.session.execute(select(Channel.status, func.count()).group_by(Channel.status)).all()
    )
    return render_template(
        "admin/index.html",
        pending=by_status.get(ChannelStatus.PENDING_VERIFICATION, 0),
        by_status=by_status,
        attention=health.attention_counts(),
        ChannelStatus=ChannelStatus,
        activity=[
            (
                each.mailbox,
                [_chart_row(f"{a.start:%H}:00", a) for a in each.hours],
                [_chart_row(f"{a.start:%a %d %b}", a) for a in each.days],
            )
            for each in dashboard.mailbox_activity(now=utcnow())
        ],
    )


def _chart_row(label: str, activity) -> tuple[str, int, int, int]:
    return (label, activity.messages, activity.polls, activity.failures)


# Area modules register their routes on import; keep one line per area.
from portal.admin import pages  # noqa: E402,F401  (see portal/admin/pages.py)
