"""Realistic Amazon buyer messages for tests and benchmarks (not tiny synthetic ones)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

_NAMES = ["Jane Doe", "Max Müller", "Sophie Martin", "Luca Rossi", "山田 太郎", "Ana García"]
_ITEMS = [
    "Garden Kneeler Pad, Green",
    "Stainless Steel Water Bottle 750ml",
    "USB-C Cable 2m (2-pack)",
]
_QUESTIONS = [
    "Hello, my parcel has not arrived yet. It was due on Friday. Can you check where it is?",
    "The item arrived damaged: the lid is cracked. Can I get a replacement or a refund?",
    "Is this available in blue? I would like to order two more for my family.",
    "Could you send me a VAT invoice for this order please? Our company needs it.",
]
_DISCLAIMER = (
    "For Your Information: To help arbitrate disputes and preserve trust and safety, we retain "
    "all messages buyers and sellers send through Amazon for two years. This includes your "
    "response to the message below. Amazon uses filtering technology to protect buyers and "
    "sellers from possible fraud. Messages that fail this filtering will not be transmitted.\n"
)


def amazon_message(
    i: int, to: str, *, rng: random.Random | None = None, tld: str = "co.uk"
) -> bytes:
    """Buyer message number `i` (a unique Message-ID) to helpdesk address `to`."""
    rng = rng or random.Random(i)
    name = rng.choice(_NAMES)
    order = f"{rng.randint(200, 299)}-{rng.randint(0, 9999999):07d}-{rng.randint(0, 9999999):07d}"
    asin = "B0" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(8))
    question = " ".join(rng.choice(_QUESTIONS) for _ in range(rng.randint(1, 3)))
    sent = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=i)
    msg = EmailMessage()
    msg["Delivered-To"] = to
    msg["From"] = (
        f"{name} - Amazon Marketplace <buyer{rng.randint(1, 10**9):x}@marketplace.amazon.{tld}>"
    )
    msg["To"] = to
    msg["Subject"] = f"Inquiry from Amazon customer {name} (Order: {order})"
    msg["Message-ID"] = f"<0100018c.gen-{i}-{rng.randint(0, 10**12)}@email.amazonses.com>"
    msg["Date"] = format_datetime(sent)
    msg["X-Mailer"] = "Amazon Messaging"
    text = (
        f"Order ID {order}:\n1 of {rng.choice(_ITEMS)}\nASIN: {asin}\n\n"
        f"------------- Begin message -------------\n\n{question}\n\n"
        f"------------- End message -------------\n\n{_DISCLAIMER}\n"
        f"[commMgrTok:{rng.randint(10**12, 10**13)}]\n"
    )
    msg.set_content(text)
    paragraphs = "".join(
        f"<p style='font-family:Arial'>{line}</p>" for line in text.splitlines() if line
    )
    msg.add_alternative(
        f"<html><head><style>p{{margin:0 0 8px}}</style></head><body><table><tr><td>"
        f"{paragraphs}</td></tr></table></body></html>",
        subtype="html",
    )
    return msg.as_bytes()


def runaway_message(to: str, *, parts: int = 200_000) -> bytes:
    """A mail of `parts` tiny text parts: seconds of parsing whichever reader reads it
    (the default is sized to take several times the 0.3 s bound the tests set, on a fast
    machine too: a quarter of it was sometimes parsed within the bound), the shape of mail that would hold up a mailbox without a time bound."""
    boundary = "runaway"
    body = "".join(f"--{boundary}\nContent-Type: text/plain\n\npart {i}\n" for i in range(parts))
    return (
        f"Delivered-To: {to}\nFrom: loop@example.net\nTo: {to}\nSubject: Runaway\n"
        f"Message-ID: <runaway-{parts}@example.net>\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n{body}--{boundary}--\n'
    ).encode()
