import base64
import hashlib
from datetime import UTC

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    get_template_attribute,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import selectinload, undefer
from wtforms import SelectChoice

from portal.amazon_api import api_settings
from portal.downloads import download
from portal.extensions import db
from portal.html import sanitize_email_html
from portal.inbox.badges import STATUS_BADGES, answer_due
from portal.inbox.forms import (
    AssignForm,
    BulkForm,
    DiscardDraftForm,
    DraftForm,
    InboxFilterForm,
    NoResponseForm,
    NoteForm,
    PresenceForm,
    RefreshOrderForm,
    RemoveTagForm,
    ReplyForm,
    ReviewRequestForm,
    SnoozeForm,
    StatusForm,
    TagForm,
)
from portal.inbox.order_panel import REFRESH_MESSAGES, build_order_panel, review_result_message
from portal.inbox.rows import render_rows
from portal.marketplaces import MARKETPLACES
from portal.models import (
    Attachment,
    Message,
    Role,
    Tag,
    Thread,
    ThreadStatus,
    User,
)
from portal.security import get_visible_or_404
from portal.services import bulk as bulk_service
from portal.services import buyer_history as buyer_history_service
from portal.services import canned as canned_service
from portal.services import drafts as draft_service
from portal.services import inbox as inbox_service
from portal.services import orders as order_service
from portal.services import outbox as outbox_service
from portal.services import outbox_delivery
from portal.services import presence as presence_service
from portal.services import threads as thread_service
from portal.services.audit import record_event
from portal.services.compliance import check_reply
from portal.services.inbox import watch as live_watch
from portal.services.spapi import settings_for_channel
from portal.sqltypes import parse_id
from portal.templating import format_datetime

bp = Blueprint("inbox", __name__)

#: Served inline only for raster images a browser cannot mistake for a document.
_INLINE_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
_MAX_INLINE_IMAGE = 2 * 1024 * 1024


def _can_work(thread: Thread) -> bool:
    """Agents and admins work threads; sellers read them."""
    return current_user.role in (Role.AGENT, Role.ADMIN)


def _can_reply(thread: Thread) -> bool:
    """Agents and admins reply; sellers only when their organisation allows it."""
    return _can_work(thread) or (
        current_user.role == Role.SELLER and thread.channel.organisation.sellers_can_reply
    )


def _load_thread(thread_id: int, *, work: bool = False) -> Thread:
    thread = get_visible_or_404(Thread, thread_id, current_user)
    if work and not _can_work(thread):
        abort(403)
    return thread


def _filter_choices(form: InboxFilterForm) -> inbox_service.FilterOptions:
    # Plain (value, label) pairs: the inbox renders them with templating.plain_select,
    # which needs nothing more and costs less than WTForms' choice objects.
    options = inbox_service.filter_options(current_user)
    form.organisation.choices = [("", "All")] + [
        (str(org_id), name) for org_id, name in options.organisations
    ]
    show_org = len(options.organisations) > 1
    form.channel.choices = [("", "All")] + [
        (str(c.id), c.marketplace + (f" · {c.organisation}" if show_org else ""))
        for c in options.channels
    ]
    used = {c.marketplace_code for c in options.channels}
    form.marketplace.choices = [("", "All")] + [
        (m.code, m.name) for m in MARKETPLACES if m.code in used
    ]
    return options


def _int_or_none(value):
    # Ids from the query string: junk or numbers too big for the database mean "none".
    return parse_id(value)


@bp.route("/inbox")
@login_required
def index():
    return _render_inbox()


def _inbox_query(form: InboxFilterForm) -> inbox_service.InboxQuery:
    """The inbox's query from its filter form (the query string): the page's and the
    live updates' alike."""
    return inbox_service.InboxQuery(
        status=form.status.data if form.status.data in inbox_service.STATUS_FILTERS else "open",
        channel_id=_int_or_none(form.channel.data),
        marketplace=form.marketplace.data or None,
        organisation_id=_int_or_none(form.organisation.data),
        assignee=form.assignee.data
        if form.assignee.data in inbox_service.ASSIGNEE_FILTERS
        else "anyone",
        tag=(form.tag.data or "").strip() or None,
        q=(form.q.data or "")[:200],
        sort=form.sort.data if form.sort.data in inbox_service.SORTS else "activity",
        cursor=request.args.get("after") or None,
    )


