"""The text of a body: the new part of a reply, for display."""

from __future__ import annotations

from ingest.mail.parse import parse_message


def test_quoted_history_is_stripped_for_display():
    raw = (
        b"From: buyer@example.com\nTo: x@helpdesk.test\nSubject: Re: hi\n\n"
        b"Thanks, that works.\n\nOn Mon, 23 Nov 2026 at 10:00, Shop <x@helpdesk.test> wrote:\n"
        b"> Please try again\n> Regards\n"
    )
    parsed = parse_message(raw)
    assert parsed.visible_text == "Thanks, that works."
    assert "Please try again" in parsed.text
