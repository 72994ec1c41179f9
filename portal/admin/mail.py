"""Admin pages: mail waiting for a decision (unrouted and quarantined messages)."""

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal.admin import bp
from portal.admin.ops_forms import ActionForm, AssignForm, DiscardForm
from portal.downloads import download
from portal.extensions import db
from portal.html import sanitize_email_html
from portal.models import Channel, Message
from portal.services import admin_mail as mail_service

#: What the sandboxed frame of an HTML body may do: show itself and data: images.
FRAME_POLICY = (
    "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
    "img-src data:; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'"
)


def _load_waiting(message_id: int) -> Message:
    message = db.session.get(Message, message_id)
    if message is None or not mail_service.is_waiting(message):
        abort(404)
    return message


# --- unrouted ----------------------------------------------------------------------------


@bp.route("/unrouted")
def unrouted():
    discarded = request.args.get("show") == "discarded"
    messages, total = mail_service.list_unrouted(discarded=discarded)
    return render_template(
        "admin/mail/unrouted.html", messages=messages, total=total, discarded=discarded
    )


def _render_unrouted(message: Message, *, assign_form=None, discard_form=None, status=200):
    if message.quarantine_reason is not None and message.discarded_reason is None:
        return redirect(url_for("admin.quarantine_detail", message_id=message.id))
    return (
        render_template(
            "admin/mail/unrouted_detail.html",
            message=message,
            assign_form=assign_form
            or AssignForm(formdata=None, channels=mail_service.channel_choices()),
            discard_form=discard_form or DiscardForm(formdata=None),
        ),
        status,
    )


@bp.route("/unrouted/<int:message_id>")
def unrouted_detail(message_id: int):
    return _render_unrouted(_load_waiting(message_id))


@bp.route("/unrouted/<int:message_id>/html")
def unrouted_html(message_id: int):
    """The sanitised HTML body, as its own sandboxed document for an <iframe>."""
    message = _load_waiting(message_id)
    if not message.html_body:
        abort(404)
    safe = sanitize_email_html(message.html_body)
    response = Response(
        render_template("admin/mail/message_frame.html", body=safe), mimetype="text/html"
    )
    response.headers["Content-Security-Policy"] = FRAME_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/unrouted/<int:message_id>/assign", methods=["POST"])
def unrouted_assign(message_id: int):
    message = _load_waiting(message_id)
    form = AssignForm(channels=mail_service.channel_choices())
    if not form.validate_on_submit():
        return _render_unrouted(message, assign_form=form, status=422)
    channel = db.session.get(Channel, form.channel.data)
    if channel is None:
        abort(404)
    try:
        stored = mail_service.assign_to_channel(
            message,
            channel,
            actor=current_user,
            max_attachment_bytes=current_app.config["MAX_ATTACHMENT_BYTES"],
            time_limit=current_app.config["INGEST_PARSE_SECONDS"],
        )
    except mail_service.MailActionError as exc:
        db.session.rollback()
        form.channel.errors.append(str(exc))
        return _render_unrouted(_load_waiting(message_id), assign_form=form, status=422)
    db.session.commit()
    flash(f"Message assigned to {channel.helpdesk_address} and threaded.", "success")
    return redirect(url_for("inbox.thread_detail", thread_id=stored.thread_id))


@bp.route("/mail/<int:message_id>/discard", methods=["POST"])
def discard_message(message_id: int):
    message = _load_waiting(message_id)
    form = DiscardForm()
    if not form.validate_on_submit():
        if message.quarantine_reason is not None:
            return _render_quarantined(message, discard_form=form, status=422)
        return _render_unrouted(message, discard_form=form, status=422)
    try:
        mail_service.discard_message(message, form.reason.data, actor=current_user)
    except mail_service.MailActionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash("Message discarded; it stays listed under “Discarded”.", "success")
    if message.quarantine_reason is not None:
        return redirect(url_for("admin.quarantine"))
    return redirect(url_for("admin.unrouted"))


@bp.route("/mail/<int:message_id>/raw")
def raw_message(message_id: int):
    """The message exactly as received, as a download (never rendered)."""
    message = _load_waiting(message_id)
    raw = message.raw
    if raw is None:
        abort(404)
    return download(raw, filename=f"message-{message.id}.eml")


# --- quarantined -------------------------------------------------------------------------


@bp.route("/quarantine")
def quarantine():
    messages, total = mail_service.list_quarantined()
    return render_template("admin/mail/quarantine.html", messages=messages, total=total)


def _render_quarantined(message: Message, *, discard_form=None, status=200):
    if message.quarantine_reason is None:
        return redirect(url_for("admin.unrouted_detail", message_id=message.id))
    raw = message.raw or b""
    # The header block only, as text: enough to recognise the mail, nothing rendered.
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:8192]
    return (
        render_template(
            "admin/mail/quarantine_detail.html",
            message=message,
            head=head.decode("utf-8", "replace"),
            action_form=ActionForm(formdata=None),
            discard_form=discard_form or DiscardForm(formdata=None),
        ),
        status,
    )


@bp.route("/quarantine/<int:message_id>")
def quarantine_detail(message_id: int):
    return _render_quarantined(_load_waiting(message_id))


@bp.route("/quarantine/<int:message_id>/retry", methods=["POST"])
def quarantine_retry(message_id: int):
    message = _load_waiting(message_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    config = current_app.config
    try:
        result = mail_service.retry_parsing(
            message,
            actor=current_user,
            inbound_domain=config["INBOUND_DOMAIN"],
            max_attachment_bytes=config["MAX_ATTACHMENT_BYTES"],
            time_limit=config["INGEST_PARSE_SECONDS"],
        )
    except mail_service.MailActionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.quarantine"))
    db.session.commit()
    if result.outcome == "stored":
        flash("Parsed and threaded: the message is now in its channel's thread.", "success")
        return redirect(url_for("inbox.thread_detail", thread_id=result.message.thread_id))
    if result.outcome == "unrouted":
        flash("Parsed, but it is for no known channel: it now waits as unrouted.", "success")
        return redirect(url_for("admin.unrouted_detail", message_id=result.message.id))
    if result.outcome == "duplicate":
        flash("Parsed: the same message is already stored, so this copy is discarded.", "success")
        return redirect(url_for("admin.quarantine"))
    flash(f"Still cannot be parsed: {result.reason}", "error")
    return redirect(url_for("admin.quarantine_detail", message_id=result.message.id))