def _thread_url_prefix() -> str:
    # One url_for for the page; each row's link is this prefix and its id.
    return url_for("inbox.thread_detail", thread_id=0).removesuffix("0")


def _render_inbox(*, bulk_form: BulkForm | None = None, status: int = 200):
    form = InboxFilterForm(request.args)
    options = _filter_choices(form)
    query = _inbox_query(form)
    # Before the rows, as in live(): a change made meanwhile shows at the first poll.
    live_etag = _live_etag(inbox_service.change_token(current_user))
    page = inbox_service.list_inbox(current_user, query, options=options)
    thread_url = _thread_url_prefix()
    args = {k: v for k, v in request.args.items() if k != "after" and v}
    next_url = url_for("inbox.index", **args, after=page.next_cursor) if page.next_cursor else None
    first_url = url_for("inbox.index", **args) if query.cursor else None
    show_org = len(form.organisation.choices) > 2
    if bulk_form is None and _may_bulk():
        bulk_form = BulkForm(formdata=None)
        _bulk_choices(bulk_form, options)
    selected = (
        frozenset(parse_id(v) for v in (bulk_form.thread_ids.data or []))
        if bulk_form
        else frozenset()
    )
    return (
        render_template(
            "inbox/index.html",
            form=form,
            page=page,
            rows_html=render_rows(
                page.rows,
                thread_url,
                show_org,
                selectable=bulk_form is not None,
                selected=selected,
            ),
            next_url=next_url,
            first_url=first_url,
            show_org=show_org,
            bulk_form=bulk_form,
            live_url=url_for("inbox.live", **request.args),
            live_etag=live_etag,
            nav_counts=inbox_service.nav_counts(current_user),
        ),
        status,
    )


# --- live updates ------------------------------------------------------------------------


def _live_etag(token: str) -> str:
    # Per user: the token is the user's scope's, and the rows are rendered for the user.
    return hashlib.sha256(f"{current_user.id}:{token}".encode()).hexdigest()[:32]


@bp.route("/inbox/live")
@login_required
def live():
    """What an open inbox (static/js/live.js) asks again and again: 304 while nothing
    it may see has changed (with ?wait=N held up to N s first), else its rows (the same
    filters, sort and page) and the navigation's counts."""
    # The token before the rows: a change in between shows at the next poll. With
    # ?wait=N, held while it matches the page's (static/js/live.js long-polls).
    wait = live_watch.parse_wait(request.args.get("wait"))
    etag = live_watch.check_and_hold(
        current_app._get_current_object(),
        wait,
        lambda: _live_etag(inbox_service.change_token(current_user)),
        lambda etag: etag in request.if_none_match,
    )
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        form = InboxFilterForm(request.args)
        options = _filter_choices(form)
        page = inbox_service.list_inbox(current_user, _inbox_query(form), options=options)
        rows_html = render_rows(
            page.rows,
            _thread_url_prefix(),
            len(form.organisation.choices) > 2,
            selectable=_may_bulk(),
        )
        counts = inbox_service.nav_counts(current_user)
        response = jsonify(
            rows=str(rows_html),
            ids=[row.id for row in page.rows],
            counts={
                "mine_open": counts.mine_open,
                "unassigned": counts.unassigned,
                "due_soon": counts.due_soon,
            },
        )
    response.set_etag(etag)
    # Revalidated every time, and never kept by a shared cache.
    response.headers["Cache-Control"] = "private, no-cache"
    _mark_wait(response, wait)
    return response


def _mark_wait(response: Response, wait: float) -> None:
    if wait > 0:
        # Tells live.js this server holds requests, so it asks again at once.
        response.headers["X-Live-Wait"] = f"{wait:g}"
        # A proxy (nginx) passes the answer on unbuffered.
        response.headers["X-Accel-Buffering"] = "no"


