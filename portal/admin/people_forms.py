"""Forms of the admin console's user and organisation pages."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from portal.models import Role
from portal.services.audit_log import SYSTEM_ACTOR
from portal.services.users import find_organisation, find_user_by_email
from portal.validators import NO_CONTROL_CHARACTERS

ROLE_LABELS = {Role.ADMIN: "Admin", Role.AGENT: "Support agent", Role.SELLER: "Seller"}


def _choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


def _org_choices(organisations, empty: str) -> list[SelectChoice]:
    return _choices([("", empty)] + [(str(org_id), name) for org_id, name in organisations])


_ROLE_CHOICES = [(r.value, label) for r, label in ROLE_LABELS.items()]


class UserFilterForm(FlaskForm):
    """Filters of the user list: a GET form."""

    class Meta:
        csrf = False  # it changes nothing

    role = SelectField(
        "Role",
        choices=_choices([("", "Any role"), *_ROLE_CHOICES]),
        default="",
    )
    active = SelectField(
        "Active",
        choices=_choices(
            [("", "Active and deactivated"), ("yes", "Active"), ("no", "Deactivated")]
        ),
        default="",
    )


class CreateUserForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Email(), Length(max=254)])
    name = StringField("Name", validators=[Length(max=120), NO_CONTROL_CHARACTERS])
    role = SelectField("Role", choices=_choices(_ROLE_CHOICES), default="seller")
    organisation = SelectField(
        "Organisation",
        description="Sellers only: the seller business they belong to.",
        validate_choice=False,
    )
    new_organisation = StringField(
        "Or a new organisation",
        validators=[Length(max=120), NO_CONTROL_CHARACTERS],
        description="Sellers only: creates the organisation with this name.",
    )
    submit = SubmitField("Create user")

    def __init__(self, *args, organisations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.organisation.choices = _org_choices(organisations, "—")
        self._org_ids = {str(org_id) for org_id, _ in organisations}

    def validate_email(self, field):
        if find_user_by_email(field.data) is not None:
            raise ValidationError("A user with this e-mail already exists.")

    def validate_organisation(self, field):
        is_seller = self.role.data == Role.SELLER.value
        chosen = bool(field.data)
        new = bool((self.new_organisation.data or "").strip())
        if chosen and field.data not in self._org_ids:
            raise ValidationError("Choose an organisation from the list.")
        if is_seller and not chosen and not new:
            raise ValidationError(
                "A seller belongs to an organisation: choose one or name a new one."
            )
        if is_seller and chosen and new:
            raise ValidationError("Choose an organisation or name a new one, not both.")
        if not is_seller and (chosen or new):
            raise ValidationError(
                "Only sellers belong to an organisation; assign agents on their page instead."
            )

    def validate_new_organisation(self, field):
        if (field.data or "").strip() and find_organisation(field.data) is not None:
            raise ValidationError("This organisation already exists: choose it in the list.")


class ChangeRoleForm(FlaskForm):
    role = SelectField("Role", choices=_choices(_ROLE_CHOICES))
    organisation = SelectField(
        "Organisation",
        description="Only for sellers. Agents and admins belong to none; "
        "an agent's assignments are kept only while they stay an agent.",
        validate_choice=False,
    )
    submit = SubmitField("Change role")

    def __init__(self, *args, organisations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.organisation.choices = _org_choices(organisations, "—")
        self._org_ids = {str(org_id) for org_id, _ in organisations}

    def validate_organisation(self, field):
        if field.data and field.data not in self._org_ids:
            raise ValidationError("Choose an organisation from the list.")
        if self.role.data == Role.SELLER.value and not field.data:
            raise ValidationError("A seller belongs to an organisation: choose one.")


class DeactivateForm(FlaskForm):
    submit = SubmitField("Deactivate")


class ReactivateForm(FlaskForm):
    submit = SubmitField("Reactivate")


class ResetPasswordForm(FlaskForm):
    submit = SubmitField("Reset password")


class EndSessionsForm(FlaskForm):
    submit = SubmitField("Sign out everywhere")


class ResetTwoFactorForm(FlaskForm):
    submit = SubmitField("Reset second factor")


class AssignForm(FlaskForm):
    organisation = SelectField("Organisation", validate_choice=False)
    submit = SubmitField("Assign")

    def __init__(self, *args, organisations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.organisation.choices = _org_choices(organisations, "Choose an organisation")
        self._org_ids = {str(org_id) for org_id, _ in organisations}

    def validate_organisation(self, field):
        if field.data not in self._org_ids:
            raise ValidationError("Choose an organisation this agent is not assigned to yet.")


class UnassignForm(FlaskForm):
    submit = SubmitField("Unassign")


class ReplyPermissionForm(FlaskForm):
    #: "1" to let the organisation's sellers reply to buyers, "0" to stop them.
    allowed = HiddenField(validators=[DataRequired()])
    submit = SubmitField("Save")

    def validate_allowed(self, field):
        if field.data not in ("0", "1"):
            raise ValidationError("Invalid choice.")


class AuditFilterForm(FlaskForm):
    """Filters of the audit log: a GET form."""

    class Meta:
        csrf = False  # it changes nothing

    organisation = SelectField("Organisation", validate_choice=False, default="")
    actor = SelectField("Actor", validate_choice=False, default="")
    kind = SelectField("Type", validate_choice=False, default="")
    since = DateField("From", validators=[Optional()])
    until = DateField("To", validators=[Optional()])

    def __init__(self, *args, organisations=(), actors=(), kinds=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.organisation.choices = _org_choices(organisations, "Any organisation")
        self.actor.choices = _choices(
            [("", "Anyone"), (SYSTEM_ACTOR, "System (no user)")]
            + [(str(user_id), email) for user_id, email in actors]
        )
        self.kind.choices = _choices([("", "Any type")] + [(kind, kind) for kind in kinds])

    def validate_until(self, field):
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end date is before the start date.")


class StaffInviteForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Email(), Length(max=254)])
    role = SelectField(
        "As", choices=_choices([("agent", "Support agent"), ("admin", "Admin")]), default="agent"
    )
    submit = SubmitField("Send invitation")


class RevokeForm(FlaskForm):
    submit = SubmitField("Withdraw")


class CloseOrganisationForm(FlaskForm):
    """The confirmation step of closing an organisation (offboarding)."""

    confirm = BooleanField(
        "I understand: its channels, Amazon authorisations and users are switched off now, "
        "and all its buyer data is erased when the grace period is over.",
        validators=[DataRequired("Tick the box to confirm the closing.")],
    )
    submit = SubmitField("Close the organisation")


class ReopenOrganisationForm(FlaskForm):
    submit = SubmitField("Reopen")
