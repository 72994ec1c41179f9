"""The form of a mailbox's sending: its SMTP URL and the channels whose replies it sends."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField, SubmitField, ValidationError
from wtforms.validators import Length, Optional

from portal.services.sending import SendingConfigError, clean_smtp_url
from portal.validators import NO_CONTROL_CHARACTERS


class SendingForm(FlaskForm):
    smtp_url = StringField(
        "SMTP URL",
        validators=[Optional(), Length(max=500), NO_CONTROL_CHARACTERS],
        description="e.g. smtp+starttls://shop@example.com@smtp.office365.com:587 or "
        "smtp+starttls://smtp.gmail.com:587. No password: the mailbox's own is used, or "
        "XOAUTH2 when it is connected with Microsoft 365 or Google.",
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    channels = SelectMultipleField(
        "Channels whose replies it sends",
        coerce=int,
        description="Other channels' replies go through SMTP_URL. A channel sent by another "
        "mailbox moves to this one.",
    )
    submit = SubmitField("Save sending")

    def validate_smtp_url(self, field):
        try:
            field.data = clean_smtp_url(field.data or "") or ""
        except SendingConfigError as exc:
            raise ValidationError(str(exc)) from None

    def validate_channels(self, field):
        if field.data and not (self.smtp_url.data or "").strip():
            raise ValidationError(
                "Give the SMTP URL the mailbox sends these channels' replies through."
            )
