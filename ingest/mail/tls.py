"""The one place the mail package builds its TLS contexts (IMAP and SMTP alike).

Verification is on by default (system CAs, host name checked); a mailbox may name its
own CA file (`?ca=/path/ca.pem` on its URL) or, explicitly, turn checking off (`?verify=0`).
"""

from __future__ import annotations

import ssl
from urllib.parse import parse_qs, quote


class TlsOptionError(ValueError):
    """A `ca=` or `verify=` option that cannot be used; the message says why."""


def tls_options(query: str) -> tuple[str | None, bool]:
    """Read `ca=PATH` and `verify=0|1` from a mail URL's query: (ca_file, verify)."""
    values = parse_qs(query)
    ca_file = (values.get("ca") or [None])[0] or None
    verify_text = (values.get("verify") or ["1"])[0].strip().lower()
    if verify_text not in ("0", "1", "yes", "no", "true", "false"):
        raise TlsOptionError(f"verify= must be 0 or 1, not {verify_text!r}")
    return ca_file, verify_text in ("1", "yes", "true")


def tls_query(ca_file: str | None, verify: bool) -> str:
    """The query string that `tls_options` reads back (empty for the defaults)."""
    parts = []
    if ca_file:
        parts.append(f"ca={quote(ca_file, safe='/')}")
    if not verify:
        parts.append("verify=0")
    return "&".join(parts)


def client_context(*, ca_file: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """A client context: system CAs (or `ca_file`) with host-name checking, unless `verify` is off."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsOptionError(f"cannot read the CA file {ca_file}: {exc}") from exc


def describe_tls_error(exc: BaseException) -> str | None:
    """One sentence for an admin when `exc` is a refused certificate; None otherwise."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS certificate refused ({exc.verify_message}): certificate verify failed. "
            "A server whose certificate a private CA signed needs ?ca=/path/ca.pem on the "
            "mailbox URL."
        )
    return None
