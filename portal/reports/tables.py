"""The sortable tables of /reports: their columns, and sorting by the `sort` and `dir`
query parameters (links in the column headers, so sorting needs no script)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    value: Callable[[Any], Any]
    numeric: bool = True


def _columns(prefix: str, specs: Sequence[tuple[str, str, str]]) -> tuple[Column, ...]:
    return tuple(
        Column(prefix + key, header, attrgetter(attr), numeric=key not in ("scope", "name"))
        for key, header, attr in specs
    )


#: The per-channel table, in the order of report_row's cells (REPORT_COLUMNS).
CHANNEL_COLUMNS = _columns(
    "",
    [
        ("scope", "Channel", "scope"),
        ("messages", "Messages", "messages"),
        ("answered_24h", "Answered within 24 h", "answered_24h"),
        ("pct", "% within 24 h", "answered_24h_pct"),
        ("late", "Answered late", "late"),
        ("open", "Open", "open"),
        ("overdue", "Open and overdue", "open_overdue"),
        ("median", "Median response (min)", "median_seconds"),
        ("p90", "90th percentile (min)", "p90_seconds"),
        ("threads", "Threads begun", "threads"),
        ("first_median", "First response, median (min)", "first_response_median_seconds"),
        ("first_p90", "First response, 90th percentile (min)", "first_response_p90_seconds"),
        ("closed", "Threads closed", "closed"),
        ("close_median", "Time to close, median (min)", "close_median_seconds"),
        ("close_p90", "Time to close, 90th percentile (min)", "close_p90_seconds"),
    ],
)
#: The per-agent table (reports.AgentFigures).
AGENT_COLUMNS = _columns(
    "agent_",
    [
        ("name", "Agent", "name"),
        ("replies", "Replies sent", "replies"),
        ("answered", "Messages answered", "answered"),
        ("answered_24h", "Answered within 24 h", "answered_24h"),
        ("pct", "% within 24 h", "answered_24h_pct"),
        ("median", "Median response (min)", "median_seconds"),
        ("p90", "90th percentile (min)", "p90_seconds"),
    ],
)
SORT_CHOICES = {"": "As listed"} | {
    column.key: f"{table}: {column.header}"
    for table, columns in (("Channels", CHANNEL_COLUMNS), ("Agents", AGENT_COLUMNS))
    for column in columns
}


def sort_rows(rows: list[Any], columns: Sequence[Column], key: str, direction: str) -> list[Any]:
    """`rows` sorted by the column `key` names (unchanged when it is not one of
    `columns`); empty values (no time without answers) last in either direction."""
    column = next((c for c in columns if c.key == key), None)
    if column is None:
        return rows

    def value(row: Any) -> Any:
        found = column.value(row)
        return found.lower() if isinstance(found, str) else found

    present = [row for row in rows if column.value(row) is not None]
    missing = [row for row in rows if column.value(row) is None]
    return sorted(present, key=value, reverse=direction == "desc") + missing
