from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from portal.auth.forms import ChangePasswordForm
from portal.validators import NO_CONTROL_CHARACTERS


class ForgotPasswordForm(FlaskForm):
    # No format check, as on the login form: any address gets the same answer.
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    submit = SubmitField("Send me a link")


class ResetPasswordForm(FlaskForm):
    # The change-password page's fields and rules, without the current password.
    new_password = ChangePasswordForm.new_password
    new_password2 = ChangePasswordForm.new_password2
    submit = SubmitField("Set new password")


class SignOutSessionForm(FlaskForm):
    submit = SubmitField("Sign out")


class SignOutElsewhereForm(FlaskForm):
    submit = SubmitField("Sign out everywhere else")


class AcceptInvitationForm(FlaskForm):
    name = StringField("Your name", validators=[Length(max=120), NO_CONTROL_CHARACTERS])
    new_password = ChangePasswordForm.new_password
    new_password2 = ChangePasswordForm.new_password2
    submit = SubmitField("Accept and set password")


class TimeZoneForm(FlaskForm):
    # Choices are every zone the system knows (portal.services.users.time_zone_names).
    time_zone = SelectField(
        "Time zone",
        validate_choice=True,
        description="Times on every page are shown in this zone; hover one to see it in UTC.",
    )
    submit = SubmitField("Save time zone")


class AlertsForm(FlaskForm):
    assigned = BooleanField(
        "A conversation is assigned to me",
        description="At once, when someone else assigns you one (one mail for a bulk assignment).",
    )
    deadline = BooleanField(
        "A conversation of mine is 2 hours from Amazon's deadline",
        description="Amazon expects an answer within 24 hours of each buyer message.",
    )
    digest = BooleanField(
        "A daily digest",
        description="Each morning at 07:00 in your time zone: what is assigned to you, "
        "unassigned, past the deadline and due soon.",
    )
    submit = SubmitField("Save alerts")


class NotificationsForm(FlaskForm):
    browser = BooleanField(
        "Browser notifications",
        description="While a Sellerdesk tab is open: a new conversation on your channels, "
        "one assigned to you, one of yours 2 hours before Amazon's deadline. Your browser "
        "asks once whether to allow them.",
    )
    submit = SubmitField("Save notifications")


class ClaimNotificationsForm(FlaskForm):
    """What an open tab posts to fetch the notifications due (CSRF only)."""
