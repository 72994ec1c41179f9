"""Template helpers: how times read on every page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from portal.templating import format_datetime


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (datetime(2026, 11, 27, 9, 51, 59, tzinfo=UTC), "27 Nov 2026, 09:51 UTC"),
        (datetime(2026, 1, 5, 0, 0), "05 Jan 2026, 00:00 UTC"),  # naive means UTC
        (  # another zone is shown in UTC
            datetime(2026, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),
            "28 Feb 2026, 23:30 UTC",
        ),
        (None, ""),
    ],
)
def test_format_datetime(value, shown):
    assert format_datetime(value) == shown


def test_format_datetime_reads_as_strftime_in_english():
    # Every month and a spread of days and times, against strftime in the C locale.
    start = datetime(2025, 12, 31, 23, 59, tzinfo=UTC)
    for hours in range(0, 24 * 400, 37):
        value = start + timedelta(hours=hours, minutes=hours % 60)
        assert format_datetime(value) == value.strftime("%d %b %Y, %H:%M UTC")
