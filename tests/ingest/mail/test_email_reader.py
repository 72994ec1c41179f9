"""The email package's reader on deep nesting: multiparts nested deeper than
MAX_NESTING are not read, and what lies deeper is kept unread as one attachment, so
that mail looping through forwards costs what 100 levels cost, not thousands. And its
header values parsed once per mail (_remembering_headers), read as policy.default reads
them."""

from __future__ import annotations

from email.policy import default as default_policy

import pytest

from ingest.mail import parse
from ingest.mail.deadline import Deadline
from ingest.mail.email_reader import _read, _remembering_headers, read_email
from ingest.mail.nesting import MAX_NESTING, NESTED_REST_NAME
from tests.helpers import MAIL

HEAD = "From: buyer@example.com\nTo: uk-chan01@helpdesk.test\nSubject: Fwd\nMIME-Version: 1.0\n"


def nested(depth: int, *, closed: bool = True) -> bytes:
    """`depth` multiparts one inside the other, each with a text part "level k"."""
    inner = "Content-Type: text/plain\n\nthe innermost text\n"
    for k in reversed(range(depth)):
        close = f"--b{k}--\n" if closed else ""
        inner = (
            f'Content-Type: multipart/mixed; boundary="b{k}"\n\n'
            f"--b{k}\nContent-Type: text/plain\n\nlevel {k}\n--b{k}\n{inner}\n{close}"
        )
    return (HEAD + inner).encode()


@pytest.mark.parametrize("depth", [1, 20, MAX_NESTING])
def test_mail_up_to_the_cap_is_read_whole(depth):
    mail = read_email(nested(depth), 10**7)
    assert len(mail.text_parts) == depth + 1
    assert mail.text_parts[-1] == "the innermost text\n"
    assert mail.attachments == []


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "never closed"])
@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 2_000])
def test_deeper_mail_keeps_the_first_levels_and_the_rest_unread(depth, closed):
    raw = nested(depth, closed=closed)
    mail = read_email(raw, 10**7)
    assert [t.strip() for t in mail.text_parts] == [f"level {k}" for k in range(MAX_NESTING)]
    (rest,) = mail.attachments
    assert rest.filename == NESTED_REST_NAME and rest.content_type == "text/plain"
    # The unread rest is the bytes from the delimiter before level MAX_NESTING's multipart.
    assert raw.endswith(rest.data)
    assert rest.data.startswith(f"--b{MAX_NESTING - 1}\n".encode())
    assert b"the innermost text" in rest.data


@pytest.mark.parametrize("spelling", [b"BOUNDARY", b"Boundary"])
def test_the_boundaries_are_counted_whatever_their_case(spelling):
    # Mail naming no more boundaries than MAX_NESTING is not scanned; the count must see
    # every spelling the scan sees.
    raw = nested(MAX_NESTING + 1).replace(b"boundary", spelling)
    (rest,) = read_email(raw, 10**7).attachments
    assert rest.filename == NESTED_REST_NAME


def test_two_thousand_levels_parse_into_a_message_not_a_quarantine():
    parsed = parse.parse_message(nested(2_000, closed=False))
    assert parsed.subject == "Fwd" and parsed.text.startswith("level 0")
    assert [a.filename for a in parsed.attachments] == [NESTED_REST_NAME]


def test_many_multiparts_side_by_side_are_not_nesting():
    # A digest: hundreds of forwarded multiparts, each closed before the next opens.
    parts = "".join(
        f'--outer\nContent-Type: multipart/alternative; boundary="in{k}"\n\n'
        f"--in{k}\nContent-Type: text/plain\n\nmessage {k}\n--in{k}--\n"
        for k in range(3 * MAX_NESTING)
    )
    raw = (HEAD + f'Content-Type: multipart/mixed; boundary="outer"\n\n{parts}--outer--\n').encode()
    mail = read_email(raw, 10**7)
    assert len(mail.text_parts) == 3 * MAX_NESTING
    assert mail.attachments == []


