"""Admin pages: mailboxes (add, edit, disable, test connection) and ingestion health.

Also feeds the "ingestion stalled" banner shown on every admin page.
"""

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from portal import oauth_client
from portal.admin import bp
from portal.admin.ops_forms import (
    ActionForm,
    HttpMailboxForm,
    ImapMailboxForm,
    MaildirMailboxForm,
)
from portal.extensions import db
from portal.models import Mailbox
from portal.services import health as health_service
from portal.services import http_ingress
from portal.services import mailbox_config as mailbox_service


@bp.context_processor
def ingest_health_banner():
    # A callable, so the query runs only when a page actually shows the banner.
    def ingest_staleness():
        return health_service.ingestion_staleness(poll_seconds=current_app.config["POLL_SECONDS"])

    return {"ingest_staleness": ingest_staleness}


def _load(mailbox_id: int) -> Mailbox:
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None:
        abort(404)
    return mailbox


@bp.route("/mailboxes")
def mailboxes():
    rows = health_service.list_mailbox_health()
    return render_template(
        "admin/mailboxes/index.html",
        rows=rows,
        settings_of=mailbox_service.public_settings,
        security_labels=mailbox_service.SECURITY_LABELS,
    )


def _imap_settings(form: ImapMailboxForm):
    return mailbox_service.imap_settings(
        host=form.host.data,
        port=form.port.data,
        security=form.security.data,
        username=form.username.data,
        folder=form.folder.data,
        processed_folder=form.processed_folder.data,
        ca_file=form.ca_file.data,
        verify=not form.skip_verify.data,
    )


def _settings_from(form):
    if isinstance(form, ImapMailboxForm):
        return _imap_settings(form)
    return mailbox_service.maildir_settings(path=form.path.data)


def _oauth_available() -> bool:
    """A provider's client is configured: an IMAP mailbox may be saved without a password
    and connected with "Connect …" next (Microsoft 365 has no IMAP passwords)."""
    return any(
        oauth_client.provider_settings(current_app.config, key) is not None
        for key in oauth_client.PROVIDERS
    )


def _render_form(form, *, kind: str, mailbox: Mailbox | None = None, status: int = 200):
    return (
        render_template("admin/mailboxes/form.html", form=form, kind=kind, mailbox=mailbox),
        status,
    )


@bp.route("/mailboxes/new/<any(imap, maildir):kind>", methods=["GET", "POST"])
def mailbox_new(kind: str):
    form = (
        ImapMailboxForm(oauth_available=_oauth_available())
        if kind == "imap"
        else MaildirMailboxForm()
    )
    if form.validate_on_submit():
        try:
            mailbox = mailbox_service.create_mailbox(
                actor=current_user,
                name=form.name.data,
                settings=_settings_from(form),
                password=form.password.data if kind == "imap" else None,
                is_enabled=form.is_enabled.data,
                connect_later=kind == "imap" and _oauth_available(),
            )
        except mailbox_service.MailboxConfigError as exc:
            db.session.rollback()
            form.name.errors.append(str(exc))
        else:
            db.session.commit()
            flash(f"Mailbox “{mailbox.name}” added. Test its connection below.", "success")
            return redirect(url_for("admin.mailboxes", _anchor=f"mailbox-{mailbox.id}"))
    return _render_form(form, kind=kind, status=422 if form.errors else 200)


@bp.route("/mailboxes/new-http", methods=["GET", "POST"])
def mailbox_new_http():
    form = HttpMailboxForm()
    if form.validate_on_submit():
        try:
            new = http_ingress.create_http_mailbox(
                actor=current_user,
                name=form.name.data,
                provider=form.provider.data,
                signing_key=form.signing_key.data,
            )
            new.mailbox.is_enabled = form.is_enabled.data
        except mailbox_service.MailboxConfigError as exc:
            db.session.rollback()
            form.name.errors.append(str(exc))
        else:
            db.session.commit()
            # Shown once: only the token's hash is kept.
            response = current_app.make_response(
                render_template(
                    "admin/mailboxes/http_created.html",
                    mailbox=new.mailbox,
                    provider=form.provider.data,
                    url=url_for("inbound.deliver", token=new.token, _external=True),
                    signing_key=new.signing_key,
                )
            )
            response.headers["Cache-Control"] = "no-store"
            return response
    return (
        render_template("admin/mailboxes/http_form.html", form=form),
        422 if form.errors else 200,
    )


