from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import NotFound

from portal.canned.forms import CannedReplyForm, DeleteCannedReplyForm
from portal.extensions import db
from portal.models import CannedReply, Role, Thread
from portal.security import get_visible_or_404
from portal.services import canned as canned_service
from portal.services.compliance import check_reply
from portal.sqltypes import parse_id

bp = Blueprint("canned", __name__, url_prefix="/canned-replies")


def _load(reply_id: int, *, manage: bool = False) -> CannedReply:
    # 404 for another tenant's reply; 403 for one the user sees but may not change
    # (a global reply, for sellers and agents).
    reply = canned_service.get_visible_canned_reply(reply_id, current_user)
    if reply is None:
        abort(404)
    if manage and not canned_service.can_manage_canned_replies(current_user, reply.organisation_id):
        abort(403)
    return reply


def _apply_service_errors(form, exc: canned_service.CannedReplyError) -> None:
    for name, problems in exc.field_problems.items():
        getattr(form, name).errors.extend(problems)


def _flash_compliance(reply: CannedReply) -> None:
    warnings = check_reply(reply.body)
    if warnings:
        flash(
            "Check this text before using it: " + " ".join(w.message for w in warnings),
            "warning",
        )


@bp.route("")
@login_required
def index():
    replies = canned_service.list_canned_replies_for(current_user)
    manageable = {
        r.id
        for r in replies
        if canned_service.can_manage_canned_replies(current_user, r.organisation_id)
    }
    can_create = current_user.role == Role.ADMIN or bool(
        canned_service.manageable_organisations(current_user)
    )
    return render_template(
        "canned/index.html",
        replies=replies,
        organisation_names=canned_service.organisation_names(replies),
        manageable=manageable,
        can_create=can_create,
    )


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    organisations = canned_service.manageable_organisations(current_user)
    allow_global = current_user.role == Role.ADMIN
    if not organisations and not allow_global:
        abort(403)
    form = CannedReplyForm(organisations=organisations, allow_global=allow_global)
    if form.validate_on_submit():
        try:
            reply = canned_service.create_canned_reply(
                organisation=form.selected_organisation(),
                title=form.title.data,
                body=form.body.data,
                actor=current_user,
            )
        except canned_service.CannedReplyError as exc:
            db.session.rollback()
            _apply_service_errors(form, exc)
        else:
            db.session.commit()
            flash(f'Canned reply "{reply.title}" saved.', "success")
            _flash_compliance(reply)
            return redirect(url_for("canned.index"))
    return render_template("canned/form.html", form=form, reply=None, organisation_name=None)


@bp.route("/<int:reply_id>/edit", methods=["GET", "POST"])
@login_required
def edit(reply_id: int):
    reply = _load(reply_id, manage=True)
    form = CannedReplyForm(obj=reply, reply=reply)
    if form.validate_on_submit():
        try:
            canned_service.update_canned_reply(
                reply, title=form.title.data, body=form.body.data, actor=current_user
            )
        except canned_service.CannedReplyError as exc:
            db.session.rollback()
            _apply_service_errors(form, exc)
        else:
            db.session.commit()
            flash(f'Canned reply "{reply.title}" saved.', "success")
            _flash_compliance(reply)
            return redirect(url_for("canned.index"))
    names = canned_service.organisation_names([reply])
    return render_template(
        "canned/form.html",
        form=form,
        reply=reply,
        organisation_name=names.get(reply.organisation_id),
        delete_form=DeleteCannedReplyForm(formdata=None),
    )


@bp.route("/<int:reply_id>/delete", methods=["POST"])
@login_required
def delete(reply_id: int):
    reply = _load(reply_id, manage=True)
    if not DeleteCannedReplyForm().validate_on_submit():
        abort(400)
    title = reply.title
    canned_service.delete_canned_reply(reply, actor=current_user)
    db.session.commit()
    flash(f'Canned reply "{title}" deleted.', "success")
    return redirect(url_for("canned.index"))


def _json_not_found():
    # The same answer whether the reply, the thread or their pairing is the problem.
    return jsonify(error="Not found."), 404


@bp.route("/<int:reply_id>/render")
@login_required
def render(reply_id: int):
    """The reply's text filled in for one thread, for the composer to insert."""
    reply = canned_service.get_visible_canned_reply(reply_id, current_user)
    if reply is None:
        return _json_not_found()
    thread_id = parse_id(request.args.get("thread_id"))
    if thread_id is None:
        return jsonify(error="thread_id is required."), 400
    try:
        thread = get_visible_or_404(Thread, thread_id, current_user)
    except NotFound:
        return _json_not_found()
    # One seller's reply must never be used on another seller's thread.
    if reply.organisation_id not in (None, thread.organisation_id):
        return _json_not_found()
    context = canned_service.context_for_thread(thread, current_user)
    try:
        text = canned_service.render_canned(reply.body, **context)
    except canned_service.CannedReplyError as exc:
        return jsonify(error=str(exc)), 422
    warnings = [
        {"code": w.code, "message": w.message, "excerpt": w.excerpt} for w in check_reply(text)
    ]
    # The order's placeholders this thread has no value for stay in the text: the
    # composer flags them, and a reply still holding one is refused.
    response = jsonify(
        text=text, warnings=warnings, unfilled=canned_service.unfilled_placeholders(text)
    )
    response.headers["Cache-Control"] = "no-store"
    return response
