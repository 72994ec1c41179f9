"""The inbox rows and filter selects written in Python escape every value."""

from __future__ import annotations

import html
import re
from dataclasses import fields
from datetime import UTC, datetime
from types import SimpleNamespace

from portal.inbox.rows import render_rows
from portal.models import ThreadStatus
from portal.services.inbox import InboxRow
from portal.services.threads import STATUS_BADGES, answer_due
from portal.templating import plain_select

HOSTILE = "<script>alert(1)</script>\"'&><img src=x onerror=alert(2)>"


def _hostile_row(**overrides) -> InboxRow:
    # Markup in every value that comes from the database; the badges are our own
    # (a real row's, computed as list_inbox does).
    values = {
        f.name: HOSTILE + f.name
        for f in fields(InboxRow)
        if f.type in ("str", "str | None") and f.name != "id"
    }
    due = answer_due(datetime(2026, 11, 28, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))
    status_class, status_label = STATUS_BADGES[ThreadStatus.OPEN]
    values |= {
        "status_class": status_class,
        "status_label": status_label,
        "due_class": due.css_class,
        "due_title": due.title,
        "due_text": due.text,
    }
    values |= {
        "id": 7,
        "status": ThreadStatus.OPEN,
        "last_message_at": datetime(2026, 11, 27, tzinfo=UTC),
        "awaiting_reply_since": None,
        "deadline": None,
        "tags": (HOSTILE + "tag",),
        "is_overdue": True,
    }
    return InboxRow(**(values | overrides))


def test_every_value_is_escaped_in_text_and_attributes():
    row = _hostile_row()
    out = str(render_rows([row], "/threads/", show_org=True))
    assert 'title="Due 28 Nov 2026' in out and ">1 d 0 h left</span>" in out
    # No markup from the data survives: the only tags are the row's own.
    tags = set(re.findall(r"<([a-z]+)", out))
    assert tags == {"tr", "td", "a", "span", "div", "code"}
    assert "onerror=" not in out.replace("onerror=alert", "")  # only escaped text
    for name in ("buyer_label", "subject_label", "snippet", "marketplace", "organisation",
                 "order_id", "assignee"):  # fmt: skip
        assert html.escape(HOSTILE + name) in out, name
    assert html.escape(HOSTILE + "tag") in out
    # Attribute values cannot be broken out of: no raw quote from the data.
    assert out.count('"') == len(re.findall(r'="[^"]*"', out)) * 2


def test_row_shape_and_link():
    row = _hostile_row(
        buyer_label="Max",
        subject_label="Wrong size",
        order_id=None,
        assignee=None,
        due_title="",
        tags=(),
        is_overdue=False,
    )
    out = str(render_rows([row], "/threads/", show_org=False))
    assert '<a href="/threads/7">Wrong size</a>' in out
    assert "<code>" not in out and " title=" not in out and 'class="muted"' not in out
    assert "<td>—</td>" in out  # nobody assigned
    assert out.startswith('<tr class="">')


def test_plain_select_escapes_and_marks_the_selected_choice():
    field = SimpleNamespace(
        id="channel",
        name="channel",
        data="2",
        choices=[("", "All"), ("1", HOSTILE), ("2", 'Germany · "Acme" & Co')],
    )
    out = str(plain_select(field))
    assert out.startswith('<select id="channel" name="channel"><option value="">All</option>')
    assert html.escape(HOSTILE) in out and "<script" not in out
    assert '<option value="2" selected>Germany · &quot;Acme&quot; &amp; Co</option>' in out
    mapping = SimpleNamespace(id="s", name="s", data="open", choices={"open": "Open"})
    assert '<option value="open" selected>Open</option>' in str(plain_select(mapping))
