"""Outgoing mail: building a reply's MIME and handing its bytes to SMTP_URL.

Pure of the database and of Flask: `build_reply` turns checked values into RFC
5322 bytes, `send_raw` delivers bytes to an SMTP server or an outbox folder and
says whether a failure is worth retrying (`TemporarySendError`) or final
(`PermanentSendError`). The outbox service decides what to do with either.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import re
import smtplib
import ssl
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from portal.text import strip_unsafe_characters

log = logging.getLogger(__name__)

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

SMTP_SCHEMES = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}
DEFAULT_PORTS = {"plain": 25, "starttls": 587, "tls": 465}

# C0 controls (CR and LF among them), DEL, C1 controls and the Unicode line and
# paragraph separators: none may appear in a header value we write.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MSGID_RE = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
_REPLY_PREFIX_RE = re.compile(r"^(\s*re\s*(\[\d+\]|\(\d+\))?\s*:\s*)+", re.IGNORECASE)
_CONTENT_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_UNSAFE_FILENAME_RE = re.compile(r'[<>:"|?*;]')


class MailError(ValueError):
    """A value that cannot go into a mail header or part; the message says which and why."""


class SendError(Exception):
    """Delivery did not happen; `reason` is safe to show to an admin."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemporarySendError(SendError):
    """Worth retrying: server down, timeout, disconnect, 4xx, our own configuration."""


class PermanentSendError(SendError):
    """The server refused this message for good (5xx on MAIL, RCPT or DATA)."""


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
    from_address = check_address("sender address", from_address)
    to_address = check_address("buyer's address", to_address)
    check_header_value("subject", subject)
    if len(subject) > MAX_SUBJECT_CHARS:
        raise MailError(f"The subject is longer than {MAX_SUBJECT_CHARS} characters.")
    check_header_value("sender name", from_name)
    domain = from_address.rpartition("@")[2]
    message_id = message_id or make_message_id(domain)
    if not is_valid_msgid(message_id):
        raise MailError(f"{message_id!r} is not a valid Message-ID.")
    if in_reply_to is not None and not is_valid_msgid(in_reply_to):
        in_reply_to = None  # a malformed id threads nothing; References still may
    refs = build_references(references, None)
    sent_at = (now or datetime.now(UTC)).astimezone(UTC)

    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = Address(display_name=from_name.strip(), addr_spec=from_address)
    msg["To"] = Address(addr_spec=to_address)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(sent_at)
    msg.set_raw("Message-ID", message_id)
    if in_reply_to:
        msg.set_raw("In-Reply-To", in_reply_to)
    if refs:
        msg.set_raw("References", _fold_ids(refs))
    # A person wrote this: Amazon and auto-responders must treat it as such. Nothing
    # here may look like bulk mail (no Precedence, no List-* headers).
    msg["Auto-Submitted"] = "no"
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    # Quoted-printable: survives any relay (no 8BITMIME needed) and lines of any length.
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    parts = []
    for filename, content_type, data in attachments:
        name = safe_filename(filename)
        maintype, subtype = _content_type(content_type, name)
        msg.add_attachment(bytes(data), maintype=maintype, subtype=subtype, filename=name)
        parts.append((name, f"{maintype}/{subtype}", bytes(data)))
    for part in msg.iter_parts():
        del part["MIME-Version"]  # belongs on the message only
    if "MIME-Version" not in msg:
        msg["MIME-Version"] = "1.0"
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


# --- transport -----------------------------------------------------------------------


@dataclass(frozen=True)
class Transport:
    """Where SMTP_URL sends mail (password included: never log this object's fields)."""

    kind: str  # "smtp" or "outbox"
    host: str = ""
    port: int = 0
    security: str = "plain"  # plain | starttls | tls
    username: str = ""
    password: str = ""
    path: str = ""

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return f"Transport({self.describe()})"

    def describe(self) -> str:
        if self.kind == "outbox":
            return f"outbox:{self.path}"
        user = f"{self.username}@" if self.username else ""
        return f"{self.security} smtp {user}{self.host}:{self.port}"


