"""Outgoing mail, delivered: SMTP_URL read, a reply's bytes handed to SMTP or an outbox folder.

Pure of the database and of Flask: `send_raw` delivers bytes and says whether a
failure is worth retrying (`TemporarySendError`) or final (`PermanentSendError`).
The outbox service decides what to do with either.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ingest.mail.compose import MailError
from ingest.mail.tls import TlsOptionError, client_context, tls_options

SMTP_SCHEMES = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}
DEFAULT_PORTS = {"plain": 25, "starttls": 587, "tls": 465}


class SendError(Exception):
    """Delivery did not happen; `reason` is safe to show to an admin."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemporarySendError(SendError):
    """Worth retrying: server down, timeout, disconnect, 4xx, our own configuration."""


class PermanentSendError(SendError):
    """The server refused this message for good (5xx on MAIL, RCPT or DATA)."""


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
    ca_file: str | None = None
    verify: bool = True
    #: An OAuth2 access token: AUTH XOAUTH2 as `username` instead of the password.
    oauth_token: str = ""

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return f"Transport({self.describe()})"

    def describe(self) -> str:
        if self.kind == "outbox":
            return f"outbox:{self.path}"
        user = f"{self.username}@" if self.username else ""
        oauth = " (XOAUTH2)" if self.oauth_token else ""
        return f"{self.security} smtp {user}{self.host}:{self.port}{oauth}"


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
    try:
        ca_file, verify = tls_options(parts.query)
    except TlsOptionError as exc:
        raise MailError(f"SMTP_URL: {exc}") from None
    return Transport(
        kind="smtp",
        host=parts.hostname,
        port=port,
        security=security,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        ca_file=ca_file,
        verify=verify,
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
    try:
        context = (
            client_context(ca_file=transport.ca_file, verify=transport.verify)
            if transport.security != "plain"
            else None
        )
    except TlsOptionError as exc:
        raise TemporarySendError(f"connect: {exc}") from exc
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
            if transport.oauth_token:
                _xoauth2(client, transport.username, transport.oauth_token)
            elif transport.username:
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


def _xoauth2(client: smtplib.SMTP, username: str, token: str) -> None:
    """AUTH XOAUTH2 (Google's and Microsoft's SASL mechanism) with the initial response."""
    initial = f"user={username}\x01auth=Bearer {token}\x01\x01"

    def answer(challenge: bytes | None = None) -> str:
        # A challenge after the initial response is the server's JSON error: an empty
        # answer ends the exchange, and the server then says 535.
        return initial if challenge is None else ""

    client.auth("XOAUTH2", answer, initial_response_ok=True)


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
