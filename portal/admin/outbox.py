"""Admin page: the outbox, replies not yet sent (pending) or refused (failed)."""

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from portal.admin import bp
from portal.admin.ops_forms import ActionForm
from portal.extensions import db
from portal.models import Direction, Message
from portal.services import outbox as outbox_service


def _load_reply(message_id: int) -> Message:
    message = db.session.get(Message, message_id)
    if message is None or message.direction != Direction.OUT or message.is_internal_note:
        abort(404)
    return message


@bp.route("/outbox")
def outbox():
    return render_template(
        "admin/outbox/index.html",
        messages=outbox_service.list_outbox(),
    )


@bp.route("/outbox/<int:message_id>/<any(retry, cancel):action>", methods=["POST"])
def outbox_action(message_id: int, action: str):
    message = _load_reply(message_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    operation = outbox_service.retry if action == "retry" else outbox_service.cancel
    try:
        operation(message, current_user)
    except outbox_service.ReplyError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        if action == "retry":
            flash(
                f"Reply to {message.to_addresses} queued: it is sent at the next outbox pass.",
                "success",
            )
        else:
            flash(f"Reply to {message.to_addresses} cancelled: it will not be sent.", "success")
    return redirect(url_for("admin.outbox"))