def parse_smtp_url(url: str) -> Transport:
    """Read `smtp://[user:pass@]host[:port]`, `smtp+starttls://…`, `smtps://…`, `outbox:PATH`."""
    if url.startswith("outbox:"):
        path = url[len("outbox:") :]
        if not path:
            raise MailError("outbox: needs a folder, e.g. outbox:/var/spool/sellerdesk")
        return Transport(kind="outbox", path=os.path.expanduser(path))
    parts = urlsplit(url)
    security = SMTP_SCHEMES.get(parts.scheme)
    if security is None:
        raise MailError(
            f"unsupported SMTP_URL scheme {parts.scheme!r}: use smtp://, smtp+starttls://, "
            "smtps:// or outbox:PATH"
        )
    if not parts.hostname:
        raise MailError("SMTP_URL needs a host: smtp://user:pass@host:port")
    try:
        port = parts.port or DEFAULT_PORTS[security]
    except ValueError:
        raise MailError(f"bad port in SMTP_URL {parts.hostname!r}") from None
    return Transport(
        kind="smtp",
        host=parts.hostname,
        port=port,
        security=security,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def outbox_filename(message_id: str) -> str:
    """The .eml name of a message in an outbox folder: the same for every retry."""
    return hashlib.sha256(message_id.encode()).hexdigest()[:32] + ".eml"


def _write_outbox(folder: Path, message_id: str, raw: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / outbox_filename(message_id)
    # Write beside the target, then rename: a reader never sees half a message, and a
    # retry replaces the file rather than adding a second copy.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return f"written to {target}"


def _smtp_reason(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"


def _classify(stage: str, code: int, text: bytes | str) -> SendError:
    reason = f"{stage}: {_smtp_reason(code, text)}"
    if 500 <= code <= 599:
        return PermanentSendError(reason)
    return TemporarySendError(reason)


def _send_smtp(
    transport: Transport, sender: str, recipients: list[str], raw: bytes, timeout: float
) -> str:
    # Loading the CA bundle costs tens of milliseconds: only for TLS.
    context = ssl.create_default_context() if transport.security != "plain" else None
    try:
        if transport.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                transport.host, transport.port, timeout=timeout, context=context
            )
        else:
            client = smtplib.SMTP(transport.host, transport.port, timeout=timeout)
    except smtplib.SMTPConnectError as exc:
        raise TemporarySendError(f"connect: {_smtp_reason(exc.smtp_code, exc.smtp_error)}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise TemporarySendError(f"connect: {type(exc).__name__}: {exc}") from exc
    try:
        try:
            client.ehlo_or_helo_if_needed()
            if transport.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if transport.username:
                client.login(transport.username, transport.password)
        except smtplib.SMTPResponseException as exc:
            # Login or TLS refused: our configuration, not this message. Keep retrying.
            raise TemporarySendError(
                f"session: {_smtp_reason(exc.smtp_code, exc.smtp_error)}"
            ) from exc
        try:
            client.sendmail(sender, recipients, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _classify("RCPT", code, text) from exc
        except smtplib.SMTPSenderRefused as exc:
            raise _classify("MAIL", exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPDataError as exc:
            raise _classify("DATA", exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPResponseException as exc:
            raise _classify("SMTP", exc.smtp_code, exc.smtp_error) from exc
    except SendError:
        raise
    except (OSError, smtplib.SMTPException) as exc:
        # Connection refused or reset, timeout, TLS failure, server hung up.
        raise TemporarySendError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        _close_quietly(client)
    return f"accepted by {transport.host}:{transport.port}"


def _close_quietly(client: smtplib.SMTP) -> None:
    # Once DATA was accepted the message is out: a failing QUIT must not make it a
    # failure (that would send it again).
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        client.close()


def send_raw(
    transport: Transport,
    *,
    sender: str,
    recipients: Sequence[str],
    raw: bytes,
    message_id: str,
    timeout: float = 30,
) -> str:
    """Deliver `raw` as is; returns a short note of where it went.

    Raises TemporarySendError (retry later) or PermanentSendError (refused for good).
    `timeout` bounds each network operation, not the whole conversation.
    """
    if transport.kind == "outbox":
        try:
            return _write_outbox(Path(transport.path), message_id, raw)
        except OSError as exc:
            raise TemporarySendError(f"outbox: {type(exc).__name__}: {exc}") from exc
    return _send_smtp(transport, sender, list(recipients), raw, timeout)
