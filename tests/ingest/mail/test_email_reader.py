"""The email package's reader on deep nesting: multiparts nested deeper than
MAX_NESTING are not read, and what lies deeper is kept unread as one attachment, so
that mail looping through forwards costs what 100 levels cost, not thousands."""

from __future__ import annotations

import pytest

from ingest.mail import parse
from ingest.mail.email_reader import MAX_NESTING, NESTED_REST_NAME, read_email

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
