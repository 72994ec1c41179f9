"""Admin pages: which channels' replies a mailbox sends, through which SMTP."""

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from portal.admin import bp
from portal.admin.sending_forms import SendingForm
from portal.extensions import db
from portal.models import Channel, Mailbox
from portal.services import sending as sending_service


@bp.route("/mailboxes/<int:mailbox_id>/sending", methods=["GET", "POST"])
def mailbox_sending(mailbox_id: int):
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None:
        abort(404)
    channels = db.session.scalars(select(Channel).order_by(Channel.helpdesk_address)).all()
    form = SendingForm(
        data={
            "smtp_url": mailbox.smtp_url or "",
            "channels": [c.id for c in sending_service.sending_channels(mailbox)],
        }
    )
    form.channels.choices = [
        (c.id, f"{c.helpdesk_address} ({c.organisation.name}, Amazon {c.marketplace})")
        for c in channels
    ]
    if form.validate_on_submit():
        chosen = [c for c in channels if c.id in set(form.channels.data or [])]
        try:
            changed = sending_service.set_sending(
                mailbox, smtp_url=form.smtp_url.data, channels=chosen, actor=current_user
            )
        except sending_service.SendingConfigError as exc:
            db.session.rollback()
            form.smtp_url.errors.append(str(exc))
        else:
            db.session.commit()
            if changed:
                flash(
                    f"“{mailbox.name}” now sends the replies of {len(chosen)} channel(s).",
                    "success",
                )
            return redirect(url_for("admin.mailboxes", _anchor=f"mailbox-{mailbox.id}"))
    return (
        render_template("admin/mailboxes/sending.html", form=form, mailbox=mailbox),
        422 if form.errors else 200,
    )
