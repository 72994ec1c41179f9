"""Fuzzing the mail parser and router with hypothesis: generated MIME trees, headers,
charsets and transfer encodings, and byte-level mutations of real mail.

Properties:
- `parse_message` returns a ParsedMessage or raises UnparseableMessage, nothing else;
- every field of the result has its declared type and shape (the classification
  flags are booleans, the Message-ID is `<…>`, addresses are lower-case, sizes add
  up), so nothing downstream meets a None or a surprise;
- the pipeline, through its public entry point (delivered into the Maildir, then
  `poll_all`), stores every generated mail as exactly one of stored, unrouted,
  quarantined or duplicate, never as a processing error, and the database accepts
  the rows (SQLite and PostgreSQL, whose text columns refuse NUL characters).

The default run is a few hundred examples per property; `make verify` runs the
`slow` variants with thousands.
"""

from __future__ import annotations

import base64
import quopri
import re
import string
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.mail.parse import ParsedMessage, UnparseableMessage, content_hash, parse_message
from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Message
from tests.helpers import MAIL
from tests.security.conftest import record

REAL_MAIL = sorted(p.read_bytes() for p in MAIL.glob("*.eml"))
HELPDESK = "uk-fuzz@helpdesk.test"

DEFAULT_EXAMPLES = 200
LONG_EXAMPLES = 8_000
#: Each pipeline example is a whole poll pass (about 70 ms): `make verify` runs this many
#: on each database, 1 to 4 mails each, within its 30-minute budget.
LONG_PIPELINE_EXAMPLES = 600

# --- strategies -----------------------------------------------------------------------------

CHARSETS = [
    "utf-8", "us-ascii", "iso-8859-1", "windows-1252", "iso-2022-jp", "iso-2022-jp-ms",
    "shift_jis", "euc-jp", "gb2312", "big5", "koi8-r", "utf-16", "utf-7", "x-unknown",
    "", "utf-8\"", "../../etc", "a" * 80,
]  # fmt: skip
ENCODINGS = ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", ""]
TYPES = [
    "text/plain", "text/html", "application/octet-stream", "application/pdf", "image/png",
    "image/svg+xml", "message/rfc822", "message/delivery-status", "text/calendar", "bogus",
    "text/", "/", "",
]  # fmt: skip
HEADER_NAMES = [
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
    "Delivered-To", "X-Original-To", "Envelope-To", "Return-Path", "Auto-Submitted",
    "Precedence", "X-Autoreply", "X-AMAZON-MAIL-RELAY-TYPE", "Reply-To", "Sender",
    "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
    "MIME-Version", "X-Weird",
]  # fmt: skip

hostile_text = st.lists(
    st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from(["\x00", "\r", "\n", "\t", "=?", "?=", "<", ">", "@", '"', ";", ",", "\\"]),
    max_size=60,
).map("".join)
ascii_text = st.text(alphabet=string.printable, max_size=120)


@st.composite
def encoded_word(draw) -> str:
    text = draw(hostile_text)
    charset = draw(st.sampled_from(CHARSETS))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        payload = base64.b64encode(data).decode()
        if draw(st.booleans()):
            payload = payload[: draw(st.integers(0, len(payload)))] + draw(
                st.sampled_from(["", "=", "!!", "@@@@"])
            )
        return f"=?{charset}?B?{payload}?="
    return f"=?{charset}?Q?{quopri.encodestring(data).decode(errors='replace')}?="


addresses = st.one_of(
    st.just(HELPDESK),
    st.just(HELPDESK.upper()),
    st.just("buyer-abc@marketplace.amazon.co.uk"),
    st.just("donotreply@amazon.de"),
    st.just("mailer-daemon@example.com"),
    st.builds("{}@{}".format, ascii_text, ascii_text),
    ascii_text,
)


@st.composite
def address_header(draw) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.one_of(hostile_text, encoded_word(), st.just("")))
        addr = draw(addresses)
        parts.append(draw(st.sampled_from([f'"{name}" <{addr}>', f"{name} <{addr}>", addr])))
    return draw(st.sampled_from([", ", ",", ";", " "])).join(parts)


@st.composite
def header_value(draw, name: str) -> str:
    if name in {"From", "To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To", "Reply-To"}:
        return draw(address_header())
    if name in {"Message-ID", "In-Reply-To", "References", "Content-ID"}:
        ids = draw(st.lists(st.one_of(ascii_text, hostile_text), max_size=4))
        return " ".join(draw(st.sampled_from(["<{}>", "{}", "<{}"])).format(i) for i in ids)
    if name == "Date":
        return draw(
            st.one_of(
                st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
                    lambda d: d.strftime("%a, %d %b %Y %H:%M:%S +0000")
                ),
                ascii_text,
                st.just("Mon, 32 Foo 99999 25:61:61 +9999"),
            )
        )
    return draw(st.one_of(hostile_text, encoded_word(), ascii_text))


