"""What the parser keeps out of the feedparser (`ingest.parse._stub_bodies`) changes nothing.

The parser replaces larger leaf bodies and runs of top-level header fields by stubs
and renames boundaries before the email package reads the mail, and puts everything
back afterwards. These tests parse the same bytes both ways and compare the whole
message tree (headers, payloads, preambles, epilogues, defects) and the
ParsedMessage, on the fixtures, the benchmark's real-world mix, MIME edge cases and
generated mail with every leaf stubbed; and they compare the parser's shortcuts for
Content-Type and plain header text with the email package's own reading.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.corpus import Corpus
from ingest import parse
from ingest.parse import UnparseableMessage, parse_message
from tests.security.test_fuzz_parser import generated_mail, mutated_real_mail

MAIL = Path(__file__).resolve().parent.parent / "data" / "mail"


def _tree(msg) -> list:
    return [
        (
            list(part.raw_items()),
            part.get_default_type(),
            part.is_multipart(),
            None if part.is_multipart() else part.get_payload(),
            part.preamble,
            part.epilogue,
            [type(d).__name__ for d in part.defects],
        )
        for part in msg.walk()
    ]


def _whole(data: bytes):
    return BytesParser(policy=parse._POLICY).parsebytes(data)


def _parsed(raw: bytes):
    try:
        return parse_message(raw)
    except UnparseableMessage as exc:
        return str(exc)


def assert_same(raw: bytes, monkeypatch) -> bool:
    """Both ways agree on `raw`; True if any body was stubbed."""
    data = parse._lf_endings(raw)
    fed, stubs = parse._stub_bodies(data)
    assert _tree(parse._parse_mime(data, parse._POLICY)) == _tree(_whole(data))
    if stubs is not None:
        assert fed != data and len(stubs.bodies) + len(stubs.boundaries) + len(stubs.headers) >= 1
    stubbed = _parsed(raw)
    with monkeypatch.context() as m:
        m.setattr(parse, "_stub_bodies", lambda data: (data, None))
        assert stubbed == _parsed(raw)
    return stubs is not None


@pytest.fixture
def stub_everything(monkeypatch):
    """Stub every leaf body however small, so small generated mail exercises the walk."""
    monkeypatch.setattr(parse, "_STUB_MIN_BODY", 0)


def test_fixtures_parse_the_same(monkeypatch, stub_everything):
    stubbed = [assert_same(p.read_bytes(), monkeypatch) for p in sorted(MAIL.glob("*.eml"))]
    assert sum(stubbed) >= 8  # the walk really ran on most of them


def test_benchmark_mix_parses_the_same(monkeypatch):
    corpus = Corpus(start=datetime(2026, 11, 1, tzinfo=UTC))
    stubbed = [assert_same(corpus.message(i), monkeypatch) for i in range(250)]
    # Attachments, HTML and transport-header-heavy mail: most of it is stubbed.
    assert sum(stubbed) > 100


def _multipart(*parts: bytes, boundary: bytes = b"b1", close: bytes = b"--b1--\n") -> bytes:
    body = b"".join(b"--" + boundary + b"\n" + p + b"\n" for p in parts)
    return (
        b"From: a@example.com\nTo: b@example.com\nSubject: s\n"
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\n\npreamble\n' + body + close
    )


LEAF = b"Content-Type: text/plain\n\n" + b"line of text\n" * 60
B64 = b"Content-Type: image/png\nContent-Transfer-Encoding: base64\n\n" + b"QUJD" * 19 * 40


@pytest.mark.parametrize(
    "raw",
    [
        _multipart(LEAF, B64),
        _multipart(LEAF, B64, close=b""),  # no close delimiter
        _multipart(LEAF, B64, close=b"--b1--\nepilogue\n--b1\n" + LEAF),  # after the close
        _multipart(LEAF, b"", B64),  # a run of delimiters
        _multipart(LEAF, close=b"--b1\n--b1--\n" + LEAF),  # close right after a delimiter
        _multipart(LEAF + b"\n--b1x\n--b1 x\n x--b1\n", B64),  # boundary-like lines in text
        _multipart(LEAF, B64, close=b"--b1-- \t\n"),
        _multipart(b"X-Broken line\n" + LEAF, B64),  # headers the feedparser ends early
        _multipart(b"\n" + LEAF, B64),  # a part without headers
        _multipart(b"Content-Type: message/rfc822\n\n" + LEAF, B64),
        _multipart(
            b'Content-Type: multipart/alternative; boundary="b2"\n\n--b2\n'
            + LEAF
            + b"\n--b1\n"  # the outer delimiter inside the inner multipart
            + B64,
        ),
        _multipart(
            b'Content-Type: multipart/digest; boundary="d"\n\n--d\n\n' + LEAF + b"\n--d--\n"
        ),
        _multipart(b"Content-Type: multipart/mixed\n\n" + LEAF),  # no boundary
        _multipart(LEAF, boundary=b"\xe2\x9c\x93"),
        LEAF.replace(b"Content-Type", b"From: a@b.c\nContent-Type"),  # a single part
        # Boundaries the renaming must leave alone or get exactly right:
        _multipart(LEAF, boundary=b"Type", close=b"--Type--\n"),  # also in "Content-Type"
        _multipart(LEAF, boundary=b"b1", close=b"--b1--\n").replace(
            b'boundary="b1"', b'boundary="b1"; x-note="b1"'
        ),  # twice in the header
        _multipart(LEAF).replace(b'boundary="b1"', b"boundary*0=b; boundary*1=1"),  # RFC 2231
        _multipart(LEAF).replace(b'boundary="b1"', b'boundary="b1 "'),  # trailing space
        _multipart(LEAF).replace(b'boundary="b1"', b"boundary=b1"),  # unquoted
        _multipart(LEAF, close=b"--b1--\nepilogue\n--b1\n--b1--\n"),  # delimiters after close
        _multipart(close=b"--b1--\n" + LEAF + b"\n--b1\n" + LEAF),  # close comes first
        _multipart(close=b"").replace(b"preamble", b"no delimiter at all\n" + LEAF),
        _multipart(LEAF, b"", close=b"--b1--\n\n--b1\n" + LEAF + b"\n--b1--\nend\n"),
        _multipart(  # the same boundary inside
            b'Content-Type: multipart/alternative; boundary="b1"\n\n--b1\n' + LEAF, B64
        ),
        _multipart(  # one line delimits both "b1" and the inner "b1--"
            b'Content-Type: multipart/alternative; boundary="b1--"\n\n--b1--\n' + LEAF, B64
        ),
        _multipart(LEAF + b"\n--sdBq7Zk00\n", B64),  # a stand-in in the mail itself
        b"From: a@b.c\ncontent-type:  TEXT/PLAIN\n\tcharset=utf-8\n\n" + b"x\n" * 900,
    ],
)
def test_edge_cases_parse_the_same(raw, monkeypatch, stub_everything):
    assert_same(raw, monkeypatch)


def test_a_stub_that_does_not_come_back_means_parsing_whole(monkeypatch, caplog):
    raw = _multipart(LEAF, B64)
    real = parse._stub_bodies

    def lose_one(data):
        fed, stubs = real(data)
        stubs.bodies["never-in-the-mail"] = (0, 1, True)
        return fed, stubs

    monkeypatch.setattr(parse, "_stub_bodies", lose_one)
    assert _tree(parse._parse_mime(raw, parse._POLICY)) == _tree(_whole(raw))
    assert "parsing" in caplog.text and "whole" in caplog.text


def test_boundaries_are_renamed_and_put_back(stub_everything):
    raw = _multipart(
        b'Content-Type: multipart/alternative; boundary="inner-7"\n\n--inner-7\n'
        + LEAF
        + b"\n--inner-7--\n",
        B64,
        boundary=b"=_outer_Part_1",
        close=b"--=_outer_Part_1--\n",
    )
    fed, stubs = parse._stub_bodies(raw)
    assert b"inner-7" not in fed and b"=_outer_Part_1" not in fed
    assert sorted(stubs.boundaries.values()) == ["=_outer_Part_1", "inner-7"]
    msg = parse._parse_mime(raw, parse._POLICY)
    assert [p.get_boundary() for p in msg.walk() if p.is_multipart()] == [
        "=_outer_Part_1",
        "inner-7",
    ]
    assert _tree(msg) == _tree(_whole(raw))


def test_a_boundary_that_does_not_come_back_means_parsing_whole(monkeypatch, caplog):
    raw = _multipart(LEAF, B64)
    real = parse._stub_bodies

    def lose_one(data):
        fed, stubs = real(data)
        stubs.boundaries["sdBq7Zk99"] = "never-in-the-mail"
        return fed, stubs

    monkeypatch.setattr(parse, "_stub_bodies", lose_one)
    assert _tree(parse._parse_mime(raw, parse._POLICY)) == _tree(_whole(raw))
    assert "whole" in caplog.text


def test_stubs_cannot_be_forged():
    raw = _multipart(LEAF, B64)
    one, two = parse._stub_bodies(raw)[1], parse._stub_bodies(raw)[1]
    assert one.token != two.token and len(one.token) >= 24


@settings(max_examples=300, deadline=None, database=None)
@given(raw=st.one_of(generated_mail(), generated_mail(), mutated_real_mail()))
def test_generated_mail_parses_the_same(raw):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(parse, "_STUB_MIN_BODY", 0)
        assert_same(raw, monkeypatch)


_PARAM_TEXT = st.text(alphabet="abcXYZ09'+_,./:=?- \t;\"\\()Bb", min_size=0, max_size=12)


@st.composite
def content_type_headers(draw) -> bytes:
    """Content-Type headers around a boundary: plain, quoted, odd, doubled, folded."""
    ctype = draw(st.sampled_from(["multipart/mixed", "Multipart/Alternative", "text/plain", "x"]))
    params = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["boundary", "BOUNDARY", "charset", "x-boundary", "boundary*"]),
                st.sampled_from(["=", " = ", "=\n\t"]),
                st.booleans(),
                _PARAM_TEXT,
            ),
            max_size=3,
        )
    )
    text = ctype + "".join(
        f";{draw(st.sampled_from([' ', '', chr(10) + ' ']))}{name}{eq}"
        + (f'"{value}"' if quoted else value)
        for name, eq, quoted, value in params
    )
    return b"Content-Type: " + text.encode() + b"\n"


@settings(max_examples=400, deadline=None, database=None)
@given(header=content_type_headers())
def test_content_type_shortcut_reads_headers_as_the_parser_does(header):
    def outcome(read):
        try:
            return read(header)
        except Exception as exc:  # the email package raises on some of these: so must we
            return type(exc)

    assert outcome(parse._content_type) == outcome(parse._parsed_content_type.__wrapped__)


def test_plain_header_text_is_what_the_header_parser_makes_of_it():
    corpus = Corpus(start=datetime(2026, 11, 1, tzinfo=UTC))
    raws = [p.read_bytes() for p in sorted(MAIL.glob("*.eml"))]
    raws += [corpus.message(i) for i in range(300)]
    raws.append(b'Subject: tabs\tand  folded\n  lines (not) \\"quoted\\"; a=b\nFrom: a@b.c\n\nx\n')
    checked = 0
    for raw in raws:
        msg = _whole(parse._lf_endings(raw))
        headers = parse._raw_headers(msg)
        for name in ("Subject", "Auto-Submitted", "Precedence", "X-AMAZON-MAIL-RELAY-TYPE"):
            if name.lower() in headers:
                assert parse._header(msg, headers, name) == " ".join(str(msg.get(name)).split())
                checked += 1
    assert checked > 300


@settings(max_examples=300, deadline=None, database=None)
@given(value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80))
def test_plain_header_text_any_ascii(value):
    folded = value.replace(" ", "\n ", 1) if len(value) > 40 else value
    msg = _whole(b"From: a@b.c\nSubject: " + folded.encode() + b"\n\nbody\n")
    headers = parse._raw_headers(msg)
    assert parse._header(msg, headers, "Subject") == " ".join(str(msg.get("Subject")).split())
