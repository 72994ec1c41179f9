"""The thread badges, as the inbox rows and the thread page show them: one definition each.

A badge renders itself (`__html__`): Jinja writes it as it is ({{ badge }}) and the
inbox's row writer (rows.py) puts the same string in its f-string. Their classes,
words and times are our own (a status, a formatted date, a duration), never text
from mail, so nothing in them needs escaping.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from portal.models import ThreadStatus
from portal.templating import format_datetime, format_duration


class StatusBadge(NamedTuple):
    """A thread's status as a badge: its CSS class and label."""

    css_class: str  # "badge thread-open"
    label: str  # "Open"

    def __html__(self) -> str:
        return f'<span class="{self.css_class}">{self.label}</span>'


#: The badge of each status.
STATUS_BADGES = {
    status: StatusBadge(f"badge thread-{status.value}", status.value.capitalize())
    for status in ThreadStatus
}


class AnswerDue(NamedTuple):
    """The answer-due badge: time left, red once overdue."""

    css_class: str  # "deadline", "deadline soon", "deadline overdue" or "deadline none"
    title: str  # "Due 27 Nov 2026, 09:51 UTC"; empty when nothing is due
    text: str  # "5 h 12 min left", "Overdue by 7 min" or "—"
    is_overdue: bool

    def __html__(self) -> str:
        title = f' title="{self.title}"' if self.title else ""
        return f'<span class="{self.css_class}"{title}>{self.text}</span>'


NOTHING_DUE = AnswerDue("deadline none", "", "—", False)
#: Under this many seconds left, the badge says the answer is due soon.
DUE_SOON = 4 * 3600


def answer_due(deadline: datetime | None, now: datetime) -> AnswerDue:
    """How the answer-due badge reads for `deadline` at `now`: time left, or overdue."""
    if deadline is None:
        return NOTHING_DUE
    left = (deadline - now).total_seconds()
    title = "Due " + format_datetime(deadline)
    if left < 0:
        return AnswerDue("deadline overdue", title, f"Overdue by {format_duration(left)}", True)
    css_class = "deadline soon" if left < DUE_SOON else "deadline"
    return AnswerDue(css_class, title, f"{format_duration(left)} left", False)
