"""Helpers shared by several test modules (fixtures live in tests/conftest.py)."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from portal.extensions import db
from portal.models import Message

#: The real-mail fixtures.
MAIL = Path(__file__).resolve().parent / "data" / "mail"


def mail_bytes(name_or_bytes: str | bytes, *, replace: dict[str, str] | None = None) -> bytes:
    """A fixture .eml by name (or raw bytes as given), with `replace` applied to its text."""
    raw = name_or_bytes if isinstance(name_or_bytes, bytes) else (MAIL / name_or_bytes).read_bytes()
    for old, new in (replace or {}).items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


def stored_messages() -> list[Message]:
    """Every message row, in the order stored."""
    return db.session.scalars(db.select(Message).order_by(Message.id)).all()


def parse_mail(raw: bytes) -> EmailMessage:
    """Mail as sent, parsed; SMTP's CRLF read as LF, so decoded bodies compare to Python text."""
    return BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
