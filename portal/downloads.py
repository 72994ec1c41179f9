"""Every file the portal hands out goes through `download`: attachments, raw mail, exports.

The file name travels in Content-Disposition twice (RFC 6266): `filename*` carries it
exactly, UTF-8 and percent-encoded (RFC 5987), and `filename` an ASCII stand-in for
clients that know no better. Header values are Latin-1 on the wire: a name such as
`請求書.pdf` written as a plain `filename=` cannot be encoded at all (the response died
after its status line). werkzeug's send_file(download_name=…) writes the same two
parameters but takes only files, not the export's stream, and its fallback for
`請求書.pdf` is `.pdf`, a hidden file on most systems; so one helper here instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote

from flask import Response

from ingest.mail.text import strip_unsafe_characters

#: What may stand in the quoted ASCII `filename`: printable ASCII but `"` and `\`.
_NOT_QUOTABLE_RE = re.compile(r'[^\x20-\x7e]|["\\]')
#: RFC 5987 attr-char, left as they are in `filename*`.
_ATTR_CHARS = "!#$&+-.^_`|~"


def download_name(filename: str | None, default: str = "attachment") -> str:
    """The name a file is offered under: the stored one without path separators or
    characters that hide or reorder what is shown (the rule of ingest.mail.text)."""
    name = strip_unsafe_characters(filename or "")
    name = re.split(r"[/\\]", name)[-1].strip()
    return name or default


def _ascii_fallback(name: str, default: str) -> str:
    simple = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    simple = _NOT_QUOTABLE_RE.sub("_", simple).strip()
    stem, dot, extension = simple.rpartition(".")
    if not dot:
        stem, extension = simple, ""
    if not re.search(r"[A-Za-z0-9]", stem):
        # Nothing readable left of the name (all Japanese, say): a plain word, same type.
        stem = default.rpartition(".")[0] or default
    return f"{stem}.{extension}" if extension else stem


def content_disposition(filename: str | None, default: str = "attachment") -> str:
    """`attachment; filename="…"` plus `filename*=UTF-8''…` when the name is not plain ASCII."""
    name = download_name(filename, default)
    fallback = _ascii_fallback(name, default)
    value = f'attachment; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
    return value


def download(
    body: bytes | Iterable[bytes],
    *,
    filename: str | None,
    mimetype: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> Response:
    """A response the browser saves as `filename` and never renders or sniffs."""
    response = Response(body, mimetype=mimetype, headers=headers)
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