# --- bulk actions ----------------------------------------------------------------------


def _may_bulk() -> bool:
    return current_user.role in (Role.AGENT, Role.ADMIN)


def _bulk_choices(form: BulkForm, options: inbox_service.FilterOptions) -> dict[str, User]:
    """Sets who the bulk form may assign to; returns them by the form's value."""
    people = {
        str(u.id): u
        for u in thread_service.assignable_users_of([org_id for org_id, _ in options.organisations])
    }
    form.assignee.choices = [("me", "Me"), ("", "Nobody")] + [
        (key, u.display_name) for key, u in people.items() if u.id != current_user.id
    ]
    return people


@bp.route("/inbox/bulk", methods=["POST"])
@login_required
def bulk():
    """One action on the threads ticked in the inbox; back to the same inbox view."""
    if not _may_bulk():
        abort(403)
    form = BulkForm()
    people = _bulk_choices(form, inbox_service.filter_options(current_user))
    if not form.validate_on_submit():
        return _render_inbox(bulk_form=form, status=422)
    ids = form.selected_ids()
    threads = bulk_service.visible_threads(ids, current_user)
    if len(threads) != len(ids):
        # Refused whole: a thread the user may not see is never acted on, and the
        # message is the same whether it exists or not.
        form.thread_ids.errors.append(
            "A selected thread is not in your inbox (any more): nothing was changed."
        )
        return _render_inbox(bulk_form=form, status=422)
    action = form.action.data
    key = str(current_user.id) if form.assignee.data == "me" else form.assignee.data
    if action == "assign" and key and key not in people:
        form.assignee.errors.append("Choose someone from the list.")
        return _render_inbox(bulk_form=form, status=422)
    assignee = people[key] if action == "assign" and key else None
    try:
        changed = bulk_service.apply_bulk(
            threads, action, actor=current_user, assignee=assignee, tag=form.tag.data or ""
        )
    except thread_service.ThreadActionError as exc:
        db.session.rollback()
        (form.tag if action == "tag" else form.assignee).errors.append(str(exc))
        return _render_inbox(bulk_form=form, status=422)
    db.session.commit()
    flash(
        f"{bulk_service.ACTIONS[action]}: {changed} of {len(threads)} selected thread(s) changed.",
        "success",
    )
    return redirect(url_for("inbox.index", **request.args))


@bp.route("/threads/<int:thread_id>")
@login_required
def thread_detail(thread_id: int):
    thread = _load_thread(thread_id)
    return _render_thread(thread)


