from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from portal.services.passwords import MIN_PASSWORD_LENGTH, password_problem
from portal.services.users import find_organisation
from portal.validators import NO_CONTROL_CHARACTERS

PASSWORD_HELP = (
    f"At least {MIN_PASSWORD_LENGTH} characters and not easy to guess: "
    "a few uncommon words work well."
)


class StrongPassword:
    """The password rules (services/passwords.py), their reason next to the field. The
    password must not be built from the form's `about` fields (e-mail, name, business),
    nor from the signed-in user's own."""

    def __init__(self, *about: str) -> None:
        self.about = about

    def __call__(self, form: FlaskForm, field: PasswordField) -> None:
        words = [form[name].data or "" for name in self.about]
        if current_user.is_authenticated:
            organisation = current_user.organisation
            words += [current_user.email, current_user.name or ""]
            words += [organisation.name] if organisation is not None else []
        problem = password_problem(field.data or "", about=words)
        if problem is not None:
            raise ValidationError(problem)


class LoginForm(FlaskForm):
    # No format check here: an unknown address simply fails to log in, and local
    # installs use addresses on reserved domains such as admin@helpdesk.localhost.
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Keep me logged in")
    #: Filled in by static/js/timezone.js with the browser's zone, for a first login.
    time_zone = HiddenField()
    submit = SubmitField("Log in")


class SignupForm(FlaskForm):
    organisation = StringField(
        "Business name",
        validators=[DataRequired(), Length(max=120), NO_CONTROL_CHARACTERS],
        description="Your seller business, as your team knows it.",
    )
    name = StringField("Your name", validators=[Length(max=120), NO_CONTROL_CHARACTERS])
    email = EmailField("E-mail", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(
        "Password",
        validators=[DataRequired(), StrongPassword("email", "name", "organisation")],
        description=PASSWORD_HELP,
    )
    password2 = PasswordField(
        "Repeat password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
    )
    submit = SubmitField("Create account")

    def validate_organisation(self, field):
        if find_organisation(field.data) is not None:
            raise ValidationError("A business with this name is already registered.")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField(
        "New password",
        validators=[DataRequired(), StrongPassword()],
        description=PASSWORD_HELP,
    )
    new_password2 = PasswordField(
        "Repeat new password",
        validators=[
            DataRequired(),
            EqualTo("new_password", message="The passwords do not match."),
        ],
    )
    submit = SubmitField("Change password")


class LogoutForm(FlaskForm):
    """Logout is a POST with a CSRF token, so another site cannot log users out."""

    submit = SubmitField("Log out")


_CODE_HELP = "The 6-digit code your authenticator app shows now."


def _code_field(label: str, description: str = _CODE_HELP) -> StringField:
    return StringField(
        label,
        validators=[DataRequired(), Length(max=40), NO_CONTROL_CHARACTERS],
        description=description,
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "spellcheck": "false"},
    )


class TwoFactorLoginForm(FlaskForm):
    """The login's second step: a code from the app, or a recovery code."""

    code = _code_field(
        "Code",
        "The 6-digit code from your authenticator app, or one of your recovery codes.",
    )
    trust = BooleanField("Trust this browser for 30 days")
    submit = SubmitField("Verify")


class EnableTotpForm(FlaskForm):
    code = _code_field("Code from the app")
    submit = SubmitField("Turn on two-factor sign-in")


class RecoveryCodesForm(FlaskForm):
    code = _code_field("Code from the app")
    submit = SubmitField("Make new recovery codes")


class DisableTwoFactorForm(FlaskForm):
    code = _code_field("Code from the app")
    submit = SubmitField("Turn off two-factor sign-in")


class AddPasskeyForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=80), NO_CONTROL_CHARACTERS],
        description="Which device or security key it is, e.g. “Work laptop”.",
    )
    #: The browser's answer (JSON), which static/js/passkeys.js fills in.
    credential = HiddenField(validators=[DataRequired(), Length(max=20_000)])
    submit = SubmitField("Add a passkey")


class PasskeySignInForm(FlaskForm):
    """A passkey's answer at the login (alone, or as the step after the password)."""

    credential = HiddenField(validators=[DataRequired(), Length(max=20_000)])
    time_zone = HiddenField(validators=[Length(max=64)])
    remember = BooleanField("Keep me logged in")
    trust = BooleanField("Trust this browser for 30 days")
    submit = SubmitField("Sign in with a passkey")


class RemovePasskeyForm(FlaskForm):
    submit = SubmitField("Remove")
