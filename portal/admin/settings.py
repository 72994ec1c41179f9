"""Admin page for operator settings: the Amazon developer sellers authorise, and how long
buyer messages are kept."""

from flask import current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from portal.admin import bp
from portal.admin.channel_forms import (
    DeveloperSettingsForm,
    ResetSettingsForm,
    RetentionSettingsForm,
)
from portal.channels.forms import REGION_NAMES
from portal.extensions import db
from portal.marketplaces import MARKETPLACES, developer_for
from portal.services import settings as settings_service


def _render(form, *, status=200, retention_form=None):
    current = settings_service.developer_settings(current_app.config)
    retention = settings_service.retention_settings(current_app.config)
    if retention_form is None:
        retention_form = RetentionSettingsForm(
            formdata=None,
            prefix="retention",
            raw_days=None if retention.raw_is_default else retention.raw_days,
            text_days=None if retention.text_is_default else retention.text_days,
        )
    effective = [
        (m, developer_for(m, name=current.name, accounts=current.accounts)) for m in MARKETPLACES
    ]
    return (
        render_template(
            "admin/settings.html",
            form=form,
            reset_form=ResetSettingsForm(formdata=None),
            current=current,
            effective=effective,
            inbound_domain=current_app.config["INBOUND_DOMAIN"],
            order_data_days=current_app.config["ORDER_DATA_DAYS"],
            retention=retention,
            retention_form=retention_form,
            default_raw_days=current_app.config["RAW_RETENTION_DAYS"],
            default_text_days=current_app.config["TEXT_RETENTION_DAYS"],
            region_names=REGION_NAMES,
            default_name=current_app.config["AMAZON_DEVELOPER_NAME"],
            default_accounts=current_app.config["AMAZON_DEVELOPER_ACCOUNTS"],
        ),
        status,
    )


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    form = DeveloperSettingsForm()
    if form.validate_on_submit():
        try:
            changed = settings_service.update_developer_settings(
                name=form.developer_name.data, accounts=form.accounts(), actor=current_user
            )
        except settings_service.SettingsError as exc:
            db.session.rollback()
            form.form_errors.append(str(exc))
        else:
            db.session.commit()
            flash("Settings saved." if changed else "Nothing changed.", "success")
            return redirect(url_for("admin.settings"))
        return _render(form, status=422)
    if form.is_submitted():
        return _render(form, status=422)
    current = settings_service.developer_settings(current_app.config)
    form.developer_name.data = current.name
    form.fill(current.accounts)
    return _render(form)


@bp.route("/settings/reset", methods=["POST"])
def settings_reset():
    form = ResetSettingsForm()
    if form.validate_on_submit():
        reset = settings_service.reset_developer_settings(actor=current_user)
        db.session.commit()
        flash(
            "The configured defaults apply again." if reset else "The defaults already applied.",
            "success",
        )
    return redirect(url_for("admin.settings"))


@bp.route("/settings/retention", methods=["POST"])
def settings_retention():
    form = RetentionSettingsForm(prefix="retention")
    if not form.validate_on_submit():
        return _render(DeveloperSettingsForm(formdata=None), status=422, retention_form=form)
    try:
        changed = settings_service.update_retention_settings(
            raw_days=form.raw_days.data, text_days=form.text_days.data, actor=current_user
        )
    except settings_service.SettingsError as exc:
        db.session.rollback()
        form.raw_days.errors = [*form.raw_days.errors, str(exc)]
        return _render(DeveloperSettingsForm(formdata=None), status=422, retention_form=form)
    db.session.commit()
    flash("Retention saved." if changed else "Nothing changed.", "success")
    return redirect(url_for("admin.settings"))
