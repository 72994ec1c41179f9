from datetime import date

from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, SubmitField
from wtforms.validators import Optional

#: The longest custom period, in days.
MAX_DAYS = 366


class ReportForm(FlaskForm):
    """The report's period and organisation: a GET form, so a report can be linked."""

    class Meta:
        csrf = False  # it changes nothing

    period = SelectField(
        "Period",
        choices={
            "7": "Last 7 days",
            "30": "Last 30 days",
            "90": "Last 90 days",
            "custom": "From … to …",
        },
        default="30",
    )
    start = DateField("From", validators=[Optional()])
    end = DateField("To (inclusive)", validators=[Optional()])
    organisation = SelectField("Organisation", coerce=str, default="")
    # The choices of these three are the user's own (set by the view).
    channel = SelectField("Channel", coerce=str, default="")
    marketplace = SelectField("Marketplace", coerce=str, default="")
    agent = SelectField("Agent who replied", coerce=str, default="")
    # The column links of the per-channel and per-agent tables set these; they are in
    # the form too, so a bad value is explained next to its field like any other.
    sort = SelectField("Sort the tables by", coerce=str, default="")
    dir = SelectField("Order", choices={"asc": "Ascending", "desc": "Descending"}, default="asc")

    def validate(self, extra_validators=None) -> bool:
        # Both dates are Optional (which ends their validator chains when empty), so the
        # custom period's requirements are checked here, once each field had its say.
        valid = super().validate(extra_validators)
        if self.period.data != "custom":
            return valid
        start: date | None = self.start.data
        end: date | None = self.end.data
        problems = []
        if start is None and not self.start.errors:
            problems.append((self.start, "Give the first day of the period."))
        if end is None and not self.end.errors:
            problems.append((self.end, "Give the last day of the period."))
        if start is not None and end is not None:
            if end < start:
                problems.append((self.end, "The last day comes before the first."))
            elif (end - start).days >= MAX_DAYS:
                problems.append((self.end, f"Choose at most {MAX_DAYS} days."))
        for field, message in problems:
            field.errors = [*field.errors, message]
        return valid and not problems and start is not None and end is not None


class RefreshForm(FlaskForm):
    """ "Refresh now": recompute the report shown rather than show kept figures."""

    submit = SubmitField("Refresh now")
