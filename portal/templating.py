"""Template filters and helpers shared by every page."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, g, has_request_context
from flask_login import current_user
from markupsafe import Markup

from portal.charts import bar_chart
from portal.downloads import download_name

#: English month abbreviations, by month number: strftime's %b follows the process's
#: locale, and costs twice the f-string on pages that show a time per row.
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_datetime(value: datetime | None, *, in_utc: bool = False) -> str:
    """ "27 Nov 2026, 10:51 CET" in the signed-in user's time zone, or "27 Nov 2026,
    09:51 UTC" (times are stored in UTC; shown in it to users without a zone yet)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    zone = None if in_utc else viewer_zone()
    if zone is not None:
        value = value.astimezone(zone)
        name = value.tzname() or "UTC"
    else:
        if value.utcoffset():
            value = value.astimezone(UTC)
        name = "UTC"
    return (
        f"{value.day:02d} {_MONTHS[value.month]} {value.year}, "
        f"{value.hour:02d}:{value.minute:02d} {name}"
    )


def viewer_zone() -> ZoneInfo | None:
    """The signed-in user's time zone for this request; None for UTC (no user, no
    zone chosen yet, or outside a request: the worker's mail and logs say UTC)."""
    if not has_request_context():
        return None
    if "viewer_zone" not in g:
        name = getattr(current_user, "time_zone", None) if current_user else None
        try:
            g.viewer_zone = ZoneInfo(name) if name and name != "UTC" else None
        except (ZoneInfoNotFoundError, ValueError):  # a zone this system no longer has
            g.viewer_zone = None
    return g.viewer_zone


def time_element(value: datetime | None) -> Markup | str:
    """The `datetime` filter: the time in the viewer's zone, with UTC on hover."""
    shown = format_datetime(value)
    if value is None or viewer_zone() is None:
        return shown
    utc = format_datetime(value, in_utc=True)
    iso = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return Markup(  # noqa: S704 (both texts pass escape(); the ISO form is ours)
        f'<time datetime="{iso:%Y-%m-%dT%H:%M:%SZ}" title="{escape(utc)}">{escape(shown)}</time>'
    )


def plain_select(field, **attrs: str) -> Markup:  # noqa: ANN001 (a WTForms SelectField)
    """A select with its choices as plain options: the markup WTForms renders, at a
    fraction of its cost, for pages that show long lists on every request (the inbox
    and report filters). The choices are (value, label) pairs or a {value: label}
    mapping, values as strings, compared with the field's data as they are; `attrs`
    are added (e.g. described_by's); all of it is escaped."""
    choices = field.choices.items() if isinstance(field.choices, Mapping) else field.choices
    selected = field.data
    options = "".join(
        [
            f'<option value="{escape(str(value))}"{" selected" if value == selected else ""}>'
            f"{escape(str(label))}</option>"
            for value, label in choices
        ]
    )
    extra = "".join(f' {escape(name)}="{escape(value)}"' for name, value in attrs.items())
    html = f'<select id="{escape(field.id)}" name="{escape(field.name)}"{extra}>{options}</select>'
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
    app.add_template_global(bar_chart, "bar_chart")
    app.add_template_global(plain_select, "plain_select")
    app.add_template_global(described_by, "described_by")
    app.add_template_filter(time_element, "datetime")
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