def _fold(name: str, value: str, newline: str) -> str:
    # Header lines as a sender might write them, folded or not, newlines included.
    value = value.replace("\r", " ").replace("\n", newline + " ")
    return f"{name}: {value}{newline}"


@st.composite
def leaf_part(draw, newline: str) -> tuple[list[str], bytes]:
    ctype = draw(st.sampled_from(TYPES))
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(ENCODINGS))
    text = draw(hostile_text)
    if ctype == "text/html":
        text = draw(
            st.sampled_from(
                [text, f"<p>{text}</p>", f"<script>{text}</script>", f"<img src=x onerror={text}>"]
            )
        )
    data = draw(st.one_of(st.just(text.encode("utf-8", "surrogatepass")), st.binary(max_size=200)))
    if encoding == "base64":
        body = base64.encodebytes(data)
        if draw(st.booleans()):  # invalid base64: cut, padded wrongly, foreign characters
            body = body[: draw(st.integers(0, len(body)))] + draw(
                st.sampled_from([b"", b"=", b"===", b"*&^%", b"\x00\xff"])
            )
    elif encoding == "quoted-printable":
        body = quopri.encodestring(data)
        if draw(st.booleans()):
            body += draw(st.sampled_from([b"=", b"=Z", b"=\n", b"=0"]))
    else:
        body = data
    headers = [f"Content-Type: {ctype}; charset={charset}"]
    if draw(st.booleans()):
        headers = [f"Content-Type: {ctype}"]
    if encoding:
        headers.append(f"Content-Transfer-Encoding: {encoding}")
    if draw(st.booleans()):
        disposition = draw(st.sampled_from(["attachment", "inline", "bogus", ""]))
        filename = draw(st.one_of(hostile_text, encoded_word(), st.just("../../etc/passwd")))
        headers.append(f'Content-Disposition: {disposition}; filename="{filename}"')
    if draw(st.booleans()):
        headers.append(f"Content-ID: <{draw(ascii_text)}>")
    return [h.replace("\r", " ").replace("\n", " ") for h in headers], body.replace(
        b"\n", newline.encode()
    )


@st.composite
def mime_part(draw, newline: str, depth: int = 0) -> tuple[list[str], bytes]:
    if depth >= 4 or draw(st.integers(0, 2)) == 0:
        return draw(leaf_part(newline))
    subtype = draw(st.sampled_from(["mixed", "alternative", "related", "report", "digest", "x"]))
    boundary = draw(st.sampled_from(["b1", "=_boundary", "", "a b", '"q"', "x" * 80, "--"]))
    children = [draw(mime_part(newline, depth + 1)) for _ in range(draw(st.integers(0, 4)))]
    nl = newline.encode()
    body = draw(st.sampled_from([b"", b"preamble" + nl]))
    for headers, child in children:
        sep = draw(st.sampled_from([boundary, boundary, "other"]))
        body += b"--" + sep.encode() + nl
        body += b"".join(h.encode("utf-8", "surrogatepass") + nl for h in headers) + nl + child + nl
    if draw(st.booleans()):  # the closing boundary is often missing in broken mail
        body += b"--" + boundary.encode() + b"--" + nl
    header = f'Content-Type: multipart/{subtype}; boundary="{boundary}"'
    if subtype == "report":
        header += "; report-type=delivery-status"
    return [header], body


@st.composite
def generated_mail(draw) -> bytes:
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    names = draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=14))
    lines = [_fold(name, draw(header_value(name)), newline) for name in names]
    if draw(st.booleans()):
        lines.insert(0, _fold("To", HELPDESK, newline))  # routable more often than not
    if draw(st.integers(0, 4)):  # and most of it looks like mail, so it gets parsed deeply
        lines.insert(0, _fold("From", draw(header_value("From")), newline))
    part_headers, body = draw(mime_part(newline))
    lines += [h + newline for h in part_headers]
    head = "".join(lines).encode("utf-8", "surrogatepass")
    return head + newline.encode() + body


