"""Automatic mail (auto-replies, bounces, Amazon's notices and Seller Central copies),
on real .eml files and headers."""

from __future__ import annotations

import pytest

from ingest.mail.parse import parse_message
from tests.helpers import mail_bytes


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("autoreply.eml", "is_autoreply"),
        ("bounce.eml", "is_bounce"),
        ("amazon_notification.eml", "is_amazon_notification"),
        ("seller_central_copy.eml", "is_seller_central_copy"),
    ],
)
def test_classification(name, flag):
    parsed = parse_message(mail_bytes(name))
    assert getattr(parsed, flag)
    assert parsed.is_automatic
    others = {"is_autoreply", "is_bounce", "is_amazon_notification", "is_seller_central_copy"} - {
        flag
    }
    assert not any(getattr(parsed, o) for o in others)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("Auto-Submitted: no\n", False),
        ("Auto-Submitted: auto-generated\n", True),
        ("Precedence: bulk\n", True),
        ("Precedence: list\n", True),
        ("X-Autoreply: yes\n", True),
        ("", False),
    ],
)
def test_autoreply_headers(headers, expected):
    raw = f"From: a@example.com\nTo: b@example.com\nSubject: hi\n{headers}\nbody\n".encode()
    assert parse_message(raw).is_autoreply is expected
