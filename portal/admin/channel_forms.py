"""Forms of the admin console's channel pages and settings."""

from flask_wtf import FlaskForm
from wtforms import (
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from portal.channels.forms import REGION_NAMES
from portal.marketplaces import MARKETPLACES
from portal.models import ChannelStatus
from portal.services import settings as settings_service
from portal.services.admin_channels import REASON_MAX_LENGTH
from portal.validators import NO_CONTROL_CHARACTERS

STATUS_LABELS = {
    ChannelStatus.AWAITING_TOKEN: "Awaiting token",
    ChannelStatus.PENDING_VERIFICATION: "Pending verification",
    ChannelStatus.ACTIVE: "Active",
    ChannelStatus.DISABLED: "Disabled",
}


def _choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


class ChannelFilterForm(FlaskForm):
    """Filters of the channel list: a GET form, so a filtered list can be bookmarked."""

    class Meta:
        csrf = False  # it changes nothing

    status = SelectField(
        "Status",
        choices=_choices([("", "Any status")] + [(s.value, t) for s, t in STATUS_LABELS.items()]),
        default="",
    )
    marketplace = SelectField(
        "Marketplace",
        choices=_choices([("", "Any marketplace")] + [(m.code, m.name) for m in MARKETPLACES]),
        default="",
    )
    region = SelectField(
        "Region",
        choices=_choices([("", "Any region"), *REGION_NAMES.items()]),
        default="",
    )
    organisation = SelectField("Organisation", default="")

    def __init__(self, *args, organisations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.organisation.choices = _choices(
            [("", "Any organisation")] + [(str(org_id), name) for org_id, name in organisations]
        )


def _reason(label: str, *, required: bool, description: str) -> TextAreaField:
    validators = [Length(max=REASON_MAX_LENGTH)]
    if required:
        validators.insert(0, DataRequired(message="Give a reason: the seller reads it."))
    return TextAreaField(
        label, validators=validators, description=description, render_kw={"rows": 2}
    )


class VerifyTokenForm(FlaskForm):
    #: The token the admin looked at; one replaced meanwhile is not verified blindly.
    credential = HiddenField()
    reason = _reason(
        "Reason (optional)",
        required=False,
        description="How you checked the token; the seller sees this note.",
    )
    submit = SubmitField("Verify token")


class RejectTokenForm(FlaskForm):
    credential = HiddenField()
    reason = _reason(
        "Reason",
        required=True,
        description="What is wrong with the token; the seller is asked to submit a new one.",
    )
    submit = SubmitField("Reject token")


class DisableChannelForm(FlaskForm):
    reason = _reason(
        "Reason",
        required=True,
        description="Why the channel is switched off; the seller sees it with how to reactivate.",
    )
    submit = SubmitField("Disable channel")


class EnableChannelForm(FlaskForm):
    reason = _reason(
        "Reason (optional)",
        required=False,
        description="Active again with a token on file, otherwise awaiting a token.",
    )
    submit = SubmitField("Re-enable channel")


class ChangeAddressForm(FlaskForm):
    new_address = StringField(
        "New helpdesk address",
        validators=[Length(max=254)],
        description="Leave empty to generate a new random address.",
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    reason = _reason("Reason (optional)", required=False, description="Recorded in the audit log.")
    submit = SubmitField("Change address")


def _account_field(label: str, description: str) -> StringField:
    return StringField(
        label,
        validators=[Length(max=20)],
        description=description,
        render_kw={"placeholder": "0000-0000-0000", "autocomplete": "off"},
    )


class DeveloperSettingsForm(FlaskForm):
    """Developer name, a number per region and optional per-marketplace overrides.

    Fields `region_NA`… and `market_US`… are added below, one per region and marketplace.
    """

    developer_name = StringField(
        "Developer name",
        validators=[
            DataRequired(),
            Length(max=settings_service.DEVELOPER_NAME_MAX_LENGTH),
            NO_CONTROL_CHARACTERS,
        ],
        description='What sellers enter under "Authorise a Developer" in Seller Central.',
    )
    submit = SubmitField("Save settings")

    def account_fields(self):
        return [self[f"region_{r}"] for r in settings_service.REGIONS]

    def override_fields(self):
        return [self[f"market_{m.code}"] for m in MARKETPLACES]

    def accounts(self) -> dict[str, str]:
        values = {r: self[f"region_{r}"].data for r in settings_service.REGIONS}
        values.update({m.code: self[f"market_{m.code}"].data for m in MARKETPLACES})
        return values

    def fill(self, accounts: dict[str, str]) -> None:
        for region in settings_service.REGIONS:
            self[f"region_{region}"].data = accounts.get(region, "")
        for m in MARKETPLACES:
            self[f"market_{m.code}"].data = accounts.get(m.code, "")


def _validate_account(form, field):
    try:
        field.data = settings_service.clean_account_number(field.data)
    except settings_service.SettingsError as exc:
        raise ValidationError(str(exc)) from None


for _region in settings_service.REGIONS:
    setattr(
        DeveloperSettingsForm,
        f"region_{_region}",
        _account_field(
            f"{REGION_NAMES[_region]} ({_region})",
            "Empty: no number known, sellers are told to contact support.",
        ),
    )
    setattr(DeveloperSettingsForm, f"validate_region_{_region}", _validate_account)
for _m in MARKETPLACES:
    setattr(
        DeveloperSettingsForm,
        f"market_{_m.code}",
        _account_field(_m.name, f"Empty: the {_m.region} number applies."),
    )
    setattr(DeveloperSettingsForm, f"validate_market_{_m.code}", _validate_account)


class ResetSettingsForm(FlaskForm):
    submit = SubmitField("Reset to the configured defaults")


class RetentionSettingsForm(FlaskForm):
    """How long buyer messages are kept after their thread is closed; empty: the default."""

    raw_days = IntegerField(
        "Raw mail and attachments (days after closing)",
        validators=[Optional(), NumberRange(min=1, max=settings_service.MAX_RETENTION_DAYS)],
    )
    text_days = IntegerField(
        "Message texts (days after closing)",
        validators=[Optional(), NumberRange(min=1, max=settings_service.MAX_RETENTION_DAYS)],
    )
    submit = SubmitField("Save retention")
