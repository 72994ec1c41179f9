"""What a reader finds in a mail: `MailParts`, which both readers (fast_reader.py and
email_reader.py) fill and the rest of the parser reads, and the attachments in it.
Pure: no database, no Flask, no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ingest.mail.charsets import decode_bytes


@dataclass
class ParsedAttachment:
    """An attachment or inline part of a mail (ParsedMessage.attachments)."""

    filename: str
    content_type: str
    size: int
    content_id: str | None = None
    is_inline: bool = False
    #: None when the attachment was over the size limit (recorded, bytes not kept).
    data: bytes | None = None

    @property
    def is_skipped(self) -> bool:
        return self.data is None


@dataclass
class MailParts:
    """The parts of a mail the rest of the parser reads, whichever reader read them."""

    #: Header text by lower-case name, every value in order. RFC 2047 words are decoded
    #: in the headers read as text (Subject, the auto-reply headers); Message-IDs,
    #: dates and delivery addresses are read from these values by the same code for
    #: both readers.
    headers: dict[str, list[str]]
    #: (display name, lower-case address) pairs of From, To and Cc.
    from_: list[tuple[str, str]]
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    text_parts: list[str] = field(default_factory=list)
    html_parts: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    is_dsn: bool = False

    def header(self, name: str) -> str:
        """The first value of a header, its whitespace runs made single spaces."""
        values = self.headers.get(name.lower())
        return " ".join(values[0].split()) if values else ""

    def add_leaf(
        self,
        ctype: str,
        disposition: str,
        filename: str,
        content_id: str | None,
        payload: bytes,
        charset: str | None,
        max_attachment_bytes: int,
    ) -> None:
        """Sort one leaf part: body text, or an attachment (inline or not)."""
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            # Line ends as in the rest of the mail (LF, see parse.parse_message) whatever the
            # transfer encoding held: Base64 text often carries CRLF, and a decoded
            # quoted-printable line break is CRLF (RFC 2045 6.7).
            text = decode_bytes(payload, charset).replace("\r\n", "\n")
            (self.text_parts if ctype == "text/plain" else self.html_parts).append(text)
            return
        if ctype == "message/delivery-status" or ctype.startswith("multipart/"):
            return
        size = len(payload)
        self.attachments.append(
            ParsedAttachment(
                filename=_safe_filename(filename, ctype, len(self.attachments) + 1),
                content_type=ctype,
                size=size,
                content_id=content_id,
                is_inline=disposition == "inline"
                or (content_id is not None and disposition != "attachment"),
                data=payload if size <= max_attachment_bytes else None,
            )
        )


def _safe_filename(name: str | None, ctype: str, index: int) -> str:
    name = (name or "").replace("\x00", "")
    name = re.sub(r"[\r\n\t/\\]+", "_", name).strip(" .")
    if not name:
        subtype = ctype.split("/")[-1] if "/" in ctype else "bin"
        name = f"attachment-{index}.{re.sub(r'[^a-z0-9]+', '', subtype.lower()) or 'bin'}"
    return name[:200]
