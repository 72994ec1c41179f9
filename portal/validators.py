"""WTForms validators every area's forms share."""

from __future__ import annotations

from wtforms import Field, Form, ValidationError

from ingest.mail.text import describe_character, first_unsafe_character


class NoControlCharacters:
    """Refuses a name holding a line break, NUL, a bidirectional control or another
    character that no name may hold (ingest.mail.text has the rule and the reasons)."""

    def __call__(self, form: Form, field: Field) -> None:
        char = first_unsafe_character(field.data if isinstance(field.data, str) else "")
        if char is not None:
            raise ValidationError(
                f"{field.label.text} cannot contain {describe_character(char)}: a name is "
                "one line of visible text. Remove it (it may have come in with a paste)."
            )


#: The one instance the forms use.
NO_CONTROL_CHARACTERS = NoControlCharacters()
