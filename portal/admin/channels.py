"""Admin pages for every seller's channels: list, detail, token verification, addresses."""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal.admin import bp
from portal.admin.channel_forms import (
    ChangeAddressForm,
    ChannelFilterForm,
    DisableChannelForm,
    EnableChannelForm,
    RejectTokenForm,
    VerifyTokenForm,
)
from portal.extensions import db
from portal.models import Channel, ChannelStatus
from portal.services import admin_channels as admin_channel_service
from portal.services import users as user_service
from portal.services.channels import ChannelError
from portal.sqltypes import parse_id, utcnow

# One form per action on the detail page, each prefixed with its name so that the
# fields of the forms on one page get distinct ids.
_FORMS = {
    "verify": VerifyTokenForm,
    "reject": RejectTokenForm,
    "disable": DisableChannelForm,
    "enable": EnableChannelForm,
    "address": ChangeAddressForm,
}


_STATUSES = {status.value for status in ChannelStatus}


def _int_or_none(value):
    # Ids from the query string: junk or numbers too big for the database mean "none".
    return parse_id(value)


@bp.route("/channels")
def channels():
    form = ChannelFilterForm(request.args, organisations=user_service.organisation_choices())
    filters = admin_channel_service.ChannelFilters(
        status=ChannelStatus(form.status.data) if form.status.data in _STATUSES else None,
        marketplace=form.marketplace.data or None,
        region=form.region.data or None,
        organisation_id=_int_or_none(form.organisation.data),
    )
    rows = admin_channel_service.list_all_channels(filters)
    return render_template("admin/channels/index.html", form=form, rows=rows)


def _render_detail(channel: Channel, *, failed: str | None = None, form=None, status=200):
    credential = channel.credential
    marker = admin_channel_service.credential_marker(credential) if credential else ""
    forms = {
        name: cls(formdata=None, prefix=name, credential=marker) for name, cls in _FORMS.items()
    }
    if failed is not None:
        forms[failed] = form
    now = utcnow()
    return (
        render_template(
            "admin/channels/detail.html",
            channel=channel,
            forms=forms,
            failed=failed,
            aliases=sorted(channel.aliases, key=lambda a: a.expires_at, reverse=True),
            now=now,
            is_silent=admin_channel_service.is_silent(channel, now=now),
            history=admin_channel_service.channel_history(channel),
            inbound_domain=current_app.config["INBOUND_DOMAIN"],
            ChannelStatus=ChannelStatus,
        ),
        status,
    )


@bp.route("/channels/<int:channel_id>")
def channel_detail(channel_id: int):
    return _render_detail(db.get_or_404(Channel, channel_id))


def _act(channel_id: int, name: str, perform, message):
    """The shared shape of every channel action: validate, call the service, commit."""
    channel = db.get_or_404(Channel, channel_id)
    form = _FORMS[name](prefix=name)
    if not form.validate_on_submit():
        return _render_detail(channel, failed=name, form=form, status=422)
    try:
        result = perform(channel, form)
    except ChannelError as exc:
        db.session.rollback()
        # Beside the field it is about: the address; otherwise above the button.
        errors = form.new_address.errors if name == "address" else form.form_errors
        errors.append(str(exc))
        return _render_detail(channel, failed=name, form=form, status=422)
    db.session.commit()
    flash(message(channel, result), "success")
    return redirect(url_for("admin.channel_detail", channel_id=channel.id))


@bp.route("/channels/<int:channel_id>/verify", methods=["POST"])
def channel_verify(channel_id: int):
    return _act(
        channel_id,
        "verify",
        lambda channel, form: admin_channel_service.verify_token(
            channel,
            reason=form.reason.data,
            actor=current_user,
            expected_credential=form.credential.data,
        ),
        lambda channel, _: (
            f"Token verified: {channel.marketplace_info.name} of "
            f"{channel.organisation.name} is active."
        ),
    )


@bp.route("/channels/<int:channel_id>/reject", methods=["POST"])
def channel_reject(channel_id: int):
    return _act(
        channel_id,
        "reject",
        lambda channel, form: admin_channel_service.reject_token(
            channel,
            reason=form.reason.data,
            actor=current_user,
            expected_credential=form.credential.data,
        ),
        lambda channel, _: "Token rejected and deleted. The seller is asked to submit a new one.",
    )


@bp.route("/channels/<int:channel_id>/disable", methods=["POST"])
def channel_disable(channel_id: int):
    return _act(
        channel_id,
        "disable",
        lambda channel, form: admin_channel_service.disable_channel(
            channel, reason=form.reason.data, actor=current_user
        ),
        lambda channel, _: "Channel disabled. The seller sees your reason.",
    )


@bp.route("/channels/<int:channel_id>/enable", methods=["POST"])
def channel_enable(channel_id: int):
    return _act(
        channel_id,
        "enable",
        lambda channel, form: admin_channel_service.reenable_channel(
            channel, reason=form.reason.data, actor=current_user
        ),
        lambda channel, status: (
            "Channel re-enabled: "
            + ("active." if status == ChannelStatus.ACTIVE else "awaiting a token from the seller.")
        ),
    )


@bp.route("/channels/<int:channel_id>/address", methods=["POST"])
def channel_address(channel_id: int):
    return _act(
        channel_id,
        "address",
        lambda channel, form: admin_channel_service.change_helpdesk_address(
            channel,
            new_address=form.new_address.data,
            inbound_domain=current_app.config["INBOUND_DOMAIN"],
            reason=form.reason.data,
            actor=current_user,
        ),
        lambda channel, alias: (
            f"New helpdesk address {channel.helpdesk_address}. "
            f"Mail to {alias.address} still arrives until "
            f"{alias.expires_at:%d %b %Y}."
        ),
    )
