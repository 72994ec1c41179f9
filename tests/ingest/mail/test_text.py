"""The one rule for characters no name may hold (ingest/mail/text.py): pure, no database."""

from __future__ import annotations

import pytest

from ingest.mail.text import describe_character, first_unsafe_character, strip_unsafe_characters

UNSAFE = [
    "\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9f", "\u2028", "\u2029",
    "\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069",
]  # fmt: skip
#: Letters of every script, emoji sequences and joiners that names really use.
SAFE = [
    "株式会社テスト", "Müller & Söhne GmbH", "שלום", "مرحبا", "👩‍👩‍👧", "می‌خواهم", "A\u00a0B",
    "O'Brien-Smith", "Łódź", "Ελληνικά",
]  # fmt: skip


@pytest.mark.parametrize("char", UNSAFE)
def test_unsafe_characters_are_found_and_stripped(char):
    assert first_unsafe_character(f"ab{char}cd") == char
    assert strip_unsafe_characters(f"ab{char}c{char}d") == "abcd"
    assert describe_character(char).startswith(f"U+{ord(char):04X} (")


@pytest.mark.parametrize("name", SAFE)
def test_real_names_pass(name):
    assert first_unsafe_character(name) is None
    assert strip_unsafe_characters(name) == name


def test_descriptions():
    assert describe_character("\r") == "U+000D (CARRIAGE RETURN)"
    assert describe_character("\u202e") == "U+202E (RIGHT-TO-LEFT OVERRIDE)"
    assert describe_character("\x1b") == "U+001B (control character)"
