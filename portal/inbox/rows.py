"""The inbox table's rows as HTML, written in Python.

Fifty rows of a dozen values each were most of the inbox page's rendering time in
Jinja, where every value goes through the environment's attribute lookup and
markupsafe's escape, which builds a Markup object per value. Here each row is one
f-string and each value from the database goes through html.escape (quotes
included, so values are safe in attributes too); the rest are our own class names,
badge texts and integer ids. tests/portal/test_inbox_rows.py feeds markup into
every field.
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from portal.services.inbox import InboxRow


def render_rows(rows: list[InboxRow], thread_url: str, show_org: bool) -> Markup:
    """The <tr> elements for `rows`; `thread_url` is a thread's URL without its id."""
    url = escape(thread_url)
    rows_html = "".join([_row(row, url, show_org) for row in rows])
    return Markup(rows_html)  # noqa: S704 (every value from the database passes escape())


def _row(row: InboxRow, url: str, show_org: bool) -> str:
    tags = "".join([f'<span class="tag">{escape(tag)}</span>' for tag in row.tags])
    org = f'<div class="muted">{escape(row.organisation)}</div>' if show_org else ""
    order = f"<code>{escape(row.order_id)}</code>" if row.order_id else ""
    # The status and answer-due badges are our own words, classes and times
    # (services.threads.STATUS_BADGES, answer_due): nothing in them needs escaping.
    title = f' title="{row.due_title}"' if row.due_title else ""
    return (
        f'<tr class="{"is-overdue" if row.is_overdue else ""}">'
        f'<td class="buyer">{escape(row.buyer_label)}</td>'
        f'<td class="subject"><a href="{url}{row.id:d}">{escape(row.subject_label)}</a>{tags}'
        f'<div class="snippet">{escape(row.snippet)}</div></td>'
        f"<td>{escape(row.marketplace)}{org}</td>"
        f"<td>{order}</td>"
        f'<td><span class="{row.status_class}">{row.status_label}</span></td>'
        f"<td>{escape(row.assignee or '—')}</td>"
        f'<td><span class="{row.due_class}"{title}>{row.due_text}</span></td>'
        "</tr>\n"
    )
