"""Bytes to text: a body part's bytes by their declared charset (with the fallbacks real
mail needs, ISO-2022-JP with Microsoft's extensions among them), and any text made fit
for a database column. Pure: no database, no Flask, no network.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    # JIS X 0208 row/cell -> Shift_JIS, so cp932 can decode Microsoft's extensions
    # (circled digits, ㈱ …) that the strict iso-2022-jp codec rejects.
    s1 = (j1 + 1) // 2 + (0x70 if j1 <= 0x5E else 0xB0)
    s2 = j2 + (0x1F if j1 % 2 else 0x7E)
    if j1 % 2 and s2 >= 0x7F:
        s2 += 1
    return bytes((s1, s2))


def decode_iso2022jp_ms(data: bytes) -> str:
    """Decode ISO-2022-JP including the CP50220 (`iso-2022-jp-ms`) extensions."""
    out = bytearray()
    mode = "ascii"
    i = 0
    while i < len(data):
        if data[i] == 0x1B and i + 2 < len(data):
            seq = data[i + 1 : i + 3]
            if seq in (b"$B", b"$@"):
                mode, i = "jis", i + 3
                continue
            if seq in (b"(B", b"(J"):
                mode, i = "ascii", i + 3
                continue
            if seq == b"(I":
                mode, i = "kana", i + 3
                continue
        byte = data[i]
        # Only JIS X 0208 byte pairs (0x21-0x7E each) are converted; anything else in
        # broken mail is passed on and decoded (or replaced) like the ASCII around it.
        if (
            mode == "jis"
            and 0x21 <= byte <= 0x7E
            and i + 1 < len(data)
            and 0x21 <= data[i + 1] <= 0x7E
        ):
            out += _jis_to_sjis(byte, data[i + 1])
            i += 2
        elif mode == "kana" and 0x21 <= byte <= 0x5F:
            out.append(byte + 0x80)
            i += 1
        else:
            out.append(byte)
            i += 1
    return out.decode("cp932", errors="replace")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode body bytes by their declared charset, with fallbacks; never raises."""
    charset = (charset or "").strip().strip('"').lower()
    if charset.startswith("iso-2022-jp") or (not charset and b"\x1b$B" in data):
        try:
            return data.decode("iso2022_jp")
        except UnicodeDecodeError:
            return decode_iso2022jp_ms(data)
    if charset in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", ""):
        # Mail labelled latin-1 or ASCII is very often really windows-1252 (or UTF-8).
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", errors="replace")
    if charset in ("shift_jis", "shift-jis", "sjis", "x-sjis"):
        charset = "cp932"
    try:
        return data.decode(charset)
    except LookupError:
        log.info("unknown charset %r; decoding as UTF-8", charset)
    except ValueError:  # undecodable bytes, or a NUL in the charset's name
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def storable(text: str) -> str:
    """Text a database column takes: no NUL characters (PostgreSQL refuses them) and no
    lone surrogates (the email package's stand-ins for undecodable header bytes, which
    no database can encode): those bytes are decoded as UTF-8 where they are, else
    replaced."""
    if text.isascii() and "\x00" not in text:
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "\ufffd")
