from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from portal.services import canned as canned_service
from portal.validators import NO_CONTROL_CHARACTERS

#: The Organisation choice that makes a reply global (admins only).
GLOBAL = "global"


class CannedReplyForm(FlaskForm):
    title = StringField(
        "Title",
        validators=[
            DataRequired(message="Give the canned reply a title."),
            Length(max=canned_service.TITLE_MAX_LENGTH),
            NO_CONTROL_CHARACTERS,
        ],
        render_kw={"maxlength": canned_service.TITLE_MAX_LENGTH},
    )
    organisation = SelectField("Organisation")
    body = TextAreaField(
        "Text",
        validators=[
            DataRequired(message="Write the text of the canned reply."),
            Length(max=canned_service.BODY_MAX_LENGTH),
        ],
        description=f"Placeholders filled in for each thread: {canned_service.PLACEHOLDER_HELP}. "
        f"{canned_service.ORDER_PLACEHOLDER_HELP} Write {{{{ and }}}} for a literal brace.",
        render_kw={"rows": 12},
    )
    submit = SubmitField("Save")

    def __init__(self, *args, organisations=(), allow_global=False, reply=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.reply = reply
        if reply is not None:
            # A reply stays with its organisation; only title and text change.
            del self.organisation
            return
        choices = [(GLOBAL, "All organisations (global)")] if allow_global else []
        choices += [(str(org.id), org.name) for org in organisations]
        self.organisation.choices = choices
        self._organisations = {str(org.id): org for org in organisations}

    def selected_organisation(self):
        """The chosen Organisation, or None for a global reply."""
        return self._organisations.get(self.organisation.data)

    def _organisation_id(self) -> int | None:
        if self.reply is not None:
            return self.reply.organisation_id
        organisation = self.selected_organisation()
        return organisation.id if organisation is not None else None

    def validate_title(self, field):
        if self.reply is None and self.organisation.data not in dict(self.organisation.choices):
            return  # the Organisation field reports that
        organisation_id = self._organisation_id()
        exclude_id = self.reply.id if self.reply is not None else None
        if canned_service.is_title_taken(
            field.data, organisation_id=organisation_id, exclude_id=exclude_id
        ):
            raise ValidationError(
                canned_service.title_taken_message(field.data, organisation_id=organisation_id)
            )

    def validate_body(self, field):
        try:
            canned_service.validate_template(field.data)
        except canned_service.CannedReplyError as exc:
            raise ValidationError(str(exc)) from None


class DeleteCannedReplyForm(FlaskForm):
    submit = SubmitField("Delete this canned reply")