def _render_thread(thread: Thread, *, status: int = 200, **forms):
    messages = list(
        db.session.scalars(
            select(Message)
            .where(Message.thread_id == thread.id)
            .order_by(Message.created_at, Message.id)
            # The page shows every message's texts, attachments and author: load them
            # in a fixed number of queries, however long the thread.
            .options(
                undefer(Message.text_body),
                undefer(Message.visible_text),
                undefer(Message.html_body),
                selectinload(Message.attachments),
                selectinload(Message.author),
            )
        )
    )
    assign_form = forms.get("assign_form") or AssignForm(formdata=None)
    assign_form.assignee.choices = [SelectChoice("", "Nobody")] + [
        SelectChoice(str(u.id), u.display_name) for u in thread_service.assignable_users(thread)
    ]
    assign_form.assignee.data = str(thread.assignee_id or "")
    status_form = forms.get("status_form") or StatusForm(formdata=None, status=thread.status.value)
    draft = draft_service.get_draft(current_user, thread) if _can_reply(thread) else None
    reply_form = forms.get("reply_form") or ReplyForm(
        formdata=None,
        body=_canned_text(thread) or (draft.body if draft else ""),
        seen=str(presence_service.newest_message_id(thread)),
    )
    asins = thread_service.asins_in(
        "\n".join(m.text_body for m in messages if not m.is_internal_note)
    )
    deadline = thread_service.response_deadline(thread)
    newest_id = max((m.id for m in messages), default=0)
    return (
        render_template(
            "inbox/thread.html",
            thread=thread,
            messages=messages,
            newest_id=newest_id,
            live_etag=_thread_etag(thread, newest_id),
            deadline=deadline,
            due=answer_due(deadline, thread_service.utcnow()),
            status_badge=STATUS_BADGES[thread.status],
            asins=asins,
            order_panel=_order_panel(thread),
            refresh_order_form=RefreshOrderForm(formdata=None),
            review_request_form=ReviewRequestForm(formdata=None),
            buyer_history=buyer_history_service.buyer_history(thread, current_user),
            history_limit=buyer_history_service.HISTORY_LIMIT,
            status_badges=STATUS_BADGES,
            can_work=_can_work(thread),
            show_images=request.args.get("images") == "1",
            status_form=status_form,
            assign_form=assign_form,
            tag_form=forms.get("tag_form") or TagForm(formdata=None),
            remove_tag_form=RemoveTagForm(formdata=None),
            note_form=forms.get("note_form") or NoteForm(formdata=None),
            no_response_form=NoResponseForm(formdata=None),
            snooze_form=forms.get("snooze_form") or SnoozeForm(formdata=None),
            no_response_marks=thread_service.no_response_marks(thread),
            can_reply=_can_reply(thread),
            reply_form=reply_form,
            draft=draft,
            collision=forms.get("collision"),
            present=presence_service.others_present(
                current_user, thread, now=thread_service.utcnow()
            ),
            compliance_warnings=forms.get("compliance_warnings") or [],
            unfilled_placeholders=canned_service.unfilled_placeholders(reply_form.body.data),
            canned_replies=canned_service.list_canned_replies_for(
                current_user, organisation_id=thread.organisation_id
            )
            if _can_reply(thread)
            else [],
        ),
        status,
    )


def _thread_etag(thread: Thread, newest_id: int) -> str:
    return hashlib.sha256(f"{current_user.id}:{thread.id}:{newest_id}".encode()).hexdigest()[:32]


@bp.route("/threads/<int:thread_id>/live")
@login_required
def thread_live(thread_id: int):
    """What an open thread page (static/js/live.js) asks again and again: 304 while
    the thread has no new message (with ?wait=N held up to N s first), else the messages after ?after= rendered as the page
    renders them. A thread the user may not open is a 404, as its page is."""
    wait = live_watch.parse_wait(request.args.get("wait"))

    def check() -> tuple[Thread, int, str]:
        # The whole check again after each wake: the user may have lost the thread.
        thread = _load_thread(thread_id)
        newest_id = inbox_service.newest_message_id(thread)
        return thread, newest_id, _thread_etag(thread, newest_id)

    thread, newest_id, etag = live_watch.check_and_hold(
        current_app._get_current_object(),
        wait,
        check,
        lambda answer: answer[2] in request.if_none_match,
    )
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        after = parse_id(request.args.get("after")) or 0
        messages = inbox_service.messages_after(thread, after)
        render = get_template_attribute("inbox/_message.html", "render_message")
        marks = thread_service.no_response_marks(thread)
        response = jsonify(
            messages=[
                {
                    "id": m.id,
                    "html": str(render(m, thread, marks, False)),
                    "from": m.author.display_name
                    if m.is_internal_note and m.author
                    else (m.from_name or m.from_address),
                    "note": m.is_internal_note,
                }
                for m in messages
            ],
            newest=newest_id,
        )
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    _mark_wait(response, wait)
    return response


def _order_panel(thread: Thread):
    channel = thread.channel
    offered = settings_for_channel(current_app.config, channel) is not None
    return build_order_panel(
        thread,
        viewer=current_user,
        can_work=_can_work(thread),
        authorise_url=url_for("channels.detail", channel_id=channel.id, _anchor="step-1")
        if offered
        else None,
        fetching_configured=api_settings(current_app.config) is not None,
        purge_days=current_app.config["ORDER_DATA_DAYS"],
        now=thread_service.utcnow(),
    )