@st.composite
def mutated_real_mail(draw) -> bytes:
    raw = bytearray(draw(st.sampled_from(REAL_MAIL)))
    for _ in range(draw(st.integers(1, 12))):
        if not raw:
            break
        at = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "duplicate"]))
        if action == "flip":
            raw[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del raw[at : at + draw(st.integers(1, 64))]
        elif action == "insert":
            raw[at:at] = draw(
                st.sampled_from([b"\x00", b"\r", b"\n\n", b"--", b"=?utf-8?B?", b"\xff\xfe", b":"])
            )
        elif action == "truncate":
            del raw[at:]
        else:
            raw[at:at] = raw[at : at + draw(st.integers(1, 200))]
    return bytes(raw)


# Mostly generated MIME, then mutated real mail, then plain noise.
any_mail = st.one_of(
    generated_mail(),
    generated_mail(),
    generated_mail(),
    mutated_real_mail(),
    st.binary(max_size=400),
)

# --- properties ---------------------------------------------------------------------------

_MSGID = re.compile(r"^<[^<>\s]+>$")


def _sound_id(value: str) -> bool:
    """A `<…>` id, or one kept as written: trimmed, white space folded, one line, not
    only brackets, at most a header line long."""
    if _MSGID.match(value):
        return True
    return 0 < len(value) <= 998 and value == " ".join(value.split()) and bool(value.strip("<> "))


def check_parsed(raw: bytes) -> ParsedMessage | None:
    """Parse `raw`; assert the only failure is UnparseableMessage and the result is sound."""
    try:
        parsed = parse_message(raw)
    except UnparseableMessage:
        return None
    assert isinstance(parsed, ParsedMessage)
    assert _sound_id(parsed.message_id), parsed.message_id
    assert parsed.in_reply_to is None or _sound_id(parsed.in_reply_to)
    assert all(_sound_id(r) and " " not in r for r in parsed.references)
    for name in ("subject", "from_name", "from_address", "text", "visible_text", "buyer_name"):
        assert isinstance(getattr(parsed, name), str), name
    assert parsed.html is None or isinstance(parsed.html, str)
    for address in [parsed.from_address, *parsed.to_addresses, *parsed.delivery_addresses]:
        assert address == address.lower() and ("@" in address or address == "")
    for flag in ("is_autoreply", "is_bounce", "is_amazon_notification", "is_seller_central_copy"):
        assert isinstance(getattr(parsed, flag), bool), flag
    assert isinstance(parsed.is_automatic, bool)
    assert isinstance(parsed.snippet, str) and len(parsed.snippet) <= 200
    assert parsed.size == len(raw) and re.fullmatch(r"[0-9a-f]{64}", parsed.content_hash)
    assert parsed.sent_at is None or parsed.sent_at.tzinfo is not None
    for attachment in parsed.attachments:
        assert attachment.filename and len(attachment.filename) <= 200
        assert not set(attachment.filename) & {"/", "\\", "\x00", "\r", "\n"}
        assert attachment.size >= 0 and isinstance(attachment.content_type, str)
        assert attachment.data is None or len(attachment.data) == attachment.size
    return parsed


def _run_parser_property(raw: bytes) -> None:
    parsed = check_parsed(raw)
    record("fuzz parser: messages")
    if parsed is None:
        record("fuzz parser: unparseable (quarantine)")


def _parser_test(examples: int):
    @settings(max_examples=examples, deadline=None, database=None)
    @given(raw=any_mail)
    def run(raw: bytes) -> None:
        _run_parser_property(raw)

    return run


@pytest.mark.parametrize(
    "examples",
    [
        pytest.param(DEFAULT_EXAMPLES, id="quick"),
        pytest.param(LONG_EXAMPLES, id="full", marks=pytest.mark.slow),
    ],
)
def test_parser_on_generated_mail(request, examples: int):
    if examples == LONG_EXAMPLES and request.config.getoption("--postgres"):
        pytest.skip("no database involved: `make verify` runs it in its SQLite pass")
    _parser_test(examples)()


def _pipeline_test(drop_mail, examples: int):
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(mails=st.lists(any_mail, min_size=1, max_size=4))
    def run(mails: list[bytes]) -> None:
        for raw in mails:
            drop_mail(raw)
        summary = poll_all(force=True)
        # Each mail is exactly one of these, and none failed to store (a processing
        # error is quarantined too, but counted in `errors`: the database refused a row,
        # e.g. PostgreSQL a NUL character, or the router raised).
        assert summary.fetched == len(mails), summary.line()
        outcomes = {
            "stored": summary.stored,
            "duplicate": summary.duplicate,
            "unrouted": summary.unrouted,
            "quarantined": summary.quarantined,
        }
        assert sum(outcomes.values()) == len(mails), summary.line()
        assert summary.errors == 0, summary.line()
        record("fuzz pipeline: messages", len(mails))
        for name, count in outcomes.items():
            record(f"fuzz pipeline: {name}", count)

    return run


@pytest.fixture
def fuzz_channel(make_channel):
    return make_channel("UK", address=HELPDESK)


@pytest.mark.parametrize(
    "examples",
    [
        pytest.param(DEFAULT_EXAMPLES // 4, id="quick"),
        pytest.param(LONG_PIPELINE_EXAMPLES, id="full", marks=pytest.mark.slow),
    ],
)
def test_pipeline_classifies_and_stores_generated_mail(app, fuzz_channel, drop_mail, examples):
    _pipeline_test(drop_mail, examples)()
    # The router was reached: the generated mail addressed to the channel got threaded.
    assert db.session.query(Message).filter(Message.channel_id == fuzz_channel.id).count()


# --- what the fuzzer found, kept as plain regression cases -------------------------------------

#: The mail of FOUND's "no-break-space-as-message-id", named: it has no real Message-ID,
#: so the one expected is the synthetic one made from its hash.
NBSP_IDS = (
    b"From: a@b.c\nTo: uk-fuzz@helpdesk.test\nSubject: nbsp\n"
    b"Message-ID: <\xc2\xa0>\nIn-Reply-To: <\xc2\xa0>\n\nhello\n"
)

FOUND = {
    # CPython's structured header parser raises IndexError inside BytesParser on this
    # Content-Type: the mail used to be quarantined; it is read without structured headers.
    "content-type-crashes-the-header-parser": (
        b"From: Jane <jane@example.com>\nTo: uk-fuzz@helpdesk.test\n"
        b"Subject: =?utf-8?B?SMOpbGxv?=\nMIME-Version: 1.0\n"
        b"Content-Type: \x1f\xc2\xa2*\x11\xc2\x91@\xc2\xb0\xc2\xa5;\xf4\x8a\x8d\x91\xc3\x95*\n"
        b"Message-ID: <a@b>\n\nhello\n",
        {"subject": "Héllo", "from_name": "Jane", "message_id": "<a@b>"},
    ),
    # CPython's structured parser raises IndexError on a Message-ID of "< " (under
    # policy.default); the presence check now only tests presence, never parses.
    "message-id-crashes-the-presence-check": (
        b'Message-ID: < \nFrom: "X" <x@y.z>\nTo: uk-fuzz@helpdesk.test\n'
        b"Subject: =?utf-8?Q?caf=C3=A9?=\n\nbody\n",
        {"subject": "café", "from_name": "X"},
    ),
    # 8-bit bytes in a header came back as lone surrogates, which no database encodes:
    # the insert failed and the mail was quarantined as "processing failed".
    "utf8-bytes-in-message-id": (
        b"From: Jane <jane@example.com>\nTo: uk-fuzz@helpdesk.test\nSubject: hi\n"
        b"Message-ID: <\xc3\xbd@example.com>\n\nhello\n",
        {"message_id": "<ý@example.com>"},
    ),
    # Bytes outside JIS X 0208 inside an ISO-2022-JP escape: ValueError from the
    # CP50220 fallback decoder.
    "iso-2022-jp-with-stray-8-bit-bytes": (
        b"From: a@b.c\nTo: uk-fuzz@helpdesk.test\nSubject: x\n"
        b"Content-Type: text/plain; charset=iso-2022-jp\n\n\x1b$B\xa4\xa2\x30\x22\x1b(B ok\n",
        {"subject": "x"},
    ),
    # 8-bit bytes that decode to whitespace (C2 A0, a no-break space) passed as a
    # Message-ID "<\xa0>" and In-Reply-To: undecoded they were not whitespace yet.
    "no-break-space-as-message-id": (
        NBSP_IDS,
        {
            "subject": "nbsp",
            "in_reply_to": None,
            "message_id": f"<{content_hash(NBSP_IDS)[:40]}@synthetic.sellerdesk>",
        },
    ),
    # NUL characters: PostgreSQL's text columns refuse them.
    "nul-in-subject-and-body": (
        b"From: a@b.c\nTo: uk-fuzz@helpdesk.test\nSubject: a\x00b\n\nbody\x00x\n",
        {"subject": "a\ufffdb"},
    ),
}


@pytest.mark.parametrize("name", FOUND)
def test_mail_the_fuzzer_found_is_parsed_and_stored(app, fuzz_channel, drop_mail, name):
    raw, expected = FOUND[name]
    parsed = check_parsed(raw)
    assert parsed is not None
    for field_name, value in expected.items():
        assert getattr(parsed, field_name) == value, field_name
    assert "\x00" not in parsed.text
    drop_mail(raw)
    summary = poll_all(force=True)
    assert (summary.stored, summary.errors) == (1, 0), summary.line()
    message = db.session.query(Message).filter(Message.channel_id == fuzz_channel.id).one()
    assert message.message_id == parsed.message_id
