from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from portal.channels.forms import (
    AddChannelForm,
    ReportRevokedForm,
    SetupStepsForm,
    TokenForm,
    marketplace_choices,
)
from portal.extensions import db
from portal.models import Channel, ChannelStatus, Role
from portal.security import get_visible_or_404, role_required
from portal.services import admin_channels as admin_channel_service
from portal.services import channels as channel_service

bp = Blueprint("channels", __name__, url_prefix="/channels")


def _can_manage(channel: Channel) -> bool:
    # Sellers manage their own channels; admins may act for them. Agents only read.
    if current_user.role == Role.ADMIN:
        return True
    return (
        current_user.role == Role.SELLER and current_user.organisation_id == channel.organisation_id
    )


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
    return (
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
            ChannelStatus=ChannelStatus,
        ),
        status,
    )


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