def _canned_text(thread: Thread) -> str:
    """A canned reply picked without JavaScript (?canned=ID), filled in for this thread."""
    reply_id = parse_id(request.args.get("canned"))
    if reply_id is None or not _can_reply(thread):
        return ""
    reply = canned_service.get_visible_canned_reply(reply_id, current_user)
    if reply is None or reply.organisation_id not in (None, thread.organisation_id):
        return ""
    context = canned_service.context_for_thread(thread, current_user)
    try:
        return canned_service.render_canned(reply.body, **context)
    except canned_service.CannedReplyError:
        return ""


def _message_of(thread: Thread, message_id: int) -> Message:
    message = db.session.get(Message, message_id)
    if message is None or message.thread_id != thread.id:
        abort(404)
    return message


@bp.route("/threads/<int:thread_id>/messages/<int:message_id>/html")
@login_required
def message_html(thread_id: int, message_id: int):
    """The sanitised HTML body, as its own sandboxed document for an <iframe>."""
    thread = _load_thread(thread_id)
    message = _message_of(thread, message_id)
    if not message.html_body:
        abort(404)
    inline = {}
    for attachment in message.attachments:
        if (
            attachment.content_id
            and attachment.content_type in _INLINE_IMAGE_TYPES
            and not attachment.is_skipped
            and attachment.size <= _MAX_INLINE_IMAGE
        ):
            # data: URLs, because a sandboxed (opaque-origin) frame sends no cookies.
            inline[attachment.content_id] = _data_url(attachment)
    allow_remote = request.args.get("images") == "1"
    safe = sanitize_email_html(
        message.html_body, inline_images=inline, allow_remote_images=allow_remote
    )
    body = render_template("inbox/message_frame.html", body=safe)
    response = Response(body, mimetype="text/html")
    img_src = "data: https: http:" if allow_remote else "data:"
    # Even opened on its own, this document runs no script and loads nothing but images.
    response.headers["Content-Security-Policy"] = (
        f"sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
        f"img-src {img_src}; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/threads/<int:thread_id>/messages/<int:message_id>/original")
@login_required
def message_original(thread_id: int, message_id: int):
    """The mail exactly as received, as a download (never rendered): the whole of a body
    the thread page shows only the start of."""
    thread = _load_thread(thread_id)
    message = _message_of(thread, message_id)
    raw = message.raw
    if raw is None:
        flash(
            "The original of this mail is no longer kept: Sellerdesk removes original mail "
            f"{current_app.config['RAW_RETENTION_DAYS']} days after its conversation is closed.",
            "error",
        )
        return _back(thread, anchor=f"m{message.id}")
    return download(raw, filename=f"message-{message.id}.eml")


def _data_url(attachment: Attachment) -> str:
    data = db.session.scalar(select(Attachment.data).where(Attachment.id == attachment.id)) or b""
    return f"data:{attachment.content_type};base64,{base64.b64encode(data).decode()}"


@bp.route("/threads/<int:thread_id>/attachments/<int:attachment_id>")
@login_required
def attachment(thread_id: int, attachment_id: int):
    thread = _load_thread(thread_id)
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None or attachment.message.thread_id != thread.id or attachment.is_skipped:
        abort(404)
    data = db.session.scalar(select(Attachment.data).where(Attachment.id == attachment.id)) or b""
    # Always a download, never rendered: the type is the sender's claim, not ours.
    return download(data, filename=attachment.filename)


def _back(thread: Thread, anchor: str | None = None):
    return redirect(url_for("inbox.thread_detail", thread_id=thread.id, _anchor=anchor))


@bp.route("/threads/<int:thread_id>/status", methods=["POST"])
@login_required
def change_status(thread_id: int):
    thread = _load_thread(thread_id, work=True)
    form = StatusForm()
    if not form.validate_on_submit():
        return _render_thread(thread, status=422, status_form=form)
    if thread_service.set_thread_status(thread, ThreadStatus(form.status.data), actor=current_user):
        db.session.commit()
        flash(f"Thread marked {form.status.data}.", "success")
    return _back(thread)


