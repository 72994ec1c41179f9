"""Template filters and helpers shared by every page."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape

from flask import Flask
from markupsafe import Markup

from portal.downloads import download_name

#: English month abbreviations, by month number: strftime's %b follows the process's
#: locale, and costs twice the f-string on pages that show a time per row.
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_datetime(value: datetime | None) -> str:
    """ "27 Nov 2026, 09:51 UTC": times are stored and shown in UTC, said so plainly."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    return (
        f"{value.day:02d} {_MONTHS[value.month]} {value.year}, "
        f"{value.hour:02d}:{value.minute:02d} UTC"
    )


def plain_select(field) -> Markup:  # noqa: ANN001 (a WTForms SelectField)
    """A select with its choices as plain options: the markup WTForms renders, at a
    fraction of its cost, for pages that show long lists on every request (the inbox
    filters). The choices are (value, label) pairs or a {value: label} mapping, values
    as strings, compared with the field's data as they are; all of it is escaped."""
    choices = field.choices.items() if isinstance(field.choices, Mapping) else field.choices
    selected = field.data
    options = "".join(
        [
            f'<option value="{escape(str(value))}"{" selected" if value == selected else ""}>'
            f"{escape(str(label))}</option>"
            for value, label in choices
        ]
    )
    html = f'<select id="{escape(field.id)}" name="{escape(field.name)}">{options}</select>'
    return Markup(html)  # noqa: S704 (the id, the name, each value and label pass escape())


def described_by(field) -> dict[str, str]:  # noqa: ANN001 (a WTForms field)
    """The attributes that tie a field to its help text and its errors (the ids the
    forms macro gives them), so a screen reader reads them with the field."""
    ids = ([f"{field.id}-help"] if field.description else []) + (
        [f"{field.id}-error"] if field.errors else []
    )
    attrs = {"aria-describedby": " ".join(ids)} if ids else {}
    if field.errors:
        attrs["aria-invalid"] = "true"
    return attrs


def init_app(app: Flask) -> None:
    app.add_template_global(plain_select, "plain_select")
    app.add_template_global(described_by, "described_by")
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(format_size, "filesize")
    # An attachment's name as shown is the name it downloads under (ingest.mail.text's rule).
    app.add_template_filter(download_name, "filename")


def format_size(size: int) -> str:
    """Bytes as people read them: "812 B", "14 KB", "3.2 MB"."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size // 1024} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def format_duration(seconds: float) -> str:
    """Like "2 d 3 h", "5 h 12 min" or "7 min": precise enough to act on, short for a table."""
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"
