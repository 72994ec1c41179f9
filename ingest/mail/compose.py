"""Outgoing mail, composed: a reply's headers checked and its MIME built.

Pure of the database and of Flask: `build_reply` turns checked values into RFC
5322 bytes; `ingest.mail.smtp` delivers them. A value that cannot go into a header
or a part raises `MailError`, whose message the outbox service shows.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from ingest.mail.text import strip_unsafe_characters

#: SMTP for 7-bit transport with CRLF line ends. `refold_source="none"` leaves the
#: headers we set pre-folded with set_raw (In-Reply-To, References) exactly as given:
#: the default refolding would turn a msg-id longer than a line into an RFC 2047
#: encoded word, which no mail client matches against a Message-ID any more.
MAIL_POLICY = policy.SMTP.clone(refold_source="none")

#: References keeps the thread's first id and the newest ones; RFC 5322 allows trimming
#: the middle, and mail servers reject headers that grow without bound.
MAX_REFERENCES = 10
MAX_REFERENCES_CHARS = 2000
MAX_MSGID_CHARS = 250
MAX_SUBJECT_CHARS = 500
MAX_FILENAME_CHARS = 150

# C0 controls (CR and LF among them), DEL, C1 controls and the Unicode line and
# paragraph separators: none may appear in a header value we write.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MSGID_RE = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
_REPLY_PREFIX_RE = re.compile(r"^(\s*re\s*(\[\d+\]|\(\d+\))?\s*:\s*)+", re.IGNORECASE)
_CONTENT_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_UNSAFE_FILENAME_RE = re.compile(r'[<>:"|?*;]')


class MailError(ValueError):
    """A value that cannot go into a mail header or part; the message says which and why."""


# --- header values -------------------------------------------------------------------


def check_header_value(label: str, value: str) -> str:
    """`value` unchanged; raises MailError when it holds CR, LF or another control char."""
    if _CONTROL_RE.search(value):
        raise MailError(
            f"The {label} contains a line break or another control character; remove it."
        )
    return value


def check_address(label: str, value: str) -> str:
    """A single plain ASCII addr-spec (no display name), lower-cased; else MailError."""
    value = check_header_value(label, value or "").strip()
    if not value:
        raise MailError(f"The {label} is missing.")
    if not value.isascii():
        raise MailError(f"The {label} {value!r} has non-ASCII characters.")
    try:
        address = Address(addr_spec=value)
    except Exception:  # the header parser raises several kinds of errors
        raise MailError(f"The {label} {value!r} is not an e-mail address.") from None
    if not address.username or not address.domain or address.addr_spec != value:
        raise MailError(f"The {label} {value!r} is not an e-mail address.")
    return value.lower()


def clean_subject(subject: str) -> str:
    """White space folded to single spaces, other control characters dropped.

    For a subject taken from stored mail (an encoded word can decode to CR LF): the
    result cannot inject a header. A subject a person typed is checked instead
    (check_header_value), so they learn it was refused.
    """
    subject = " ".join((subject or "").split())
    return _CONTROL_RE.sub("", subject)


def reply_subject(subject: str) -> str:
    """`Re: ` + the subject without any reply prefixes it already has (no "Re: Re:")."""
    rest = _REPLY_PREFIX_RE.sub("", subject or "").strip()
    return f"Re: {rest}" if rest else "Re:"


def is_valid_msgid(value: str) -> bool:
    return len(value) <= MAX_MSGID_CHARS and _MSGID_RE.fullmatch(value) is not None


def make_message_id(domain: str) -> str:
    """A new globally unique Message-ID in `domain` (the channel's helpdesk domain)."""
    return f"<sellerdesk.{uuid.uuid4().hex}@{domain}>"


def build_references(previous: Sequence[str] | str, answered_id: str | None) -> list[str]:
    """References for a reply: the answered message's References plus its Message-ID,
    without malformed ids or repeats, bounded to the first and the newest ids."""
    if isinstance(previous, str):
        previous = previous.split()
    ids: list[str] = []
    for value in [*previous, answered_id or ""]:
        if is_valid_msgid(value):
            if value in ids:
                ids.remove(value)  # keep the newest position
            ids.append(value)
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    while len(ids) > 2 and len(" ".join(ids)) > MAX_REFERENCES_CHARS:
        del ids[1]
    return ids


def _fold_ids(ids: Sequence[str]) -> str:
    # One msg-id per line; the policy turns "\n" into CRLF and keeps the lines as they are.
    return "\n ".join(ids)


# --- attachments ---------------------------------------------------------------------


def safe_filename(filename: str) -> str:
    """The name a recipient's computer can store safely: no path, no reserved characters."""
    check_header_value("attachment's file name", filename or "")
    # Bidirectional controls would make `gpj.exe` read as `exe.jpg` on the buyer's side.
    name = re.split(r"[/\\]", strip_unsafe_characters(filename))[-1].strip().lstrip(".")
    name = _UNSAFE_FILENAME_RE.sub("_", " ".join(name.split()))
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_FILENAME_CHARS - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME_CHARS]
    return name or "attachment"


def _content_type(value: str, filename: str) -> tuple[str, str]:
    value = check_header_value("attachment's content type", value or "").strip().lower()
    value = value.split(";")[0].strip()
    if value in ("", "application/octet-stream"):
        value = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if not _CONTENT_TYPE_RE.match(value) or value.split("/")[0] in ("multipart", "message"):
        value = "application/octet-stream"
    maintype, subtype = value.split("/")
    return maintype, subtype