@bp.route("/threads/<int:thread_id>/snooze", methods=["POST"])
@login_required
def snooze(thread_id: int):
    thread = _load_thread(thread_id, work=True)
    form = SnoozeForm()
    if form.validate_on_submit():
        until = form.until.data.replace(tzinfo=UTC)
        try:
            thread_service.snooze_thread(thread, until, actor=current_user)
        except thread_service.ThreadActionError as exc:
            db.session.rollback()
            form.until.errors.append(str(exc))
        else:
            db.session.commit()
            flash(f"Pending until {format_datetime(until)}.", "success")
            return _back(thread)
    return _render_thread(thread, status=422, snooze_form=form)


@bp.route("/threads/<int:thread_id>/assign", methods=["POST"])
@login_required
def assign(thread_id: int):
    thread = _load_thread(thread_id, work=True)
    form = AssignForm()
    people = {str(u.id): u for u in thread_service.assignable_users(thread)}
    # "me" is the one-click "Assign to me" button.
    form.assignee.choices = [SelectChoice("", "Nobody"), SelectChoice("me", "Me")] + [
        SelectChoice(key, u.display_name) for key, u in people.items()
    ]
    if not form.validate_on_submit():
        return _render_thread(thread, status=422, assign_form=form)
    key = str(current_user.id) if form.assignee.data == "me" else form.assignee.data
    assignee = db.session.get(User, int(key)) if key else None
    try:
        changed = thread_service.assign_thread(thread, assignee, actor=current_user)
    except thread_service.ThreadActionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _back(thread)
    db.session.commit()
    if changed:
        flash(f"Assigned to {assignee.display_name}." if assignee else "Unassigned.", "success")
    return _back(thread)


@bp.route("/threads/<int:thread_id>/tags", methods=["POST"])
@login_required
def add_tag(thread_id: int):
    thread = _load_thread(thread_id, work=True)
    form = TagForm()
    if form.validate_on_submit():
        try:
            thread_service.add_tag(thread, form.name.data, actor=current_user)
        except thread_service.ThreadActionError as exc:
            db.session.rollback()
            form.name.errors.append(str(exc))
        else:
            db.session.commit()
            return _back(thread)
    return _render_thread(thread, status=422, tag_form=form)


@bp.route("/threads/<int:thread_id>/tags/<int:tag_id>/remove", methods=["POST"])
@login_required
def remove_tag(thread_id: int, tag_id: int):
    thread = _load_thread(thread_id, work=True)
    form = RemoveTagForm()
    tag = db.session.get(Tag, tag_id)
    if (
        not form.validate_on_submit()
        or tag is None
        or tag.organisation_id != thread.organisation_id
    ):
        abort(404)
    thread_service.remove_tag(thread, tag, actor=current_user)
    db.session.commit()
    return _back(thread)


@bp.route("/threads/<int:thread_id>/notes", methods=["POST"])
@login_required
def add_note(thread_id: int):
    thread = _load_thread(thread_id, work=True)
    form = NoteForm()
    if not form.validate_on_submit():
        return _render_thread(thread, status=422, note_form=form)
    note = thread_service.add_internal_note(thread, form.text.data, actor=current_user)
    db.session.commit()
    flash("Note added.", "success")
    return _back(thread, anchor=f"m{note.id}")


@bp.route("/threads/<int:thread_id>/no-response-needed", methods=["POST"])
@login_required
def no_response_needed(thread_id: int):
    thread = _load_thread(thread_id, work=True)
    if not NoResponseForm().validate_on_submit():
        abort(400)
    marked = thread_service.mark_no_response_needed(thread, actor=current_user)
    db.session.commit()
    if marked:
        flash(
            f"{len(marked)} buyer message(s) marked no response needed. "
            "Mark them in Seller Central too (see below).",
            "success",
        )
    else:
        flash("No buyer message is awaiting an answer.", "info")
    return _back(thread, anchor="no-response")


