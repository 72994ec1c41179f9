"""The inbox rows and filter selects written in Python escape every value."""

from __future__ import annotations

import html
import re
from dataclasses import fields
from datetime import UTC, datetime
from types import SimpleNamespace

from portal.inbox.badges import STATUS_BADGES, answer_due
from portal.inbox.rows import render_rows
from portal.models import ThreadStatus
from portal.services.inbox import InboxRow
from portal.templating import plain_select

HOSTILE = "<script>alert(1)</script>\"'&><img src=x onerror=alert(2)>"
NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _hostile_row(**overrides) -> InboxRow:
    # Markup in every value that comes from the database.
    values = {
        f.name: HOSTILE + f.name
        for f in fields(InboxRow)
        if f.type in ("str", "str | None") and f.name != "id"
    }
    values |= {
        "id": 7,
        "status": ThreadStatus.OPEN,
        "last_message_at": datetime(2026, 11, 27, tzinfo=UTC),
        "awaiting_reply_since": None,
        "deadline": datetime(2026, 11, 28, tzinfo=UTC),
        "tags": (HOSTILE + "tag",),
    }
    return InboxRow(**(values | overrides))


def test_every_value_is_escaped_in_text_and_attributes():
    row = _hostile_row()
    out = str(render_rows([row], "/threads/", show_org=True, now=NOW))
    assert 'title="Due 28 Nov 2026' in out and ">1 d 0 h left</span>" in out
    # No markup from the data survives: the only tags are the row's own.
    tags = set(re.findall(r"<([a-z]+)", out))
    assert tags == {"tr", "td", "a", "span", "div", "code"}
    assert "onerror=" not in out.replace("onerror=alert", "")  # only escaped text
    for name in ("buyer_name", "subject", "snippet", "marketplace", "organisation",
                 "order_id", "assignee"):  # fmt: skip
        assert html.escape(HOSTILE + name) in out, name
    assert html.escape(HOSTILE + "tag") in out
    # Attribute values cannot be broken out of: no raw quote from the data.
    assert out.count('"') == len(re.findall(r'="[^"]*"', out)) * 2
    # Without a name, the buyer is shown by address, escaped as well.
    out = str(render_rows([_hostile_row(buyer_name="")], "/threads/", show_org=True, now=NOW))
    assert html.escape(HOSTILE + "buyer_address") in out


def test_row_shape_and_link():
    row = _hostile_row(
        buyer_name="Max",
        subject="Wrong size",
        order_id=None,
        assignee=None,
        deadline=None,
        tags=(),
    )
    out = str(render_rows([row], "/threads/", show_org=False, now=NOW))
    assert '<a href="/threads/7">Wrong size</a>' in out
    assert "<code>" not in out and " title=" not in out and 'class="muted"' not in out
    assert '<td class="assignee">—</td>' in out  # nobody assigned
    assert out.startswith('<tr class="">')
    nameless = _hostile_row(buyer_name=None, buyer_address="", subject=None)
    out = str(render_rows([nameless], "/threads/", show_org=False, now=NOW))
    assert '<td class="buyer">Unknown</td>' in out and ">(no subject)</a>" in out


def test_rows_show_the_one_definition_of_each_badge():
    # The thread page renders the same objects ({{ status_badge }} {{ due }}).
    overdue = _hostile_row(deadline=datetime(2026, 11, 26, 23, 53, tzinfo=UTC))
    out = str(render_rows([overdue], "/threads/", show_org=False, now=NOW))
    due = answer_due(overdue.deadline, NOW)
    assert due.is_overdue and due.text == "Overdue by 7 min"
    assert out.startswith('<tr class="is-overdue">')
    assert f'<td class="status">{STATUS_BADGES[ThreadStatus.OPEN].__html__()}</td>' in out
    assert f'<td class="due">{due.__html__()}</td>' in out
    assert due.__html__() == (
        '<span class="deadline overdue" title="Due 26 Nov 2026, 23:53 UTC">Overdue by 7 min</span>'
    )
    assert STATUS_BADGES[ThreadStatus.PENDING].__html__() == (
        '<span class="badge thread-pending">Pending</span>'
    )


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


def test_plain_select_adds_attributes_escaped():
    field = SimpleNamespace(id="period", name="period", data="", choices=[("", "All")])
    out = str(plain_select(field, **{"aria-describedby": HOSTILE, "aria-invalid": "true"}))
    assert out.startswith('<select id="period" name="period" aria-describedby="')
    assert 'aria-invalid="true">' in out and "<script" not in out


def test_selectable_rows_escape_the_subject_in_the_checkbox_label():
    row = _hostile_row()
    out = str(render_rows([row], "/threads/", show_org=False, now=NOW, selectable=True))
    assert set(re.findall(r"<([a-z]+)", out)) == {"tr", "td", "a", "span", "div", "code", "input"}
    assert f'aria-label="Select {html.escape(HOSTILE + "subject")}"' in out
    assert " checked" not in out
    ticked = render_rows([row], "/threads/", False, now=NOW, selectable=True, selected={7})
    assert 'value="7" form="bulk"' in str(ticked) and '" checked>' in str(ticked)
