"""Forms of the admin console's operations pages: mailboxes, waiting mail and the outbox."""

from __future__ import annotations

import os
from collections.abc import Sequence

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from portal.extensions import db
from portal.models import Mailbox
from portal.services.mailbox_config import SECURITY_LABELS
from portal.services.mailboxes import DEFAULT_MAILBOX_NAME
from portal.sqltypes import coerce_id
from portal.validators import NO_CONTROL_CHARACTERS

_NO_SPACES = Regexp(r"^\S+$", message="No spaces, please.")


class _MailboxForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[
            DataRequired(message="Give the mailbox a name."),
            Length(max=120),
            NO_CONTROL_CHARACTERS,
        ],
        description="Shown on the health page, e.g. “EU buyer mail”.",
    )
    is_enabled = BooleanField("Poll this mailbox", default=True)

    def __init__(self, *args, mailbox: Mailbox | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._mailbox_id = mailbox.id if mailbox is not None else None

    def validate_name(self, field):
        name = (field.data or "").strip()
        if name == DEFAULT_MAILBOX_NAME:
            raise ValidationError(
                f"“{DEFAULT_MAILBOX_NAME}” is reserved for the MAIL_SOURCE mailbox."
            )
        stmt = db.select(Mailbox.id).where(Mailbox.name == name)
        if self._mailbox_id is not None:
            stmt = stmt.where(Mailbox.id != self._mailbox_id)
        if db.session.scalar(stmt) is not None:
            raise ValidationError("Another mailbox already has this name.")
        field.data = name


class ImapMailboxForm(_MailboxForm):
    host = StringField(
        "Server",
        validators=[DataRequired(message="Enter the IMAP server."), Length(max=253), _NO_SPACES],
        description="e.g. imap.example.com",
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    security = SelectField(
        "Security",
        choices=[SelectChoice(key, label) for key, label in SECURITY_LABELS.items()],
        default="tls",
    )
    port = IntegerField(
        "Port",
        validators=[Optional(), NumberRange(min=1, max=65535, message="A port is 1 to 65535.")],
        description="Leave empty for the usual one: 993 with TLS, otherwise 143.",
    )
    username = StringField(
        "User name",
        validators=[
            DataRequired(message="Enter the user name."),
            Length(max=254),
            NO_CONTROL_CHARACTERS,
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[Length(max=500)],
        description="Stored encrypted; it is never shown again.",
        render_kw={"autocomplete": "new-password"},
    )
    folder = StringField(
        "Folder",
        default="INBOX",
        validators=[Length(max=200), NO_CONTROL_CHARACTERS],
        description="Usually INBOX.",
    )
    processed_folder = StringField(
        "Move processed mail to",
        validators=[Optional(), Length(max=200), NO_CONTROL_CHARACTERS],
        description="A folder (created when missing). Empty: processed mail stays and is "
        "flagged as read.",
    )
    ca_file = StringField(
        "CA certificate file",
        validators=[Optional(), Length(max=300), NO_CONTROL_CHARACTERS],
        description="A PEM file on the worker's machine, for a server whose certificate a "
        "private CA signed. Empty: the system's CAs.",
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    # Unticked (or absent from a post) means verified: skipping checks is never the default.
    skip_verify = BooleanField(
        "Do not verify the server's certificate",
        default=False,
        description="Only for a test server: without the check anyone on the way can read "
        "the mail and the password. The health page shows such mailboxes with a warning.",
    )
    submit = SubmitField("Save mailbox")

    def __init__(
        self, *args, password_on_file: bool = False, oauth_available: bool = False, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self._password_on_file = password_on_file
        self._oauth_available = oauth_available
        if password_on_file:
            self.password.description = (
                "A password is on file (encrypted), or the mailbox is connected with OAuth. "
                "Leave empty to keep it; type a new one to replace it."
            )
        elif oauth_available:
            # Microsoft 365 has no IMAP passwords at all: such a mailbox is saved without
            # one and then connected with "Connect …" beside it.
            self.password.description = (
                "Stored encrypted; it is never shown again. Leave it empty for a Microsoft 365 "
                "or Google mailbox: save, then use “Connect …” beside it."
            )

    def validate_ca_file(self, field):
        path = (field.data or "").strip()
        if path and not os.path.isabs(path):
            raise ValidationError("Give an absolute path, e.g. /etc/ssl/private-ca.pem.")
        field.data = path

    def validate_password(self, field):
        if not field.data and not self._password_on_file and not self._oauth_available:
            raise ValidationError("Enter the password.")


class MaildirMailboxForm(_MailboxForm):
    path = StringField(
        "Maildir path",
        validators=[DataRequired(message="Enter the Maildir's path."), Length(max=490)],
        description="An absolute path on the worker's machine; the folder holding new/, cur/ "
        "and tmp/.",
        render_kw={"spellcheck": "false"},
    )
    submit = SubmitField("Save mailbox")

    def validate_path(self, field):
        path = os.path.expanduser((field.data or "").strip())
        if not os.path.isabs(path):
            raise ValidationError("Give an absolute path, e.g. /var/mail/sellerdesk.")
        field.data = path


class HttpMailboxForm(_MailboxForm):
    """An HTTP ingress mailbox: providers post mail to its /inbound/<token> address."""

    provider = SelectField(
        "Provider",
        choices=[
            SelectChoice("generic", "Any MTA or script (HMAC-signed raw message)"),
            SelectChoice("mailgun", "Mailgun (route forwarding raw MIME)"),
            SelectChoice("ses", "Amazon SES through SNS"),
        ],
        default="generic",
    )
    signing_key = PasswordField(
        "Signing key",
        validators=[Length(max=200)],
        description="Mailgun: its HTTP webhook signing key (required). Any MTA: leave empty "
        "and one is made for you. SES: not used (SNS signs with certificates).",
        render_kw={"autocomplete": "off"},
    )
    submit = SubmitField("Add mailbox")

    def validate_signing_key(self, field):
        if self.provider.data == "mailgun" and not (field.data or "").strip():
            raise ValidationError("Enter Mailgun's HTTP webhook signing key.")


class ActionForm(FlaskForm):
    """A button that posts (CSRF-protected) and carries nothing else."""

    submit = SubmitField("Go")


class AssignForm(FlaskForm):
    channel = SelectField(
        "Channel", coerce=coerce_id, validators=[DataRequired(message="Choose a channel.")]
    )
    submit = SubmitField("Assign and thread")

    def __init__(self, *args, channels: Sequence[tuple[int, str]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.channel.choices = [
            SelectChoice(0, "Choose a channel…"),
            *(SelectChoice(value, label) for value, label in channels),
        ]


class DiscardForm(FlaskForm):
    reason = TextAreaField(
        "Reason",
        validators=[
            DataRequired(message="Say why this message is discarded."),
            Length(max=2000),
        ],
        description="Kept with the message and in the audit log, e.g. “spam”.",
        render_kw={"rows": 2},
    )
    submit = SubmitField("Discard")