@bp.route("/threads/<int:thread_id>/reply", methods=["POST"])
@login_required
def reply(thread_id: int):
    thread = _load_thread(thread_id)
    if not _can_reply(thread):
        abort(403)
    form = ReplyForm(answerable=outbox_service.answerable_message_ids(thread))
    new_files = _uploaded(form.attachments.data)
    if not form.validate_on_submit():
        if not form.csrf_token.errors and ((form.body.data or "").strip() or new_files):
            _keep_draft(thread, form, new_files)
        return _render_thread(thread, status=422, reply_form=form)
    collision = None if form.send_anyway.data else _collision(thread, form)
    if collision:
        _keep_draft(thread, form, new_files)
        # Shown again with what was added: sending now means having seen it.
        form.seen.data = str(presence_service.newest_message_id(thread))
        return _render_thread(thread, status=409, reply_form=form, collision=collision)
    # What was attached earlier (kept in the draft) goes out with what comes now.
    draft = draft_service.get_draft(current_user, thread, with_data=True)
    attachments = draft_service.draft_files(draft) + new_files
    warnings = check_reply(
        form.body.data,
        attachments=[(name, kind, len(data)) for name, kind, data in attachments],
        order_id=thread.order_id,
        is_post_order=bool(thread.order_id),
    )
    if warnings and not form.confirm_warnings.data:
        # Amazon may suppress such a message; let the agent fix it or confirm, with the
        # text and files kept in the draft.
        _keep_draft(thread, form, new_files)
        return _render_thread(thread, status=422, reply_form=form, compliance_warnings=warnings)
    reply_to = _message_of(thread, parse_id(form.reply_to.data)) if form.reply_to.data else None
    try:
        message = outbox_service.queue_reply(
            thread,
            body=form.body.data,
            author=current_user,
            attachments=attachments,
            reply_to=reply_to,
        )
    except outbox_service.ReplyError as exc:
        db.session.rollback()
        _keep_draft(thread, form, new_files)
        form.body.errors = [str(exc)]
        return _render_thread(thread, status=422, reply_form=form)
    if warnings:
        record_event(
            "thread.compliance_confirmed",
            actor=current_user,
            organisation_id=thread.organisation_id,
            target=message,
            details={"warnings": [w.code for w in warnings]},
        )
    status_after = form.status_after()
    # Only those who work threads change their status; a seller's reply just sends.
    if status_after is not None and _can_work(thread):
        thread_service.set_thread_status(thread, status_after, actor=current_user)
    draft_service.discard_draft(current_user, thread)
    db.session.commit()
    # Sent after the commit, so a reply is never sent without being stored; the
    # worker retries whatever this attempt leaves pending.
    if outbox_delivery.deliver_one(message.id):
        flash("Reply sent.", "success")
    else:
        flash(
            "Reply queued: the mail server did not accept it yet. It is retried "
            "automatically; its status shows in the thread.",
            "warning",
        )
    return _back(thread, anchor=f"m{message.id}")


def _collision(thread: Thread, form: ReplyForm) -> str | None:
    """Why to stop a send: another reply or note came after the composer was opened."""
    seen = parse_id(form.seen.data)
    if seen is None:
        return None
    later = presence_service.added_since(thread, seen, reader=current_user)
    if later is None:
        return None
    who = later.author.display_name
    what = "added a note" if later.is_internal_note else "replied"
    return f"{who} {what} at {later.created_at:%H:%M} UTC: read it first."


@bp.route("/threads/<int:thread_id>/presence", methods=["POST"])
@login_required
def presence(thread_id: int):
    """The thread page's heartbeat: records this user, answers who else is here."""
    thread = _load_thread(thread_id)
    form = PresenceForm()
    if not form.validate_on_submit():
        return jsonify(error="Reload the page."), 400
    now = thread_service.utcnow()
    if form.leaving.data:
        presence_service.leave(current_user, thread)
    else:
        presence_service.beat(current_user, thread, writing=form.writing.data, now=now)
    db.session.commit()
    others = presence_service.others_present(current_user, thread, now=now)
    return jsonify(others=[{"name": p.name, "writing": p.is_writing} for p in others])


