"""Parse raw mail into what the inbound service stores: a ParsedMessage, or why not.

One wording of the quarantine reason, for the worker's batches and an admin's
"retry parsing" alike: the parser's own explanation when it gives one
(`UnparseableMessage`, `TooSlowToParse`), else the exception's type and message.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.mail import parse
from ingest.mail.deadline import TooSlowToParse


@dataclass(frozen=True)
class Unparsed:
    """Mail the parser rejected: why, and the hash of its bytes (what identifies it)."""

    reason: str
    content_hash: str
    #: The hash of all its bytes (parse.raw_hash), as earlier versions identified it.
    raw_hash: str = ""


def parse_inbound(
    raw: bytes, *, max_attachment_bytes: int, time_limit: float | None = None
) -> parse.ParsedMessage | Unparsed:
    """`raw` parsed; on any parser failure (or when it takes more than `time_limit`
    seconds) the reason to quarantine it with, never an error."""
    try:
        return parse.parse_message(
            raw, max_attachment_bytes=max_attachment_bytes, time_limit=time_limit
        )
    except Exception as exc:  # any parser failure: keep the bytes, flag them, go on
        explained = isinstance(exc, parse.UnparseableMessage | TooSlowToParse)
        reason = str(exc) if explained else f"{type(exc).__name__}: {exc}"
        return unparsed(reason, raw)


def too_slow(raw: bytes, seconds: float) -> Unparsed:
    """The quarantine of mail whose parser was stopped from outside after `seconds`."""
    return unparsed(str(TooSlowToParse(seconds)), raw)


def unparsed(reason: str, raw: bytes) -> Unparsed:
    """`raw`, quarantined for `reason`."""
    return Unparsed(reason, parse.content_hash(raw), parse.raw_hash(raw))
