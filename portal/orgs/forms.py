from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, SelectChoice, SelectField, StringField, SubmitField
from wtforms.validators import AnyOf, DataRequired, Email, Length, ValidationError

from portal.services.buyer_data import BuyerDataError, clean_buyer_address
from portal.validators import NO_CONTROL_CHARACTERS


class ReplyPermissionForm(FlaskForm):
    #: "1" lets the organisation's sellers reply to buyers, "0" leaves it to the support team.
    allowed = HiddenField(validators=[AnyOf(["0", "1"], message="Invalid choice.")])
    submit = SubmitField("Save")


class TwoFactorRequirementForm(FlaskForm):
    #: "1" requires a second factor of every seller user of the organisation, "0" not.
    required = HiddenField(validators=[AnyOf(["0", "1"], message="Invalid choice.")])
    submit = SubmitField("Save")


ORG_ROLE_CHOICES = [
    SelectChoice("member", "Member: works the threads, reads the channels"),
    SelectChoice("owner", "Owner: also manages channels, Amazon access, people and settings"),
]


class RenameForm(FlaskForm):
    name = StringField(
        "Business name", validators=[DataRequired(), Length(max=120), NO_CONTROL_CHARACTERS]
    )
    submit = SubmitField("Rename")


class InviteForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Email(), Length(max=254)])
    org_role = SelectField("As", choices=ORG_ROLE_CHOICES, default="member")
    submit = SubmitField("Send invitation")


class MemberRoleForm(FlaskForm):
    org_role = SelectField(
        "Role", choices=[SelectChoice("member", "Member"), SelectChoice("owner", "Owner")]
    )
    submit = SubmitField("Change")


class RevokeInvitationForm(FlaskForm):
    submit = SubmitField("Withdraw")


class LeaveForm(FlaskForm):
    submit = SubmitField("Leave the organisation")


class EraseBuyerForm(FlaskForm):
    """Step one of a buyer's erasure: whose data; the next page shows what would go."""

    address = StringField(
        "Buyer's e-mail address or Amazon relay alias",
        validators=[DataRequired(), Length(max=254), NO_CONTROL_CHARACTERS],
        description="As the buyer's mail shows it, e.g. abc123xyz@marketplace.amazon.co.uk.",
    )
    submit = SubmitField("Show what would be erased")

    def validate_address(self, field) -> None:
        try:
            field.data = clean_buyer_address(field.data)
        except BuyerDataError as exc:
            raise ValidationError(str(exc)) from None


class ConfirmEraseBuyerForm(FlaskForm):
    """Step two: the address again (hidden), and the button that erases."""

    address = HiddenField(validators=[DataRequired(), Length(max=254)])
    submit = SubmitField("Erase this buyer's data")
