"""The two readers of `ingest.mail.parse` give the same ParsedMessage, but where documented.

`parse_message` reads mail with fast-mail-parser and hands it to the email package
where fast-mail-parser refuses it (bad Base64 or quoted-printable, a header block it
cannot split, nesting past its cap) or reads it in a way the email package's reading
is kept for (bare CR line ends, top-level header names RFC 5322 does not allow,
boundaries RFC 2046 does not allow). A part's header block that a line of text ends
early is brought to the email package's reading first, and read by fast-mail-parser.
`parse._parse(raw, …, fast=False)` is the email package alone. These tests parse the
same bytes both ways: the fixtures, the benchmark's mix and MIME edge cases must come
out the same; `DIFFERENCES` lists where they do not, what each reader makes of it and
which one the RFCs side with.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.corpus import Corpus
from ingest.mail import parse
from ingest.mail.fast_reader import read_fast
from ingest.mail.nesting import MAX_NESTING, NESTED_REST_NAME
from ingest.mail.parse import DEFAULT_MAX_ATTACHMENT_BYTES, UnparseableMessage
from tests.helpers import MAIL


def _read(raw: bytes, *, fast: bool) -> dict | str:
    try:
        return dataclasses.asdict(parse._parse(raw, DEFAULT_MAX_ATTACHMENT_BYTES, fast=fast))
    except UnparseableMessage as exc:
        return f"unparseable: {exc}"


def assert_same(raw: bytes) -> bool:
    """Both ways give the same result; True if fast-mail-parser read the mail."""
    fast, email = _read(raw, fast=True), _read(raw, fast=False)
    if isinstance(fast, dict) and isinstance(email, dict):
        assert {k: v for k, v in fast.items() if v != email[k]} == {}
    assert fast == email
    return read_fast(parse._lf_endings(raw), DEFAULT_MAX_ATTACHMENT_BYTES) is not None


def test_fixtures_read_the_same():
    read_fast = [assert_same(p.read_bytes()) for p in sorted(MAIL.glob("*.eml"))]
    assert sum(read_fast) == len(read_fast) - 1  # all but broken_mime.eml (its Base64)


def test_benchmark_mix_reads_the_same():
    corpus = Corpus(start=datetime(2026, 11, 1, tzinfo=UTC))
    read_fast = [assert_same(corpus.message(i)) for i in range(400)]
    assert sum(read_fast) >= 395  # copies of broken_mime.eml are the email package's


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
        _multipart(LEAF + b"\n--b1x\n--b1 x\n x--b1\n", B64),  # boundary-like lines in text
        _multipart(LEAF, B64, close=b"--b1-- \t\n"),
        _multipart(b"X-Broken line\n" + LEAF, B64),  # part headers ending early
        _multipart(b"Content-Type: text/plain\nX-Broken line\nmore text\n\nbody\n", B64),
        _multipart(LEAF, b"the end, and no closing boundary\n", B64),  # a headerless part
        _multipart(b"Content-Type: text/plain\nSubject : spaced\n\nbody\n"),
        _multipart(b"Content-Type: text/plain\nBr\xc3\xbcche: x\n\nbody\n"),  # 8-bit name
        _multipart(b"Content-Type: text/plain\nJunk caf\xe9\n\nbody\n"),  # Latin-1 name
        _multipart(  # the same line of text after a delimiter-like line in a body
            b"Content-Type: text/plain\n\ntext\n--b1x\nX-Broken line\n", b"X-Broken line\n"
        ),
        _multipart(  # a boundary with a colon: its delimiter line looks like a field
            LEAF, boundary=b"a:b", close=b"--a:b\n--a:b\nJunk line\n\nbody\n--a:b--\n"
        ),
        b"From: a@b.c\nX-Broken line\nSubject: s\n\nbody\n",  # the top-level block
        _multipart(  # a "From " line and an empty name: header lines for the email package
            b"Content-Type: text/plain\nFrom someone\n: empty\nX-Broken line\n\nbody\n"
        ),
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
        _multipart(LEAF, boundary=b"Type", close=b"--Type--\n"),  # also in "Content-Type"
        _multipart(LEAF).replace(b'boundary="b1"', b"boundary*0=b; boundary*1=1"),  # RFC 2231
        _multipart(LEAF).replace(b'boundary="b1"', b'boundary="b1 "'),  # trailing space
        _multipart(LEAF).replace(b'boundary="b1"', b"boundary=b1"),  # unquoted
        _multipart(LEAF, close=b"--b1--\nepilogue\n--b1\n--b1--\n"),  # delimiters after close
        _multipart(close=b"").replace(b"preamble", b"no delimiter at all\n" + LEAF),
        _multipart(LEAF, b"", close=b"--b1--\n\n--b1\n" + LEAF + b"\n--b1--\nend\n"),
        _multipart(  # the same boundary inside
            b'Content-Type: multipart/alternative; boundary="b1"\n\n--b1\n' + LEAF, B64
        ),
        _multipart(  # one line delimits both "b1" and the inner "b1--"
            b'Content-Type: multipart/alternative; boundary="b1--"\n\n--b1--\n' + LEAF, B64
        ),
        # Bare CR line ends; header names RFC 5322 does not allow; Base64 that is not:
        # all read by the email package.
        b"From: a@b.c\rTo: b@c.d\rSubject: cr\r\rbody\r",
        b"\x00elivered-To: a@b.c\nFrom: x@y.z\nSubject: s\n\nbody\n",
        b"From a@b Mon Jan  1 00:00:00 2026\nFrom: x@y.z\nSubject: s\n\nbody\n",
        b"From: a@b.c\nSubject: x\nContent-Transfer-Encoding: base64\n\nSGVsbG8!!!\n",
        # Address headers: both read them with getaddresses from the text as written.
        b"From: Doe, Jane <j@x.y>\nTo: a@b.c, , b@c.d\nCc: j@x.y (Jane (nested) Doe)\n\nx\n",
        b"From: =?iso-8859-1?Q?M=FCller=2C_Hans?= <h@x.y>\nTo: team: a@x.y, b@x.y;\n\nx\n",
        b'From: "Jane\tBuyer"\n <jane@x.y>\nTo: undisclosed-recipients:;\nSubject: s',
    ],
)
def test_mime_edge_cases_read_the_same(raw):
    assert_same(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@b.c\rTo: b@c.d\rSubject: cr\r\rbody\r",
        b"\x00elivered-To: a@b.c\nFrom: x@y.z\nSubject: s\n\nbody\n",
        _multipart(LEAF).replace(b'boundary="b1"', b'boundary="b1 "'),
        _multipart(LEAF, boundary=b"x" * 71, close=b""),
        (MAIL / "broken_mime.eml").read_bytes(),
    ],
)
def test_what_the_email_package_reads(raw):
    assert read_fast(parse._lf_endings(raw), DEFAULT_MAX_ATTACHMENT_BYTES) is None
    assert_same(raw)


@pytest.mark.parametrize(
    "raw",
    [
        _multipart(b"X-Broken line\n" + LEAF, B64),
        _multipart(b"Content-Type: text/plain\nX-Broken line\nmore text\n\nbody\n", B64),
        _multipart(LEAF, b"the end, and no closing boundary\n", B64),
        _multipart(b"Content-Type: text/plain\nJunk caf\xe9\n\nbody\n"),
    ],
)
def test_part_header_blocks_a_line_of_text_ends_are_read_by_fast_mail_parser(raw):
    assert read_fast(parse._lf_endings(raw), DEFAULT_MAX_ATTACHMENT_BYTES) is not None
    assert_same(raw)


def test_the_line_of_text_stays_in_the_body():
    raw = _multipart(b"Content-Type: text/plain\nX-Broken line\nmore text\n\nbody\n")
    assert parse.parse_message(raw).text == "X-Broken line\nmore text\n\nbody\n"


def _nested(depth: int, last: bytes) -> bytes:
    """`depth` multiparts one inside the other, never closed, each with a text part; the
    innermost part is `last`."""
    levels = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n'
        b"Content-Type: text/plain\n\nlevel %d\n--b%d\n" % (k, k, k, k)
        for k in range(depth)
    )
    return b"From: a@b.c\nTo: x@y.z\nSubject: loop\n" + levels + last


@pytest.mark.parametrize("depth", [3, MAX_NESTING, MAX_NESTING + 1, 400])
@pytest.mark.parametrize(
    "last",
    [b"Content-Type: text/plain\n\nthe end\n", b"the end, and no closing boundary\n"],
    ids=["a part", "a line of text"],
)
def test_endless_nesting_reads_the_same_to_the_same_depth(depth, last):
    # Mail looping through forwards: both readers read MAX_NESTING levels and keep the
    # rest unread, and fast-mail-parser reads it (the email package takes the longest
    # over it). The last line break of the last part is the documented difference
    # ("last part of a multipart never closed").
    raw = _nested(depth, last)
    assert read_fast(parse._lf_endings(raw), DEFAULT_MAX_ATTACHMENT_BYTES) is not None
    fast = parse._parse(raw, DEFAULT_MAX_ATTACHMENT_BYTES, fast=True)
    email = parse._parse(raw, DEFAULT_MAX_ATTACHMENT_BYTES, fast=False)
    assert fast.text == email.text + "\n"
    assert dataclasses.replace(fast, text=email.text) == email
    read = [a.filename for a in fast.attachments]
    assert read == ([NESTED_REST_NAME] if depth > MAX_NESTING else [])
    assert fast.text.count("level") == min(depth, MAX_NESTING)


@settings(max_examples=300, deadline=None, database=None)
@given(value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80))
def test_ascii_subjects_read_the_same(value):
    folded = value.replace(" ", "\n ", 1) if len(value) > 40 else value
    raw = b"From: a@b.c\nSubject: " + folded.encode() + b"\n\nbody\n"
    assert _read(raw, fast=True) == _read(raw, fast=False)


HEAD = b"From: a@b.c\nTo: x@y.z\n"

#: name -> (mail, what is compared, fast-mail-parser's reading, the email package's).
DIFFERENCES = {
    # RFC 6532 3.2 allows UTF-8 in headers, nothing else: other 8-bit bytes are a guess
    # either way. fast-mail-parser reads them as Latin-1, the email package replaces
    # them. Kept: fast-mail-parser's, which keeps the letters of Latin-1 mail.
    "8-bit non-UTF-8 header bytes": (
        HEAD + b"Subject: caf\xe9\n\nx\n",
        lambda p: p.subject,
        "café",
        "caf\ufffd",
    ),
    # RFC 2047 6.3: an encoded word a reader cannot decode (unknown charset, bad
    # Base64) may be shown as written; the email package decodes what it can and drops
    # the rest. Both are allowed; fast-mail-parser's keeps what the sender wrote.
    "encoded word that does not decode": (
        HEAD + b"Subject: =?euc-jp?B?!!?= x =?x-unknown?Q?caf=E9?=\n\nx\n",
        lambda p: p.subject,
        "=?euc-jp?B?!!?= x =?x-unknown?Q?caf=E9?=",
        "x caf\ufffd",
    ),
    # The same in a file name (where RFC 2047 5 allows no encoded word at all; senders
    # write them, and both readers decode those in charsets they know).
    "encoded word in a file name, unknown charset": (
        HEAD + b'Content-Type: application/pdf\nContent-Disposition: attachment; filename="'
        b'=?x-unknown?B?YWJj?="\n\nx\n',
        lambda p: p.attachments[0].filename,
        "=?x-unknown?B?YWJj?=",
        "abc",
    ),
    # RFC 5322 3.2.4: in a quoted string "\r" is a quoted pair, the letter r. The
    # email package is right; fast-mail-parser keeps the backslash, which the stored
    # name turns into "_" like any other. Left as it is (the raw parameter is not
    # available to correct it), harmless.
    "quoted pair in a file name": (
        HEAD + b'Content-Type: application/pdf; name="inv\\r\\noice.pdf"\n\nx\n',
        lambda p: p.attachments[0].filename,
        "inv_r_noice.pdf",
        "invrnoice.pdf",
    ),
    # RFC 2045 6.7: a quoted-printable line break stands for CRLF, the canonical line
    # end. fast-mail-parser is right; the email package gives the LF of the mail as we
    # hand it over (line ends normalised). Body text is LF either way.
    "quoted-printable line breaks in an attachment": (
        HEAD + b"Content-Type: text/csv\nContent-Disposition: attachment; filename=a.csv\n"
        b"Content-Transfer-Encoding: quoted-printable\n\na;b\nc;d\n",
        lambda p: p.attachments[0].data,
        b"a;b\r\nc;d\r\n",
        b"a;b\nc;d\n",
    ),
    # RFC 2045 6.4: an unrecognised transfer encoding (x-uuencode is none of RFC
    # 2045's) leaves the bytes as they are. fast-mail-parser does so; the email
    # package decodes uuencode.
    "x-uuencode": (
        HEAD + b"Content-Type: application/octet-stream\nContent-Disposition: attachment; "
        b"filename=x\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n#86)C\n`\nend\n",
        lambda p: p.attachments[0].data,
        b"begin 644 x\n#86)C\n`\nend\n",
        b"abc",
    ),
    # RFC 2046 5.1.1: the line break before a delimiter belongs to the delimiter. In a
    # multipart that is never closed, the last part has none after it, so its last
    # line break is content: fast-mail-parser is right, the email package drops it.
    "last part of a multipart never closed": (
        _multipart(close=b"--b1\nContent-Type: application/pdf\n\n%PDF\n"),
        lambda p: p.attachments[0].data,
        b"%PDF\n",
        b"%PDF",
    ),
    # RFC 2046 5.1.1: a close delimiter right after a delimiter ends the multipart;
    # what follows is epilogue, to be ignored. fast-mail-parser is right; the email
    # package reads on and takes the part after it.
    "close delimiter right after a delimiter": (
        _multipart(b"Content-Type: text/plain\n\nline", close=b"--b1\n--b1--\n" + LEAF),
        lambda p: p.text,
        "line",
        "line\n\n" + LEAF.decode().split("\n\n", 1)[1].rstrip("\n"),
    ),
    # A close delimiter before any part (RFC 2046's grammar has no place for it). The
    # email package ends the multipart there and reads nothing, as RFC 2046 says of
    # what follows a close delimiter; fast-mail-parser reads the parts after it. The
    # email package is right; the difference is kept: such mail is broken on purpose,
    # and fast-mail-parser only shows text the sender wrote.
    "close delimiter before any part": (
        _multipart(close=b"--b1--\n" + b"Content-Type: text/plain\n\nline\n--b1\n"),
        lambda p: p.text,
        "line",
        "",
    ),
}


@pytest.mark.parametrize("name", DIFFERENCES)
def test_documented_differences(name):
    raw, read, by_fast_mail_parser, by_email = DIFFERENCES[name]
    fast = parse._parse(raw, DEFAULT_MAX_ATTACHMENT_BYTES, fast=True)
    assert read_fast(parse._lf_endings(raw), DEFAULT_MAX_ATTACHMENT_BYTES) is not None
    assert read(fast) == by_fast_mail_parser
    assert read(parse._parse(raw, DEFAULT_MAX_ATTACHMENT_BYTES, fast=False)) == by_email
    assert parse.parse_message(raw) == fast
