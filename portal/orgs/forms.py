from flask_wtf import FlaskForm
from wtforms import HiddenField, SubmitField
from wtforms.validators import AnyOf


class ReplyPermissionForm(FlaskForm):
    #: "1" lets the organisation's sellers reply to buyers, "0" leaves it to the support team.
    allowed = HiddenField(validators=[AnyOf(["0", "1"], message="Invalid choice.")])
    submit = SubmitField("Save")
