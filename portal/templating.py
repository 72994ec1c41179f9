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
