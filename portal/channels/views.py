from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from portal.channels.forms import (
    AddChannelForm,
    AuthoriseWithAmazonForm,
    ReportRevokedForm,
    RevokeAuthorisationForm,
    SetupStepsForm,
    TokenForm,
    marketplace_choices,
)
from portal.extensions import db
from portal.models import Channel, ChannelStatus, Role
from portal.security import CONTENT_SECURITY_POLICY, get_visible_or_404, role_required
from portal.services import admin_channels as admin_channel_service
from portal.services import channels as channel_service
from portal.services import spapi as spapi_service
from portal.services.scoping import can_manage_organisation, can_see_organisation
from portal.sqltypes import utcnow

bp = Blueprint("channels", __name__, url_prefix="/channels")


def _can_manage(channel: Channel) -> bool:
    # The organisation's owners manage its channels; admins may act for them. Members
    # and agents only read.
    return can_manage_organisation(current_user, channel.organisation_id)


def _load(channel_id: int, *, manage: bool = False) -> Channel:
    channel = get_visible_or_404(Channel, channel_id, current_user)
    if manage and not _can_manage(channel):
        abort(403)
    return channel


@bp.route("")
@login_required
def index():
    rows = channel_service.list_channels(current_user)
    return render_template("channels/index.html", rows=rows)


@bp.route("/new", methods=["GET", "POST"])
@role_required(Role.SELLER)
def new():
    organisation = current_user.organisation
    if not can_manage_organisation(current_user, organisation.id):
        abort(403)
    taken = {c.marketplace for c in organisation.channels}
    form = AddChannelForm()
    form.marketplace.choices = marketplace_choices(taken)
    if form.validate_on_submit():
        try:
            channel = channel_service.create_channel(
                organisation,
                form.marketplace.data,
                actor=current_user,
                inbound_domain=current_app.config["INBOUND_DOMAIN"],
                is_professional_confirmed=True,
            )
        except channel_service.ChannelError as exc:
            db.session.rollback()
            form.marketplace.errors.append(str(exc))
        else:
            db.session.commit()
            flash(
                f"{channel.marketplace_info.name} added. Follow the steps below to connect it.",
                "success",
            )
            return redirect(url_for("channels.detail", channel_id=channel.id))
    return render_template("channels/new.html", form=form, all_taken=not form.marketplace.choices)


def _render_detail(channel: Channel, *, token_form=None, steps_form=None, status=200):
    token_form = token_form or TokenForm(formdata=None)
    steps_form = steps_form or SetupStepsForm(
        formdata=None,
        forwarding=channel.forwarding_confirmed_at is not None,
        approved_sender=channel.approved_sender_confirmed_at is not None,
    )
    reactivating = bool(request.args.get("reactivate")) or bool(token_form.errors)
    spapi = spapi_service.settings_for_channel(current_app.config, channel)
    via_amazon = spapi_service.is_spapi_credential(channel.credential)
    response = make_response(
        render_template(
            "channels/detail.html",
            channel=channel,
            marketplace=channel.marketplace_info,
            developer=channel_service.developer_for_channel(channel, current_app.config),
            is_silent=channel_service.is_silent(channel),
            aliases=admin_channel_service.live_aliases(channel),
            can_manage=_can_manage(channel),
            token_form=token_form,
            steps_form=steps_form,
            revoked_form=ReportRevokedForm(formdata=None),
            reactivating=reactivating,
            spapi_available=spapi is not None,
            via_amazon=via_amazon,
            region_name=spapi_service.REGION_NAMES[channel.marketplace_info.region],
            region_channels=spapi_service.region_channels(channel) if spapi else [],
            sharing_channels=spapi_service.channels_sharing_authorisation(channel),
            spapi_form=AuthoriseWithAmazonForm(formdata=None),
            revoke_spapi_form=RevokeAuthorisationForm(formdata=None),
            ChannelStatus=ChannelStatus,
        ),
        status,
    )
    if spapi is not None:
        # The authorise form posts here and is redirected to Amazon; browsers apply the
        # page's form-action to that redirect too, so the consent page's origin is allowed.
        target = urlsplit(spapi.consent_urls[channel.marketplace_info.region])
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", f"form-action 'self' {target.scheme}://{target.netloc}"
        )
    return response


@bp.route("/<int:channel_id>")
@login_required
def detail(channel_id: int):
    return _render_detail(_load(channel_id))


@bp.route("/<int:channel_id>/token", methods=["POST"])
@login_required
def submit_token(channel_id: int):
    channel = _load(channel_id, manage=True)
    form = TokenForm()
    if not form.validate_on_submit():
        return _render_detail(channel, token_form=form, status=422)
    was_disabled = channel.status == ChannelStatus.DISABLED
    channel_service.submit_mws_token(
        channel,
        seller_id=form.seller_id.data,
        token=form.mws_auth_token.data,
        actor=current_user,
    )
    db.session.commit()
    if was_disabled:
        flash("Access reactivated: your new token awaits verification.", "success")
    else:
        flash("Token received. The channel is now pending verification.", "success")
    return redirect(url_for("channels.detail", channel_id=channel.id))


