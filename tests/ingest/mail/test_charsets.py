"""Charsets: body bytes by their declared charset, with the fallbacks real mail needs."""

from __future__ import annotations

import pytest

from ingest.mail.charsets import decode_bytes, decode_iso2022jp_ms


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        ("Größe".encode(), "utf-8", "Größe"),
        (b"Gr\xf6\xdfe \x80", "iso-8859-1", "Größe €"),
        (b"caf\xe9", None, "café"),
        ("日本".encode("cp932"), "shift_jis", "日本"),
        (b"abc\xff", "utf-8", "abcÿ"),
        (b"plain", "x-unknown-charset", "plain"),
        (b"plain", "utf\x00-8", "plain"),  # a NUL in the name: ValueError, not LookupError
        ("テスト".encode("iso2022_jp"), "ISO-2022-JP", "テスト"),
    ],
)
def test_decode_bytes_fallbacks(data, charset, expected):
    assert decode_bytes(data, charset) == expected


def test_decode_iso2022jp_ms_matches_standard_codec_for_plain_text():
    text = "ご注文ありがとうございます。ｶﾀｶﾅ"
    assert decode_iso2022jp_ms(text.encode("iso2022_jp_ext")) == text
