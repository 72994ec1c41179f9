"""What a bounce says: which message it returns and why (RFC 3464 delivery status
notifications, and the plain-text bounces of MTAs that do not send them).

A bounce of one of our replies must find that reply: by the Message-ID of the returned
message (a `message/rfc822` or `text/rfc822-headers` part, or the copy a plain-text
bounce quotes), else by the bounce's own In-Reply-To and References. Only bounces are
read here, once the parser has classified them, and only their first
MAX_BOUNCE_BYTES: a bounce that returns a whole multi-megabyte message still has
its headers near the top.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

from ingest.mail.charsets import decode_bytes, storable
from ingest.mail.headers import message_ids

MAX_BOUNCE_BYTES = 256 * 1024
#: A reason longer than this is cut: it is shown on a page and in the outbox list.
MAX_REASON_CHARS = 500

_HEADER_LINE = re.compile(rb"^(?:Message-ID|Message-Id|Message-id)[ \t]*:[ \t]*(.*)$", re.M | re.I)
_FIELD = re.compile(r"^([A-Za-z-]+)[ \t]*:[ \t]*(.*)$")


@dataclass(frozen=True)
class BounceReport:
    """Message-IDs the bounce cites, most telling first, and why delivery failed."""

    cited_ids: list[str]
    reason: str
    status: str | None = None


def read_bounce(raw: bytes) -> BounceReport:
    """What a bounce returns and why; never raises on a malformed one."""
    head = raw[:MAX_BOUNCE_BYTES]
    mail = message_from_bytes(head, policy=policy.compat32)
    returned: list[str] = []
    status = diagnostic = None
    human = ""
    for part in mail.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            status, diagnostic = _delivery_status(part)
        elif kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            returned += _returned_ids(part)
        elif kind == "text/plain" and not human:
            human = _text(part)
    if not returned:
        # A plain-text bounce quotes the message below its own words: the first
        # Message-ID line after the bounce's own header block is the returned one's.
        body = head.split(b"\r\n\r\n", 1)[-1] if b"\r\n\r\n" in head else head.split(b"\n\n", 1)[-1]
        for match in _HEADER_LINE.finditer(body):
            returned += message_ids(match.group(1).decode("latin-1"))
    own = message_ids(str(mail.get("In-Reply-To", ""))) + message_ids(
        str(mail.get("References", ""))
    )
    cited = list(dict.fromkeys(returned + own[::-1]))
    return BounceReport(cited_ids=cited, reason=_reason(status, diagnostic, human), status=status)


def _delivery_status(part: Message) -> tuple[str | None, str | None]:
    """The first failed recipient's Status and Diagnostic-Code (RFC 3464 fields)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package reads the field groups as messages
        text = "\n\n".join(str(group) for group in payload)
    else:
        text = payload if isinstance(payload, str) else ""
    status = diagnostic = None
    last: str | None = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and last == "diagnostic-code" and diagnostic:
            diagnostic += " " + line.strip()  # a folded Diagnostic-Code
            continue
        match = _FIELD.match(line)
        if not match:
            last = None
            continue
        name, value = match.group(1).lower(), match.group(2).strip()
        last = name
        if name == "status" and status is None:
            status = value
        elif name == "diagnostic-code" and diagnostic is None:
            diagnostic = value.split(";", 1)[-1].strip()
    return status, diagnostic


def _returned_ids(part: Message) -> list[str]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:  # message/rfc822: the returned message
        inner = payload[0]
        return message_ids(str(inner.get("Message-ID", "")))
    text = payload if isinstance(payload, str) else ""
    match = _HEADER_LINE.search(text.encode("utf-8", "surrogateescape"))
    return message_ids(match.group(1).decode("latin-1")) if match else []


def _text(part: Message | EmailMessage) -> str:
    try:
        data = part.get_payload(decode=True) or b""
    except Exception:  # a malformed transfer encoding: the bounce's words are optional
        return ""
    # The mail's own charset label may be anything, a NUL in it included (bytes.decode
    # then raises ValueError, not LookupError): the one decoder that never raises.
    return decode_bytes(data, part.get_content_charset())


def _reason(status: str | None, diagnostic: str | None, human: str) -> str:
    if diagnostic:
        reason = f"{status} {diagnostic}" if status and status not in diagnostic else diagnostic
    else:
        # No delivery status: the first lines of the bounce's own words say it.
        lines = [line.strip() for line in human.splitlines() if line.strip()]
        reason = " ".join(lines[:3]) or (f"delivery failed ({status})" if status else "")
    reason = " ".join(storable(reason).split())
    return reason[:MAX_REASON_CHARS] or "The message was returned as undeliverable."