@bp.route("/<int:channel_id>/steps", methods=["POST"])
@login_required
def confirm_steps(channel_id: int):
    channel = _load(channel_id, manage=True)
    form = SetupStepsForm()
    if not form.validate_on_submit():
        return _render_detail(channel, steps_form=form, status=422)
    changed = channel_service.confirm_setup_steps(
        channel,
        forwarding=form.forwarding.data,
        approved_sender=form.approved_sender.data,
        actor=current_user,
    )
    db.session.commit()
    flash("Setup steps saved." if changed else "Nothing changed.", "success")
    return redirect(url_for("channels.detail", channel_id=channel.id, _anchor="step-3"))


@bp.route("/<int:channel_id>/revoked", methods=["POST"])
@login_required
def report_revoked(channel_id: int):
    channel = _load(channel_id, manage=True)
    form = ReportRevokedForm()
    if not form.validate_on_submit():
        abort(400)
    channel_service.report_access_revoked(channel, actor=current_user)
    db.session.commit()
    flash(
        "The channel is disabled and its token deleted. To reactivate access, "
        "follow the steps again and submit a new token.",
        "info",
    )
    return redirect(url_for("channels.detail", channel_id=channel.id))


# --- "Authorise with Amazon": the SP-API website authorisation workflow ---------------


def _spapi_redirect_uri(settings: spapi_service.SpapiSettings) -> str:
    # Amazon sends the seller back here; it must be one of the app's registered URIs.
    return settings.redirect_uri or url_for("channels.spapi_callback", _external=True)


@bp.route("/<int:channel_id>/spapi/authorise", methods=["POST"])
@login_required
def spapi_authorise(channel_id: int):
    channel = _load(channel_id, manage=True)
    settings = spapi_service.settings_for_channel(current_app.config, channel)
    if settings is None:
        abort(404)
    if not AuthoriseWithAmazonForm().validate_on_submit():
        abort(400)
    state = spapi_service.issue_state(current_user.current_session, channel=channel, now=utcnow())
    db.session.commit()
    return redirect(
        spapi_service.consent_url(
            settings,
            region=channel.marketplace_info.region,
            state=state,
            redirect_uri=_spapi_redirect_uri(settings),
        )
    )


def _back_to_channel(channel_id: int | None):
    channel = db.session.get(Channel, channel_id) if channel_id is not None else None
    if channel is None or not can_see_organisation(current_user, channel.organisation_id):
        return redirect(url_for("channels.index"))
    return redirect(url_for("channels.detail", channel_id=channel.id, _anchor="step-1"))


@bp.route("/spapi/callback")
@role_required(Role.SELLER, Role.ADMIN)
def spapi_callback():
    if spapi_service.spapi_settings(current_app.config) is None:
        abort(404)
    state = request.args.get("state")
    try:
        channel_id = spapi_service.redeem_state(current_user.current_session, state, now=utcnow())
    except spapi_service.SpapiError as exc:
        flash(str(exc), "error")
        return _back_to_channel(spapi_service.channel_id_of_state(state))
    finally:
        # Consumed on the server whatever happens next: a state works once.
        db.session.commit()
    channel = _load(channel_id, manage=True)
    if request.args.get("error"):
        flash("You did not authorise Sellerdesk in Seller Central, so nothing changed.", "info")
        return _back_to_channel(channel.id)
    settings = spapi_service.settings_for_channel(current_app.config, channel)
    if settings is None:
        abort(404)
    try:
        channels = spapi_service.complete_authorisation(
            channel,
            settings=settings,
            code=request.args.get("spapi_oauth_code"),
            selling_partner_id=request.args.get("selling_partner_id"),
            redirect_uri=_spapi_redirect_uri(settings),
            actor=current_user,
        )
    except spapi_service.SpapiError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _back_to_channel(channel.id)
    db.session.commit()
    names = ", ".join(c.marketplace_info.name for c in channels)
    flash(
        f"Authorised with Amazon. {names} {'is' if len(channels) == 1 else 'are'} "
        "now pending verification.",
        "success",
    )
    return redirect(url_for("channels.detail", channel_id=channel.id))


@bp.route("/<int:channel_id>/spapi/revoke", methods=["POST"])
@login_required
def spapi_revoke(channel_id: int):
    channel = _load(channel_id, manage=True)
    if not RevokeAuthorisationForm().validate_on_submit():
        abort(400)
    try:
        channels = spapi_service.revoke_authorisation(channel, actor=current_user)
    except spapi_service.SpapiError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("channels.detail", channel_id=channel.id))
    db.session.commit()
    names = ", ".join(c.marketplace_info.name for c in channels)
    flash(
        f"The Amazon authorisation is deleted and {names} "
        f"{'is' if len(channels) == 1 else 'are'} disabled. To withdraw it at Amazon too, "
        "remove Sellerdesk in Seller Central under Apps and Services → Manage Your Apps.",
        "info",
    )
    return redirect(url_for("channels.detail", channel_id=channel.id))
