"""The text of a body: the new part of a reply, for display."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.mail import reply_precheck
from ingest.mail.bodies import QUOTE_SCAN_CHARS, REPLY_LANGUAGES, strip_quoted
from ingest.mail.parse import parse_message
from tests.helpers import MAIL


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


# The pre-check (ingest/mail/reply_precheck.py) skips the reply heuristic only where it
# would cut nothing. Each text below has one thing the heuristic cuts; were the pre-check
# to skip it, the result would be the whole text and differ from the heuristic's.

BODY = "Hello, the parcel has not arrived yet.\nCould you look into it?\n"
PLAIN = "\n".join(f"Line {i} of a long message about order 302-{i:07d}." for i in range(300))

CUT = {
    "en wrote": BODY + "\nOn Mon, 23 Nov 2026 at 10:00, Shop <x@helpdesk.test> wrote:\n> Hi\n",
    "en wrote over two lines": BODY
    + "\nOn Mon, 23 Nov 2026 at 10:00, Shop\n<x@helpdesk.test> wrote:\nHi\n",
    "de wrote": BODY + "\nAm 23.11.2026 um 10:00 schrieb Shop <x@helpdesk.test>:\nHallo\n",
    "fr wrote": BODY
    + "\nLe lun. 23 nov. 2026 à 10:00, Shop <x@helpdesk.test> a écrit :\nBonjour\n",
    "it wrote": BODY + "\nIl giorno lun 23 nov 2026 alle 10:00 Shop ha scritto:\nCiao\n",
    # The library's Spanish line must be quoted and have two spaces before "escribió".
    "es wrote": BODY + "\n> El lun, 23 nov 2026 a las 10:00, Shop  escribió:\nHola\n",
    "nl wrote": BODY + "\nOp ma 23 nov 2026 om 10:00 Shop <x@helpdesk.test> schreef:\nHallo\n",
    "sv wrote": BODY + "\nDen 23 nov 2026 kl. 10:00 skrev Shop <x@helpdesk.test>:\nHej\n",
    "pl wrote": BODY + "\nDnia 23.11.2026 o 10:00 Shop napisał(a):\nCześć\n",
    "ja wrote": BODY + "\n2026年11月23日(月) 10:00 Shop <x@helpdesk.test>:\nこんにちは\n",
    "en fields": BODY + "\nFrom: Shop <x@helpdesk.test>\nSent: Monday\nTo: buyer\nHi\n",
    "de fields, quoted": BODY + "\n> Von: Shop\n> Gesendet: Montag\nHallo\n",
    "fr fields with a space": BODY + "\n*De :* Shop\n*Envoyé :* lundi\nBonjour\n",
    "pl one field": BODY + "\nOd: Shop\nDzień dobry\n",
    "original message": BODY + "\n-----Original Message-----\nHi\n",
    "marker deep down": PLAIN + "\nOn Mon, 23 Nov 2026, Shop <x@helpdesk.test> wrote:\nHi\n",
    "signature dashes": BODY + "\n-- \nJane Buyer\n+49 30 1234567\n",
    "signature hyphen name": BODY + "\n-Jane\n",
    "signature underscores": BODY + "\n__\nJane Buyer\n",
    # Normalizing, the library drops the first eight such lines; the ninth is a signature.
    "outlook line": BODY + "".join(f"\nPart {i}\n\n" + "_" * 40 for i in range(9)) + "\nJane\n",
    "closing phrase": BODY + "\nBest regards,\nJane\n",
    "closing phrase, de": BODY + "\nViele Grüße\nJane\n",
    "closing phrase, sv": BODY + "\n/Anna\n",
    "closing phrase deep down": PLAIN + "\nKind regards\nJane\n",
    "sent from": BODY + "\nSent from my iPhone\n",
    "sent from, es": BODY + "\nEnviado desde mi iPhone\n",
    "disclaimer": BODY
    + "\nCAUTION: This e-mail is confidential, if received by mistake delete it.\n",
    "disclaimer, no-break space": BODY + "\nConfidential\xa0Notice: this e-mail is private.\n",
}


@pytest.mark.parametrize("text", CUT.values(), ids=CUT.keys())
def test_the_precheck_never_skips_what_the_heuristic_cuts(text):
    assert strip_quoted(text, precheck=False) != text.strip()  # the heuristic cuts here
    assert strip_quoted(text) == strip_quoted(text, precheck=False)


KEPT = {
    "plain": BODY,
    "plain, long": PLAIN,
    "times and links": BODY + "Delivery at 10:30, see https://example.com/track:\n",
    "a field name mid-line": BODY + "Please send it to: Berlin\n",
    "a list": BODY + "--- not a signature\n",
    "indented and CRLF": "  Hello \r\n\tthere  \r\n",
    "quoted tail": BODY + "> earlier words\n",
}


@pytest.mark.parametrize("text", KEPT.values(), ids=KEPT.keys())
def test_texts_the_heuristic_keeps_come_out_the_same_without_it(text):
    assert strip_quoted(text) == strip_quoted(text, precheck=False)


def test_a_long_text_is_the_same_with_and_without_the_precheck():
    for text in (
        _lines(2 * QUOTE_SCAN_CHARS) + "\n" + HISTORY,
        "Thanks.\n" + HISTORY + _lines(2 * QUOTE_SCAN_CHARS),
        "Thanks.\nBest regards\nJane\n" + _lines(2 * QUOTE_SCAN_CHARS),
    ):
        assert strip_quoted(text) == strip_quoted(text, precheck=False)


def test_every_fixture_text_is_the_same_with_and_without_the_precheck():
    texts = [
        parse_message(p.read_bytes())
        for p in sorted(MAIL.glob("*.eml"))
        if p.name != "not_mail.eml"
    ]
    for text in [m.text for m in texts if m.text]:
        assert strip_quoted(text) == strip_quoted(text, precheck=False)


LINES = [
    "Hello", "", "> quoted", "On Mon, Shop wrote:", "Shop wrote:", "From: a", "Sent: b",
    "> To: c", "Subject: d", "-----Original Message-----", "--", "-- ", "- item", "-x",
    "_" * 33, "Best regards", "Thanks,", "Sent from my phone", "Gesendet von", "/Anna",
    "CAUTION: this mail", "Disclaimer", "Hinweis: diese E-Mail", "http://x.test:",
    "Am Montag schrieb Shop:", "Od: x", "Time: 10:30", "ends with:",
]  # fmt: skip


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from(LINES), max_size=12), st.sampled_from(["\n", "\r\n"]))
def test_any_mix_of_marker_lines_is_the_same_with_and_without_the_precheck(lines, end):
    text = end.join(lines)
    assert strip_quoted(text) == strip_quoted(text, precheck=False)


def test_the_precheck_knows_the_shape_of_the_librarys_patterns():
    """A version of mailparser_reply whose patterns no longer have the shape the
    pre-check's proof assumes turns the pre-check off (the heuristic reads every text);
    this fails then, so that the proof gets made again."""
    from mailparser_reply import EmailMessage

    languages = tuple(EmailMessage(text="", languages=list(REPLY_LANGUAGES)).languages)
    assert reply_precheck.header_pattern(languages) is not reply_precheck.ALWAYS
    assert reply_precheck.ALWAYS not in reply_precheck.tail_patterns(languages)


@pytest.fixture
def clear_patterns():
    """The pre-check's patterns are built once per languages: this clears them when the
    test calls it, and after the test."""
    yield _clear_patterns
    _clear_patterns()


def _clear_patterns():
    reply_precheck.header_pattern.cache_clear()
    reply_precheck.tail_patterns.cache_clear()


def test_patterns_of_another_shape_turn_the_precheck_off(monkeypatch, clear_patterns):
    from mailparser_reply import constants

    text = BODY + "\nVon Shop\nGesendet Montag\nHallo\n"
    assert strip_quoted(text) == strip_quoted(text, precheck=False) == text.strip()
    block = r"((?:^|\n)(?:Von|Gesendet)(?:\s.*){2,})"  # field names without a colon
    monkeypatch.setitem(constants.MAIL_LANGUAGES["de"], "from_header", block)
    monkeypatch.setattr(constants, "DEFAULT_SIGNATURE_REGEX", r"^--$")
    clear_patterns()
    languages = tuple(REPLY_LANGUAGES)
    assert reply_precheck.header_pattern(languages) is reply_precheck.ALWAYS
    assert set(reply_precheck.tail_patterns(languages)) == {reply_precheck.ALWAYS}
    assert strip_quoted(text) == strip_quoted(text, precheck=False) == BODY.strip()
