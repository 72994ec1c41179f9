"""The text of a body: the new part of a reply, for display."""

from __future__ import annotations

from ingest.mail.bodies import QUOTE_SCAN_CHARS, strip_quoted
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


HISTORY = "On Mon, 23 Nov 2026 at 10:00, Shop <x@helpdesk.test> wrote:\n> Please try again\n"


def _lines(chars: int) -> str:
    line = "The parcel came back to you, here is what the courier wrote about it.\n"
    return line * (chars // len(line) + 1)


def test_a_long_text_is_stripped_where_its_history_starts_in_the_part_read():
    new = "Thanks, that works.\n" + _lines(QUOTE_SCAN_CHARS // 2)
    text = new + "\n" + HISTORY + _lines(10 * QUOTE_SCAN_CHARS)
    assert strip_quoted(text) == new.strip()


def test_history_past_the_part_read_stays_visible():
    text = _lines(2 * QUOTE_SCAN_CHARS) + "\n" + HISTORY
    # Only the quoted lines at the very end go, as for any text.
    assert strip_quoted(text) == text[: text.index("\n>")].strip()
