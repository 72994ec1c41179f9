"""The parser's time bound: a parse that runs past INGEST_PARSE_SECONDS gives up with
TooSlowToParse, whichever reader reads the mail, and `parse_inbound` quarantines it."""

from __future__ import annotations

import pytest

from ingest.mail import parse
from ingest.mail.deadline import Deadline, TooSlowToParse
from ingest.mail.parse_result import Unparsed, parse_inbound
from tests.mailgen import runaway_message

TO = "uk-chan01@helpdesk.test"


@pytest.mark.parametrize("fast", [True, False], ids=["fast-mail-parser", "email package"])
def test_a_parse_past_its_time_limit_gives_up(fast):
    raw = runaway_message(TO)
    with pytest.raises(TooSlowToParse, match="too slow to parse"):
        parse._parse(raw, 10**7, fast=fast, deadline=Deadline(0.05))


def test_parse_inbound_quarantines_mail_too_slow_to_parse():
    raw = runaway_message(TO)
    result = parse_inbound(raw, max_attachment_bytes=10**7, time_limit=0.05)
    assert isinstance(result, Unparsed)
    assert result.reason == "too slow to parse: gave up after 0.05 s"
    assert result.content_hash == parse.content_hash(raw)


def test_mail_within_its_time_limit_parses_as_without_one():
    raw = runaway_message(TO, parts=50)
    assert parse.parse_message(raw, time_limit=60) == parse.parse_message(raw)