@bp.route("/mailboxes/<int:mailbox_id>/edit", methods=["GET", "POST"])
def mailbox_edit(mailbox_id: int):
    mailbox = _load(mailbox_id)
    if mailbox_service.is_from_environment(mailbox):
        flash("This mailbox comes from MAIL_SOURCE: change that setting instead.", "warning")
        return redirect(url_for("admin.mailboxes"))
    current = mailbox_service.public_settings(mailbox)
    kind = current.kind
    if kind == "http":
        flash(
            "An HTTP mailbox has nothing to edit: disable it, or remove it and add a new one "
            "for a new address or key.",
            "warning",
        )
        return redirect(url_for("admin.mailboxes", _anchor=f"mailbox-{mailbox.id}"))
    if kind == "imap":
        form = ImapMailboxForm(
            mailbox=mailbox,
            password_on_file=mailbox.password_encrypted is not None
            or mailbox_service.is_connected(mailbox),
            oauth_available=_oauth_available(),
            data={
                "name": mailbox.name,
                "is_enabled": mailbox.is_enabled,
                "host": current.host,
                "security": current.security,
                "port": current.port,
                "username": current.username,
                "folder": current.folder,
                "processed_folder": current.processed_folder or "",
                "ca_file": current.ca_file or "",
                "skip_verify": not current.verify,
            },
        )
    else:
        form = MaildirMailboxForm(
            mailbox=mailbox,
            data={"name": mailbox.name, "is_enabled": mailbox.is_enabled, "path": current.path},
        )
    if form.validate_on_submit():
        try:
            mailbox_service.update_mailbox(
                mailbox,
                actor=current_user,
                name=form.name.data,
                settings=_settings_from(form),
                password=form.password.data if kind == "imap" else None,
                is_enabled=form.is_enabled.data,
                connect_later=kind == "imap" and _oauth_available(),
            )
        except mailbox_service.MailboxConfigError as exc:
            db.session.rollback()
            form.name.errors.append(str(exc))
        else:
            db.session.commit()
            flash(f"Mailbox “{mailbox.name}” saved.", "success")
            return redirect(url_for("admin.mailboxes", _anchor=f"mailbox-{mailbox.id}"))
    return _render_form(form, kind=kind, mailbox=mailbox, status=422 if form.errors else 200)


@bp.route("/mailboxes/<int:mailbox_id>/<any(enable, disable):action>", methods=["POST"])
def mailbox_set_enabled(mailbox_id: int, action: str):
    mailbox = _load(mailbox_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    enabled = action == "enable"
    if mailbox_service.set_mailbox_enabled(mailbox, enabled, actor=current_user):
        db.session.commit()
        flash(
            f"Mailbox “{mailbox.name}” {'enabled: polled at the next pass' if enabled else 'disabled: no longer polled'}.",
            "success",
        )
    return redirect(url_for("admin.mailboxes", _anchor=f"mailbox-{mailbox.id}"))


@bp.route("/mailboxes/<int:mailbox_id>/test", methods=["POST"])
def mailbox_test(mailbox_id: int):
    mailbox = _load(mailbox_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    check = mailbox_service.check_connection(mailbox)
    if check.ok:
        flash(f"“{mailbox.name}”: connection works. {check.message}", "success")
    else:
        flash(f"“{mailbox.name}”: connection failed. {check.message}", "error")
    return redirect(url_for("admin.mailboxes", _anchor=f"mailbox-{mailbox.id}"))


@bp.route("/health")
def health():
    return render_template(
        "admin/mailboxes/health.html",
        rows=health_service.list_mailbox_health(),
        staleness=health_service.ingestion_staleness(
            poll_seconds=current_app.config["POLL_SECONDS"]
        ),
        attention=health_service.attention_counts(),
        poll_seconds=current_app.config["POLL_SECONDS"],
    )
