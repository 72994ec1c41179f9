from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from portal.models import ThreadStatus
from portal.services.bulk import ACTIONS as BULK_ACTIONS
from portal.services.canned import unfilled_message, unfilled_placeholders
from portal.sqltypes import parse_id
from portal.validators import NO_CONTROL_CHARACTERS


class InboxFilterForm(FlaskForm):
    """The inbox filters: a GET form, so links to a filtered inbox can be shared."""

    class Meta:
        csrf = False  # it changes nothing

    status = SelectField(
        "Status",
        choices={"open": "Open", "pending": "Pending", "closed": "Closed", "all": "All"},
        default="open",
        validate_choice=False,
    )
    organisation = SelectField("Organisation", coerce=str, validate_choice=False, default="")
    channel = SelectField("Channel", coerce=str, validate_choice=False, default="")
    marketplace = SelectField("Marketplace", coerce=str, validate_choice=False, default="")
    assignee = SelectField(
        "Assigned to",
        choices={"anyone": "Anyone", "me": "Me", "unassigned": "Unassigned"},
        default="anyone",
        validate_choice=False,
    )
    tag = StringField("Tag", validators=[Optional(), Length(max=40)])
    q = StringField(
        "Search",
        validators=[Optional(), Length(max=200)],
        description="Subject, buyer, order ID or message text",
    )
    sort = SelectField(
        "Sort",
        choices={"activity": "Newest activity first", "urgent": "Most urgent first"},
        default="activity",
        validate_choice=False,
    )


class BulkForm(FlaskForm):
    """An action on the threads ticked in the inbox, or on every thread of the page."""

    action = SelectField("With the selected threads", choices=BULK_ACTIONS)
    #: "" (nobody), "me", or a user's id: the view sets the choices.
    assignee = SelectField("Assign to", coerce=str, validate_choice=False, default="me")
    tag = StringField("Tag", validators=[Optional(), Length(max=40), NO_CONTROL_CHARACTERS])
    thread_ids = SelectMultipleField("Select", coerce=str, validate_choice=False)
    #: Every thread shown on the page, for "Select all on the page" without JavaScript.
    page_ids = SelectMultipleField(coerce=str, validate_choice=False)
    all_on_page = BooleanField("Select all on the page")
    submit = SubmitField("Apply")

    def selected_ids(self) -> list[int] | None:
        """The ids asked for; None when one is not an id at all."""
        raw = (self.page_ids.data if self.all_on_page.data else self.thread_ids.data) or []
        ids = [parse_id(value) for value in raw]
        return None if None in ids else list(dict.fromkeys(ids))

    def validate_thread_ids(self, field):
        ids = self.selected_ids()
        if ids is None:
            raise ValidationError("That is not a thread of this inbox.")
        if not ids:
            raise ValidationError("Select at least one thread.")
        if len(ids) > 500:
            raise ValidationError("Select at most 500 threads at once.")

    def validate_tag(self, field):
        if self.action.data == "tag" and not (field.data or "").strip():
            raise ValidationError("Enter a tag.")


class StatusForm(FlaskForm):
    status = SelectField("Status", choices={s.value: s.value.capitalize() for s in ThreadStatus})
    submit = SubmitField("Change status")


class SnoozeForm(FlaskForm):
    until = DateTimeLocalField(
        "Pending until (UTC)",
        validators=[DataRequired(message="Choose a date and time.")],
        description="The thread opens again then, or earlier when the buyer writes.",
    )
    submit = SubmitField("Snooze")


class AssignForm(FlaskForm):
    assignee = SelectField("Assigned to", coerce=str)
    submit = SubmitField("Assign")


class TagForm(FlaskForm):
    name = StringField(
        "Add a tag",
        validators=[DataRequired(message="Enter a tag."), Length(max=40), NO_CONTROL_CHARACTERS],
    )
    submit = SubmitField("Add tag")


class RemoveTagForm(FlaskForm):
    submit = SubmitField("Remove")


class RefreshOrderForm(FlaskForm):
    submit = SubmitField("Refresh")


class ReviewRequestForm(FlaskForm):
    submit = SubmitField("Request a review")


class NoResponseForm(FlaskForm):
    submit = SubmitField("No response needed")


class NoteForm(FlaskForm):
    text = TextAreaField(
        "Internal note",
        validators=[DataRequired(message="Write the note first."), Length(max=20000)],
        description="Only your team sees notes; they are never e-mailed.",
    )
    submit = SubmitField("Add note")


class DraftForm(FlaskForm):
    """Saves the composer as the user's draft: the reply form's own fields, posted here by
    its "Save draft" and "Remove" buttons, or by the page's autosave."""

    body = TextAreaField("Reply", validators=[Length(max=50000)])
    attachments = MultipleFileField("Attachments")
    #: A draft attachment's id, from its "Remove" button.
    remove_attachment = StringField(validators=[Optional()])


class PresenceForm(FlaskForm):
    """The thread page's heartbeat (JavaScript only)."""

    writing = BooleanField()
    leaving = BooleanField()


class DiscardDraftForm(FlaskForm):
    submit = SubmitField("Discard draft")


class ReplyForm(FlaskForm):
    body = TextAreaField(
        "Reply",
        validators=[DataRequired(message="Write the reply first."), Length(max=50000)],
    )
    attachments = MultipleFileField("Attachments")
    #: The message answered (empty: the newest buyer message); one of `answerable`.
    reply_to = HiddenField()
    confirm_warnings = BooleanField("I checked the warnings above; send anyway")
    submit = SubmitField("Send reply")
    send_close = SubmitField("Send and close")
    send_pending = SubmitField("Send and set pending")
    #: The newest message id of the thread when the composer was shown (collisions).
    seen = HiddenField()
    send_anyway = SubmitField("Send anyway")

    def __init__(self, *args, answerable: set[int] = frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self._answerable = answerable

    def validate_body(self, field):
        # Before Amazon's rules are checked: a canned reply's placeholder left unfilled
        # is never sent, confirmed or not (services/outbox.py refuses it too).
        unfilled = unfilled_placeholders(field.data)
        if unfilled:
            raise ValidationError(unfilled_message(unfilled))

    def status_after(self) -> ThreadStatus | None:
        """The status the sender asked for with the reply, if any."""
        if self.send_close.data:
            return ThreadStatus.CLOSED
        if self.send_pending.data:
            return ThreadStatus.PENDING
        return None

    def validate_reply_to(self, field):
        if field.data and parse_id(field.data) not in self._answerable:
            raise ValidationError(
                "Only a message from the buyer in this conversation can be answered."
            )