# --- the reply -----------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltReply:
    """A reply ready to send: its headers as stored, and the exact bytes for SMTP."""

    message_id: str
    subject: str
    from_address: str
    to_address: str
    in_reply_to: str | None
    references: list[str]
    raw: bytes
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)


def build_reply(
    *,
    from_address: str,
    to_address: str,
    subject: str,
    body: str,
    from_name: str = "",
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    attachments: Sequence[tuple[str, str, bytes]] = (),
    message_id: str | None = None,
    now: datetime | None = None,
) -> BuiltReply:
    """The reply as RFC 5322 bytes (CRLF), UTF-8 text/plain plus attachments.

    Every header value is checked: CR, LF or another control character raises
    MailError rather than being written. `subject` is used as given (see reply_subject).
    """
    msg, from_address, to_address, message_id = _headed_message(
        from_address=from_address,
        from_name=from_name,
        to_address=to_address,
        to_label="buyer's address",
        subject=subject,
        message_id=message_id,
        now=now,
    )
    if in_reply_to is not None and not is_valid_msgid(in_reply_to):
        in_reply_to = None  # a malformed id threads nothing; References still may
    refs = build_references(references, None)
    _set_threading(msg, message_id=message_id, in_reply_to=in_reply_to, references=refs)
    # A person wrote this: Amazon and auto-responders must treat it as such. Nothing
    # here may look like bulk mail (no Precedence, no List-* headers).
    msg["Auto-Submitted"] = "no"
    _set_text(msg, body)
    parts = [_attach(msg, *attachment) for attachment in attachments]
    _keep_one_mime_version(msg)
    return BuiltReply(
        message_id=message_id,
        subject=subject,
        from_address=from_address,
        to_address=to_address,
        in_reply_to=in_reply_to,
        references=refs,
        raw=msg.as_bytes(policy=MAIL_POLICY),
        attachments=parts,
    )


def build_system_mail(
    *,
    from_address: str,
    from_name: str,
    to_address: str,
    subject: str,
    body: str,
    now: datetime | None = None,
) -> BuiltReply:
    """Mail the service itself sends to a person (a password reset, an invitation), as
    RFC 5322 bytes: UTF-8 text/plain, marked automatic. Checked like a reply."""
    msg, from_address, to_address, message_id = _headed_message(
        from_address=from_address,
        from_name=from_name,
        to_address=to_address,
        to_label="recipient's address",
        subject=subject,
        message_id=None,
        now=now,
    )
    msg.set_raw("Message-ID", message_id)
    # RFC 3834: machine-made, so auto-responders stay quiet; no person answers it.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    _set_text(msg, body)
    _keep_one_mime_version(msg)
    return BuiltReply(
        message_id=message_id,
        subject=subject,
        from_address=from_address,
        to_address=to_address,
        in_reply_to=None,
        references=[],
        raw=msg.as_bytes(policy=MAIL_POLICY),
    )


def _headed_message(
    *,
    from_address: str,
    from_name: str,
    to_address: str,
    to_label: str,
    subject: str,
    message_id: str | None,
    now: datetime | None,
) -> tuple[EmailMessage, str, str, str]:
    """A message with From, To, Subject and Date checked and set; with the checked
    sender, recipient and Message-ID (not set: the caller places it)."""
    from_address = check_address("sender address", from_address)
    to_address = check_address(to_label, to_address)
    _check_subject(subject)
    check_header_value("sender name", from_name)
    message_id = _checked_message_id(message_id, from_address)
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = Address(display_name=from_name.strip(), addr_spec=from_address)
    msg["To"] = Address(addr_spec=to_address)
    msg["Subject"] = subject
    msg["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    return msg, from_address, to_address, message_id


def _check_subject(subject: str) -> None:
    check_header_value("subject", subject)
    if len(subject) > MAX_SUBJECT_CHARS:
        raise MailError(f"The subject is longer than {MAX_SUBJECT_CHARS} characters.")


def _checked_message_id(message_id: str | None, from_address: str) -> str:
    """The given Message-ID, or a new one in the sender's domain; MailError if malformed."""
    message_id = message_id or make_message_id(from_address.rpartition("@")[2])
    if not is_valid_msgid(message_id):
        raise MailError(f"{message_id!r} is not a valid Message-ID.")
    return message_id


def _set_threading(
    msg: EmailMessage, *, message_id: str, in_reply_to: str | None, references: list[str]
) -> None:
    # set_raw: written as given, never refolded into an encoded word (see MAIL_POLICY).
    msg.set_raw("Message-ID", message_id)
    if in_reply_to:
        msg.set_raw("In-Reply-To", in_reply_to)
    if references:
        msg.set_raw("References", _fold_ids(references))


def _set_text(msg: EmailMessage, body: str) -> None:
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    # Quoted-printable: survives any relay (no 8BITMIME needed) and lines of any length.
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")


def _attach(
    msg: EmailMessage, filename: str, content_type: str, data: bytes
) -> tuple[str, str, bytes]:
    """Add one attachment under a safe name and type; the (name, type, bytes) it got."""
    name = safe_filename(filename)
    maintype, subtype = _content_type(content_type, name)
    msg.add_attachment(bytes(data), maintype=maintype, subtype=subtype, filename=name)
    return name, f"{maintype}/{subtype}", bytes(data)


def _keep_one_mime_version(msg: EmailMessage) -> None:
    for part in msg.iter_parts():
        del part["MIME-Version"]  # belongs on the message only
    if "MIME-Version" not in msg:
        msg["MIME-Version"] = "1.0"
