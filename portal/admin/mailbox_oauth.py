"""Admin pages: "Connect Microsoft 365" / "Connect Google" on an IMAP mailbox (OAuth2 with
PKCE; the flow is described in portal/services/mailbox_oauth.py)."""

from urllib.parse import urlsplit

from flask import abort, current_app, flash, redirect, request, url_for
from flask_login import current_user

from portal import oauth_client
from portal.admin import bp
from portal.admin.ops_forms import ActionForm
from portal.extensions import db
from portal.models import Mailbox
from portal.security import CONTENT_SECURITY_POLICY
from portal.services import mailbox_oauth as oauth_service
from portal.services.system_mail import external_url
from portal.sqltypes import utcnow


def _redirect_uri() -> str:
    # Built on PUBLIC_URL: the provider's app registration lists exactly this URL.
    return external_url("admin.mailbox_oauth_callback")


def _back(mailbox_id: int | None):
    anchor = f"mailbox-{mailbox_id}" if mailbox_id is not None else None
    return redirect(url_for("admin.mailboxes", _anchor=anchor))


@bp.route("/mailboxes/<int:mailbox_id>/connect/<any(microsoft, google):provider>", methods=["POST"])
def mailbox_oauth_connect(mailbox_id: int, provider: str):
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    settings = oauth_client.provider_settings(current_app.config, provider)
    if settings is None:
        flash(
            f"Connecting with {oauth_client.PROVIDERS[provider].label} is not set up: "
            f"OAUTH_{provider.upper()}_CLIENT_ID is empty (docs/operations.md).",
            "error",
        )
        return _back(mailbox.id)
    if not oauth_service.can_connect(mailbox):
        flash("Only an IMAP mailbox added in the portal can be connected this way.", "error")
        return _back(mailbox.id)
    state = oauth_service.issue_state(
        current_user.current_session, mailbox=mailbox, provider=provider, now=utcnow()
    )
    db.session.commit()
    return redirect(
        oauth_service.authorize_url(
            settings,
            mailbox,
            state=state,
            redirect_uri=_redirect_uri(),
            secret_key=current_app.config["SECRET_KEY"],
        )
    )


@bp.route("/mailboxes/oauth/callback")
def mailbox_oauth_callback():
    state = request.args.get("state") or ""
    try:
        mailbox_id, provider = oauth_service.redeem_state(
            current_user.current_session, state, now=utcnow()
        )
    except oauth_service.MailboxOAuthError as exc:
        flash(str(exc), "error")
        return _back(oauth_service.mailbox_id_of_state(state))
    finally:
        # Consumed on the server whatever happens next: a state works once.
        db.session.commit()
    mailbox = db.session.get(Mailbox, mailbox_id)
    settings = oauth_client.provider_settings(current_app.config, provider)
    if mailbox is None or settings is None:
        abort(404)
    label = settings.provider.label
    error = request.args.get("error")
    if error:
        description = (request.args.get("error_description") or "").strip()[:300]
        said = f" {label} said: “{description}”" if description else ""
        flash(
            f"{label} did not connect “{mailbox.name}” ({error[:64]}).{said} Nothing changed.",
            "error",
        )
        return _back(mailbox.id)
    try:
        oauth_service.complete_connection(
            mailbox,
            settings=settings,
            code=request.args.get("code"),
            state=state,
            redirect_uri=_redirect_uri(),
            secret_key=current_app.config["SECRET_KEY"],
            actor=current_user,
            now=utcnow(),
        )
    except oauth_service.MailboxOAuthError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _back(mailbox.id)
    db.session.commit()
    flash(
        f"“{mailbox.name}” is connected with {label}: it now signs in with OAuth (XOAUTH2). "
        "Test its connection below.",
        "success",
    )
    return _back(mailbox.id)


@bp.context_processor
def mailbox_oauth_helpers():
    # For the mailboxes page's "Connect …" buttons (templates/admin/mailboxes/_oauth.html).
    def configured_providers():
        return [
            settings.provider
            for key in oauth_client.PROVIDERS
            if (settings := oauth_client.provider_settings(current_app.config, key)) is not None
        ]

    return {
        "oauth_providers": configured_providers,
        "oauth_can_connect": oauth_service.can_connect,
        "oauth_label": oauth_service.provider_label,
    }


@bp.after_request
def allow_consent_pages(response):
    # "Connect …" posts to the portal and is redirected to the provider's consent page;
    # browsers apply the page's form-action to that redirect too, so the mailboxes page
    # allows the configured providers' origins (as the channel page does for Amazon's).
    if request.endpoint != "admin.mailboxes":
        return response
    origins = sorted(
        {
            f"{target.scheme}://{target.netloc}"
            for key in oauth_client.PROVIDERS
            if (settings := oauth_client.provider_settings(current_app.config, key)) is not None
            for target in [urlsplit(settings.authorize_url)]
        }
    )
    if origins:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", "form-action 'self' " + " ".join(origins)
        )
    return response