#: Leaf parts whose headers differ in one parameter each, named every way a mail names
#: a file: plain, RFC 2231 (with a charset, and in continuations) and RFC 2047 words.
LEAVES = (
    "Content-Type: text/plain; charset=utf-8\n\nplain text\n",
    "Content-Type: text/plain; charset=iso-8859-1\n\nLatin-1 text\n",
    'Content-Type: application/pdf; name="invoice.pdf"\n'
    'Content-Disposition: attachment; filename="invoice.pdf"\n\n%PDF-1.4\n',
    "Content-Type: application/pdf\n"
    "Content-Disposition: attachment; filename*=utf-8''R%C3%BCcksendung.pdf\n\n%PDF-1.4\n",
    "Content-Type: image/jpeg\n"
    "Content-Disposition: attachment;\n filename*0*=utf-8''Pa%C3%A4ket-;\n filename*1=foto.jpg\n"
    "Content-ID: <photo@example.com>\n\n\xff\xd8\n",
    'Content-Type: text/csv; name="=?utf-8?b?0JfQsNC60LDQty5jc3Y=?="\n'
    'Content-Disposition: attachment; filename="=?utf-8?q?Bestellung_=C3=BC.csv?="\n\na,b\n',
    'Content-Type: image/png\nContent-Disposition: inline; filename="logo.png"\n'
    "Content-ID: <logo@example.com>\n\n\x89PNG\n",
)


def nested_leaves(depth: int) -> bytes:
    """Every one of LEAVES at each of `depth` levels, so the same headers come back."""
    inner = ""
    for k in reversed(range(depth)):
        leaves = "".join(f"--b{k}\n{leaf}" for leaf in LEAVES)
        inner = (
            f'Content-Type: multipart/mixed; boundary="b{k}"\n\n'
            f"{leaves}--b{k}\n{inner or LEAVES[0]}\n--b{k}--\n"
        )
    return (HEAD + inner).encode("utf-8", "surrogateescape")


def test_each_part_keeps_its_own_headers_when_they_are_parsed_once():
    # A cache that mixed parts up (by header name, or across mails) would hand one
    # part's type, charset, name or Content-ID to another.
    mail = read_email(nested_leaves(3), 10**7)
    names = [(a.filename, a.content_type, a.content_id, a.is_inline) for a in mail.attachments]
    assert names == 3 * [
        ("invoice.pdf", "application/pdf", None, False),
        ("Rücksendung.pdf", "application/pdf", None, False),
        ("Paäket-foto.jpg", "image/jpeg", "photo@example.com", False),
        ("Bestellung ü.csv", "text/csv", None, False),
        ("logo.png", "image/png", "logo@example.com", True),
    ]
    assert [t.strip() for t in mail.text_parts] == 3 * ["plain text", "Latin-1 text"] + [
        "plain text"
    ]


def test_the_next_mail_reads_its_own_headers():
    read_email(nested_leaves(2), 10**7)
    other = nested_leaves(2).replace(b"invoice.pdf", b"receipt.pdf")
    names = [a.filename for a in read_email(other, 10**7).attachments]
    assert names.count("receipt.pdf") == 2 and "invoice.pdf" not in names


@pytest.mark.parametrize(
    "raw",
    [pytest.param(p.read_bytes(), id=p.name) for p in sorted(MAIL.glob("*.eml"))]
    + [
        pytest.param(nested_leaves(40), id="nested leaves"),
        pytest.param(nested(MAX_NESTING), id="nested to the cap"),
    ],
)
def test_parsing_each_header_once_reads_as_policy_default_does(raw):
    data = raw.replace(b"\r\n", b"\n")
    try:
        plain = _read(data, default_policy, 10**7, Deadline(None))
    except Exception:  # read_email reads these without structured headers
        return
    assert _read(data, _remembering_headers(), 10**7, Deadline(None)) == plain