# --- drafts ----------------------------------------------------------------------------


def _uploaded(files) -> list[tuple[str, str, bytes]]:
    return [
        (f.filename, f.mimetype or "application/octet-stream", f.read())
        for f in files or []
        if f and f.filename
    ]


def _keep_draft(thread: Thread, form, new_files, *, remove=()) -> bool:
    """Save the composer as the user's draft and commit; on refusal the reason goes on
    the form's attachments field and False is returned."""
    try:
        draft_service.save_draft(
            current_user, thread, body=form.body.data or "", add=new_files, remove=remove
        )
    except draft_service.DraftError as exc:
        db.session.rollback()
        form.attachments.errors = [str(exc)]
        return False
    db.session.commit()
    return True


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.route("/threads/<int:thread_id>/draft", methods=["POST"])
@login_required
def save_draft(thread_id: int):
    """The composer's "Save draft" and "Remove" buttons, and its autosave (JSON)."""
    thread = _load_thread(thread_id)
    if not _can_reply(thread):
        abort(403)
    form = DraftForm()
    if not form.validate_on_submit():
        if _wants_json():
            return jsonify(error="The draft could not be saved; reload the page."), 400
        abort(400)
    remove = [parse_id(form.remove_attachment.data)] if form.remove_attachment.data else []
    saved = _keep_draft(thread, form, _uploaded(form.attachments.data), remove=remove)
    if _wants_json():
        if not saved:
            return jsonify(error=form.attachments.errors[0]), 422
        draft = draft_service.get_draft(current_user, thread)
        return jsonify(
            saved_at=format_datetime(draft.updated_at),
            attachments=[
                {"id": a.id, "filename": a.filename, "size": a.size} for a in draft.attachments
            ],
        )
    if not saved:
        reply_form = ReplyForm(formdata=None, body=form.body.data)
        reply_form.attachments.errors = form.attachments.errors
        return _render_thread(thread, status=422, reply_form=reply_form)
    flash("Draft saved.", "success")
    return _back(thread, anchor="composer")


@bp.route("/threads/<int:thread_id>/draft/discard", methods=["POST"])
@login_required
def discard_draft(thread_id: int):
    thread = _load_thread(thread_id)
    if not _can_reply(thread):
        abort(403)
    if not DiscardDraftForm().validate_on_submit():
        abort(400)
    if draft_service.discard_draft(current_user, thread):
        db.session.commit()
        flash("Draft discarded.", "success")
    return _back(thread, anchor="composer")


@bp.route("/threads/<int:thread_id>/order/refresh", methods=["POST"])
@login_required
def refresh_order(thread_id: int):
    """Marks the thread's order due for the worker: the request never waits for Amazon."""
    thread = _load_thread(thread_id)
    if not RefreshOrderForm().validate_on_submit() or not thread.order_id:
        abort(400)
    result = order_service.request_refresh(
        thread.channel, thread.order_id, now=thread_service.utcnow()
    )
    db.session.commit()
    flash(*REFRESH_MESSAGES[result])
    return _back(thread, anchor="order")


@bp.route("/threads/<int:thread_id>/order/review-request", methods=["POST"])
@login_required
def request_review(thread_id: int):
    """Asks Amazon to send the buyer its review request: a user's action, so it calls
    Amazon (with the client's timeout), unlike any page view."""
    thread = _load_thread(thread_id, work=True)
    if not ReviewRequestForm().validate_on_submit() or not thread.order_id:
        abort(400)
    api = order_service.amazon_api(current_app.config, current_app.extensions)
    if api is None:
        flash("Sellerdesk is not set up to call Amazon's API; no review request was sent.", "error")
        return _back(thread, anchor="order")
    failure = order_service.send_review_request(
        thread.channel, thread.order_id, api=api, actor=current_user, now=thread_service.utcnow()
    )
    db.session.commit()
    flash(*review_result_message(failure))
    return _back(thread, anchor="order")
