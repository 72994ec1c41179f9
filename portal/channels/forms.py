from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, ValidationError

from portal.marketplaces import MARKETPLACES
from portal.services.credentials import CredentialError, clean_mws_token, clean_seller_id

REGION_NAMES = {"NA": "North America", "EU": "Europe", "FE": "Far East"}


def marketplace_choices(taken: set[str]) -> list[SelectChoice]:
    """Marketplaces grouped by region, without those the organisation already added."""
    return [
        SelectChoice(m.code, f"{m.name} ({m.domain})", optgroup=REGION_NAMES[m.region])
        for m in MARKETPLACES
        if m.code not in taken
    ]


class AddChannelForm(FlaskForm):
    marketplace = SelectField("Marketplace", validators=[DataRequired()])
    is_professional = BooleanField(
        "My Amazon seller account is a Professional selling account",
        validators=[
            DataRequired(
                message="Only Professional seller accounts can be connected: Amazon does not "
                "let Individual accounts authorise a developer. Upgrade in Seller Central "
                "→ Settings → Account Info → Your Services, then add the channel."
            )
        ],
        description="Amazon lets only Professional sellers authorise a developer such as "
        "Sellerdesk to receive their buyer messages.",
    )
    submit = SubmitField("Add channel")


class TokenForm(FlaskForm):
    seller_id = StringField(
        "Seller ID",
        description="Seller Central → Settings → Account Info → Business Information → "
        "Merchant Token (e.g. A1B2C3D4E5F6G7).",
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    mws_auth_token = StringField(
        "MWS Auth Token",
        description="Shown by Amazon when you authorise the developer; starts with amzn.mws.",
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField("Submit token")

    def validate_seller_id(self, field):
        try:
            field.data = clean_seller_id(field.data)
        except CredentialError as exc:
            raise ValidationError(str(exc)) from None

    def validate_mws_auth_token(self, field):
        try:
            field.data = clean_mws_token(field.data)
        except CredentialError as exc:
            raise ValidationError(str(exc)) from None


class SetupStepsForm(FlaskForm):
    forwarding = BooleanField(
        'I entered the helpdesk address as "Customer Service Email" and '
        '"Customer Service Reply-to Email"'
    )
    approved_sender = BooleanField(
        "I added the helpdesk address to the approved senders (Messaging Permissions)"
    )
    submit = SubmitField("Save")


class ReportRevokedForm(FlaskForm):
    submit = SubmitField("Report access revoked")


class AuthoriseWithAmazonForm(FlaskForm):
    submit = SubmitField("Authorise with Amazon")


class RevokeAuthorisationForm(FlaskForm):
    submit = SubmitField("Revoke Amazon authorisation")
