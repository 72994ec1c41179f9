"""The inbox table's rows as HTML, written in Python.

Fifty rows of a dozen values each were most of the inbox page's rendering time in
Jinja, where every value goes through the environment's attribute lookup and
markupsafe's escape, which builds a Markup object per value. Here each row is one
f-string and each value from the database goes through html.escape (quotes
included, so values are safe in attributes too); the rest are our own class names,
badges (badges.py) and integer ids. tests/portal/test_inbox_rows.py feeds markup
into every field.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from markupsafe import Markup

from portal.inbox.badges import STATUS_BADGES, answer_due
from portal.services.inbox import InboxRow
from portal.sqltypes import utcnow


def render_rows(
    rows: list[InboxRow],
    thread_url: str,
    show_org: bool,
    *,
    now: datetime | None = None,
    selectable: bool = False,
    selected: frozenset[int] = frozenset(),
) -> Markup:
    """The <tr> elements for `rows`; `thread_url` is a thread's URL without its id.

    `now` (default: the current time) is what the answer-due badges count from;
    `selectable` rows start with a checkbox of the bulk form (ticked when `selected`).
    """
    url = escape(thread_url)
    now = now or utcnow()
    rows_html = "".join(
        [_row(row, url, show_org, now, selectable, row.id in selected) for row in rows]
    )
    return Markup(rows_html)  # noqa: S704 (every value from the database passes escape())


def _row(
    row: InboxRow, url: str, show_org: bool, now: datetime, selectable: bool, ticked: bool
) -> str:
    tags = "".join([f'<span class="tag">{escape(tag)}</span>' for tag in row.tags])
    org = f'<div class="muted">{escape(row.organisation)}</div>' if show_org else ""
    order = f"<code>{escape(row.order_id)}</code>" if row.order_id else ""
    buyer = row.buyer_name or row.buyer_address or "Unknown"
    due = answer_due(row.deadline, now)
    # The bulk form sits outside the table (form="bulk"): the rows need no enclosing form.
    select = (
        f'<td class="select"><input type="checkbox" name="thread_ids" value="{row.id:d}" '
        f'form="bulk" aria-label="Select {escape(row.subject or "(no subject)")}"'
        f"{' checked' if ticked else ''}></td>"
        if selectable
        else ""
    )
    return (
        f'<tr class="{"is-overdue" if due.is_overdue else ""}">'
        f"{select}"
        f'<td class="buyer">{escape(buyer)}</td>'
        f'<td class="subject"><a href="{url}{row.id:d}">{escape(row.subject or "(no subject)")}</a>'
        f'{tags}<div class="snippet">{escape(row.snippet)}</div></td>'
        f'<td class="channel">{escape(row.marketplace)}{org}</td>'
        f'<td class="order">{order}</td>'
        f'<td class="status">{STATUS_BADGES[row.status].__html__()}</td>'
        f'<td class="assignee">{escape(row.assignee or "—")}</td>'
        f'<td class="due">{due.__html__()}</td>'
        "</tr>\n"
    )
