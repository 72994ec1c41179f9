"""Template filters shared by every page."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask


def format_datetime(value: datetime | None) -> str:
    """ "27 Nov 2026, 09:51 UTC": times are stored and shown in UTC, said so plainly."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%d %b %Y, %H:%M UTC")


def init_app(app: Flask) -> None:
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(format_size, "filesize")


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
