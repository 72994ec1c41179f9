"""Generated mail of the shapes that hurt a mail parser, for the real-world profile.

Each generator takes a seeded `random.Random`, a target size in bytes and the
message's context (original recipient, date, a unique id), and returns one message
of about that size, with CRLF line ends; the same arguments give the same bytes.
What each shape is, and why it is here:

    long_header     one unfolded header line holding most of the message (References
                    of a long thread, a To list, a spam report)
    folded_headers  a long Received chain, encoded words folded mid-word, headers
                    folded every few characters and continuation lines of blanks
    deep_nesting    multiparts and forwarded messages nested tens of levels deep
    endless_nesting multiparts nested hundreds of levels whose boundaries never close
    many_parts      one multipart with hundreds of small parts (text, images, files)
    big_attachment  one or two attachments of up to a few MB, base64
    eight_bit       raw UTF-8, Latin-1, CP1251, GB2312 or Shift_JIS bytes in headers
    bad_charset     charsets that are wrong, unknown, misspelt or missing; encoded
                    words in unknown charsets; broken quoted-printable and base64
    dsn             a delivery status notification (multipart/report) bouncing a reply
                    the helpdesk sent
    digest          a mailing-list digest: multipart/digest of messages, or RFC 1153 text

`GENERATORS` maps each name to its function and the smallest size it makes.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

_SENTENCES = (
    "Thanks for getting back to me so quickly about the delivery.",
    "I have attached the photos of the damaged box as you asked.",
    "Could you please confirm the new delivery date for the replacement?",
    "The courier says the parcel was returned to sender last Tuesday.",
    "We would like to order another twenty units for our shop in Leeds.",
    "Please find the signed return form and the invoice below.",
    "This message and any attachments are confidential and intended solely for the addressee.",
    "If you have received this message in error please notify the sender immediately.",
    "Ich habe die Ware zurückgeschickt, bitte erstatten Sie den Betrag.",
    "Le colis est arrivé ouvert et il manque une pièce détachée.",
    "お問い合わせありがとうございます。商品の発送状況を確認いたします。",
    "Спасибо за быстрый ответ, жду замену товара.",
    "--- Original message follows; please reply above this line ---",
)
_NAMES = ("Jane Doe", "Max Müller", "Sophie Martin", "Luca Rossi", "Ana García", "Li Wei")


@dataclass(frozen=True)
class Context:
    """What a generated message needs from its place in the corpus."""

    to: str  # the original recipient (routing is by the Delivered-To put above it)
    date: datetime
    uid: str  # unique per message: Message-IDs, boundaries


def _text(rng: random.Random, size: int) -> str:
    """About `size` bytes of prose in lines under 78 characters."""
    out: list[str] = []
    total = 0
    while total < size:
        line = rng.choice(_SENTENCES)
        out.append(line)
        total += len(line.encode()) + 2
    return "\r\n".join(out)


def _headers(ctx: Context, rng: random.Random, subject: str, extra: str = "") -> str:
    name = rng.choice(_NAMES)
    return (
        f"From: {name} <{name.split()[0].lower()}.{rng.randrange(10**6)}@example.net>\r\n"
        f"To: {ctx.to}\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {format_datetime(ctx.date)}\r\n"
        f"Message-ID: <{ctx.uid}@generated.bench.invalid>\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    )


#: Where `_fit` puts the prose that brings a message to its target size.
_FILL = "\x00FILL\x00"


def _fit(template: str, size: int, rng: random.Random) -> bytes:
    """`template` with its one `_FILL` replaced by enough prose to make about `size` bytes."""
    room = size - len(template.encode()) + len(_FILL)
    return template.replace(_FILL, _text(rng, max(100, room))).encode()


def _b64_lines(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    return "\r\n".join(encoded[k : k + 76] for k in range(0, len(encoded), 76))


# --------------------------------------------------------------------------- shapes


def long_header(rng: random.Random, size: int, ctx: Context) -> bytes:
    room = max(1000, size - 1500)
    name = rng.choice(("References", "To", "X-Spam-Report"))
    if name == "References":
        ids: list[str] = []
        while sum(len(i) + 1 for i in ids) < room:
            ids.append(f"<{rng.getrandbits(64):016x}.{len(ids)}@mail.example.org>")
        value = " ".join(ids)
        head = _headers(ctx, rng, "Re: Re: Re: Re: order 204-3321230-9912201", "")
        head += f"In-Reply-To: {ids[-1]}\r\n"
    elif name == "To":
        people = []
        while sum(len(p) + 2 for p in people) < room:
            people.append(f'"{rng.choice(_NAMES)}" <list{len(people)}@example.org>')
        value = ", ".join(people)
        head = _headers(ctx, rng, "Team update: returns process", "").replace(
            f"To: {ctx.to}\r\n", ""
        )
    else:
        value = " ".join(_text(rng, room).split())
        head = _headers(ctx, rng, "Quote request", "")
    head += f"{name}: {value}\r\n"
    head += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    return (head + "\r\n" + _text(rng, 600) + "\r\n").encode()


def folded_headers(rng: random.Random, size: int, ctx: Context) -> bytes:
    words = "Ihre Rücksendung für Bestellung 302-1123581-3213455 wurde erstattet ✓"
    encoded = base64.b64encode(words.encode()).decode()
    # Encoded words cut in the middle of a multi-byte character, as some clients send them.
    subject = "\r\n ".join(f"=?UTF-8?B?{encoded[k : k + 12]}?=" for k in range(0, len(encoded), 12))
    chunks = rng.choice((7, 13, 21))
    ragged = " ".join(f"token{k}={rng.getrandbits(32):08x};" for k in range(60))
    folded = "\r\n\t".join(ragged[k : k + chunks] for k in range(0, len(ragged), chunks))
    lines = [
        f"Subject: {subject}",
        f"X-Folded: {folded}",
        # A continuation line of blanks only, and one of a single tab.
        "X-Blank-Continuations: first\r\n \r\n\t\r\n  last",
        'Content-Type: text/plain;\r\n\tcharset="utf-8";\r\n\tformat=flowed;\r\n\tdelsp=yes',
    ]
    hops = []
    budget = max(0, size - 2000)
    while sum(len(h) for h in hops) < budget:
        ip = f"198.51.100.{rng.randint(1, 254)}"
        hops.append(
            f"Received: from relay{len(hops)}.example.net (relay{len(hops)}.example.net\r\n"
            f" [{ip}])\r\n\tby mx{len(hops) + 1}.example.org (Postfix) with ESMTPS id "
            f"{rng.getrandbits(40):010X}\r\n\tfor <{ctx.to}>;\r\n\t{format_datetime(ctx.date)}"
        )
    head = _headers(ctx, rng, "x").replace("Subject: x\r\n", "")
    raw = "\r\n".join(hops + [head.rstrip("\r\n"), *lines]) + "\r\n\r\n" + _text(rng, 800)
    return (raw + "\r\n").encode()


def deep_nesting(rng: random.Random, size: int, ctx: Context) -> bytes:
    depth = max(4, min(rng.randint(12, 60), size // 450))

    def level(k: int) -> str:
        if k == depth:
            return f"Content-Type: text/plain; charset=utf-8\r\n\r\n{_FILL}\r\n"
        if rng.random() < 0.3:
            return (
                "Content-Type: message/rfc822\r\n\r\n"
                f"From: fwd{k}@example.net\r\nSubject: Fwd: level {k}\r\n"
                f"Message-ID: <{ctx.uid}.{k}@generated.bench.invalid>\r\n"
                "MIME-Version: 1.0\r\n" + level(k + 1)
            )
        boundary = f"nest{k}-{ctx.uid}"
        kind = rng.choice(("mixed", "alternative", "related"))
        return (
            f'Content-Type: multipart/{kind}; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{_text(rng, 120)}\r\n--{boundary}\r\n{level(k + 1)}\r\n--{boundary}--\r\n"
        )

    head = _headers(ctx, rng, f"Fwd: Fwd: Fwd: nested {depth} levels")
    return _fit(head + level(0), size, rng)


def endless_nesting(rng: random.Random, size: int, ctx: Context) -> bytes:
    # Depths as real mail loops reach them (a forward of a forward, a list that
    # re-wraps); the rest of the size is text at every level.
    depth = min(rng.choice((30, 60, 120, 250)), size // 300)
    pad = max(100, size // depth - 160)
    parts = []
    for k in range(depth):
        # Some levels reuse their parent's boundary, which no parser can tell apart.
        boundary = f"b{k - 1 if k and rng.random() < 0.1 else k}-{ctx.uid}"
        parts.append(
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
            f"Content-Type: text/plain\r\n\r\n{_text(rng, pad)}\r\n--{boundary}\r\n"
        )
    head = _headers(ctx, rng, "Your mail could not be filed")
    return (head + "".join(parts) + "the end, and no closing boundary\r\n").encode()


def many_parts(rng: random.Random, size: int, ctx: Context) -> bytes:
    count = min(1000, max(100, size // 300))
    per_part = max(60, size // count - 150)
    boundary = f"many-{ctx.uid}"
    parts = []
    for k in range(count):
        roll = rng.random()
        if roll < 0.4:
            body = f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{_text(rng, per_part)}"
        elif roll < 0.8:
            body = (
                f'Content-Type: image/png; name="img{k}.png"\r\nContent-ID: <img{k}.{ctx.uid}>\r\n'
                "Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + _b64_lines(b"\x89PNG\r\n\x1a\n" + rng.randbytes(per_part * 3 // 4))
            )
        else:
            body = (
                f'Content-Type: text/csv; name="rows{k}.csv"\r\n'
                f'Content-Disposition: attachment; filename="rows{k}.csv"\r\n\r\n'
                + "\r\n".join(f"{k},{j},{rng.randrange(10**6)}" for j in range(per_part // 16))
            )
        parts.append(f"--{boundary}\r\n{body}\r\n")
    head = _headers(
        ctx,
        rng,
        f"{count} scanned pages",
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n',
    )
    return (head + "\r\n" + "".join(parts) + f"--{boundary}--\r\n").encode()


def big_attachment(rng: random.Random, size: int, ctx: Context) -> bytes:
    boundary = f"att-{ctx.uid}"
    files = 1 if rng.random() < 0.7 else 2
    raw_each = max(1000, (size - 2500) * 3 // 4 // files)
    kinds = (
        ("application/pdf", "invoice.pdf", b"%PDF-1.5\n"),
        ("image/jpeg", "IMG_2041.JPG", b"\xff\xd8\xff\xe1"),
        ("application/zip", "photos.zip", b"PK\x03\x04"),
        ("video/mp4", "unboxing.mp4", b"\x00\x00\x00\x18ftypmp42"),
        ("application/octet-stream", "Rücksendeschein 2026.pdf", b"%PDF-1.4\n"),
    )
    parts = [
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{_text(rng, 600)}\r\n"
    ]
    for _ in range(files):
        ctype, name, magic = rng.choice(kinds)
        if name.isascii():
            disposition = f'attachment; filename="{name}"'
        else:  # RFC 2231, as most clients send a non-ASCII file name
            quoted = "".join(
                c
                if c.isalnum() and c.isascii() or c in ".-"
                else "".join(f"%{b:02X}" for b in c.encode())
                for c in name
            )
            disposition = f"attachment; filename*=UTF-8''{quoted}"
        parts.append(
            f'--{boundary}\r\nContent-Type: {ctype}; name="{name}"\r\n'
            f"Content-Disposition: {disposition}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            f"{_b64_lines(magic + rng.randbytes(raw_each - len(magic)))}\r\n"
        )
    head = _headers(
        ctx,
        rng,
        "Photos of the damage",
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n',
    )
    return (head + "\r\n" + "".join(parts) + f"--{boundary}--\r\n").encode()


_EIGHT_BIT = (
    ("utf-8", "Rückfrage zu Bestellung – dringend", "Jürgen Weiß"),
    ("latin-1", "Réclamation commande n° 4471", "Hélène Dupré"),
    ("cp1251", "Вопрос по заказу 4471", "Иван Петров"),
    ("gb2312", "关于订单的问题", "王小明"),
    ("shift_jis", "注文についての問い合わせ", "山田太郎"),
)


def eight_bit(rng: random.Random, size: int, ctx: Context) -> bytes:
    codec, subject, name = rng.choice(_EIGHT_BIT)
    declared = rng.choice((codec, None, "us-ascii"))
    charset = f"; charset={declared}" if declared else ""
    head = (
        f"From: {name} <sender{rng.randrange(10**6)}@example.net>\r\n"
        f"To: {ctx.to}\r\nSubject: {subject}\r\nDate: {format_datetime(ctx.date)}\r\n"
        f"Message-ID: <{ctx.uid}@generated.bench.invalid>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain{charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    body = subject + "\r\n\r\n" + _text(rng, max(200, size - 600))
    return head.encode(codec, "replace") + body.encode(codec, "replace") + b"\r\n"


def bad_charset(rng: random.Random, size: int, ctx: Context) -> bytes:
    text = "Grüße aus Köln – the refund of 49,90 € has not arrived. " + _text(
        rng, max(200, size - 900)
    )
    variant = rng.randrange(6)
    cte = "8bit"
    if variant == 0:  # UTF-8 bytes declared as Latin-1
        charset, body = "iso-8859-1", text.encode()
    elif variant == 1:  # CP1252 bytes declared as UTF-8
        charset, body = "utf-8", text.encode("cp1252", "replace")
    elif variant == 2:  # a charset nobody knows, or a misspelt one
        charset = rng.choice(("unknown-8bit", "x-user-defined", "utf8", "iso-8859-8-i", "foo"))
        body = text.encode()
    elif variant == 3:  # no charset at all, 8-bit body
        charset, body = None, text.encode("latin-1", "replace")
    elif variant == 4:  # quoted-printable with sequences that are not hex
        charset, cte = "utf-8", "quoted-printable"
        body = text.encode().replace(b"\xc3\xbc", b"=C3=BC=ZZ=\r\n").replace(b" ", b"=2")
    else:  # base64 with its padding cut and a line of garbage
        charset, cte = "utf-8", "base64"
        body = (_b64_lines(text.encode()).rstrip("=") + "\r\n!!not base64!!").encode()
    ctype = "text/plain" + (f'; charset="{charset}"' if charset else "")
    subject = rng.choice(
        (
            "=?x-unknown?Q?R=FCckerstattung?= offen",
            "=?utf-8?B?broken base64?= Rückerstattung",
            "=?iso-8859-1?q?caf=E9?==?utf-8?q?_cr=C3=A8me?=",
        )
    )
    head = _headers(
        ctx, rng, subject, f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n"
    )
    return head.encode() + b"\r\n" + body + b"\r\n"


def dsn(rng: random.Random, size: int, ctx: Context) -> bytes:
    boundary = f"dsn-{ctx.uid}"
    failed = f"buyer{rng.randrange(10**6)}@example.com"
    original_id = f"<reply.{rng.getrandbits(48):012x}@{ctx.to.split('@')[1]}>"
    status, diagnostic = rng.choice(
        (
            ("5.1.1", "550 5.1.1 <{a}>: Recipient address rejected: User unknown"),
            ("4.2.2", "452 4.2.2 <{a}>: mailbox full"),
            ("5.7.1", "554 5.7.1 Message rejected as spam by Content Filtering"),
        )
    )
    original = (
        f"From: {ctx.to}\r\nTo: {failed}\r\nSubject: Re: Your order\r\n"
        f"Message-ID: {original_id}\r\nDate: {format_datetime(ctx.date)}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    headers_only = rng.random() < 0.3
    # The bulk: the bounced reply's text, or (headers only) the MTA's transcript.
    original += "\r\n" if headers_only else f"{_FILL}\r\n"
    transcript = f"\r\n{_FILL}\r\n" if headers_only else ""
    parts = (
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx.example.com.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        f"<{failed}>: host mx.example.com said: {diagnostic.format(a=failed)}\r\n{transcript}\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.com\r\nArrival-Date: {format_datetime(ctx.date)}\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic.format(a=failed)}\r\n\r\n"
        f"--{boundary}\r\n"
        + (
            "Content-Type: text/rfc822-headers\r\n\r\n" + original.split("\r\n\r\n")[0] + "\r\n"
            if headers_only
            else "Content-Type: message/rfc822\r\n\r\n" + original
        )
        + f"\r\n--{boundary}--\r\n"
    )
    head = (
        f"From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\nTo: {ctx.to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nDate: {format_datetime(ctx.date)}\r\n"
        f"Message-ID: <{ctx.uid}@mx.example.com>\r\nAuto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n"
        f'\tboundary="{boundary}"\r\n\r\n'
    )
    return _fit(head + parts, size, rng)


def digest(rng: random.Random, size: int, ctx: Context) -> bytes:
    per = min(rng.choice((600, 1500, 4000)), size // 6)
    count = max(3, min(200, size // (per + 300)))
    issue = f"Vol 12, Issue {rng.randint(1, 400)}"
    lists = (
        "List-Id: Sellers forum <sellers.lists.example.org>\r\n"
        "List-Unsubscribe: <mailto:sellers-request@lists.example.org?subject=unsubscribe>\r\n"
        "List-Post: <mailto:sellers@lists.example.org>\r\nPrecedence: list\r\n"
    )
    messages = [
        (
            f"From: {rng.choice(_NAMES)} <m{k}@example.net>\r\nSubject: Re: FBA fees ({k})\r\n"
            f"Message-ID: <{ctx.uid}.{k}@lists.example.org>\r\n"
            f"Date: {format_datetime(ctx.date)}\r\n\r\n{_text(rng, per)}\r\n"
        )
        for k in range(count)
    ]
    toc = "\r\n".join(f"   {k + 1}. Re: FBA fees ({k})" for k in range(count))
    if rng.random() < 0.3:  # RFC 1153: one text part, messages between dashed lines
        sep = "\r\n------------------------------\r\n\r\n"
        head = _headers(
            ctx, rng, f"Sellers Digest, {issue}", lists + "Content-Type: text/plain\r\n"
        )
        return (head + "\r\nToday's Topics:\r\n\r\n" + toc + sep + sep.join(messages)).encode()
    boundary = f"digest-{ctx.uid}"
    head = _headers(
        ctx,
        rng,
        f"Sellers Digest, {issue}",
        lists + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n',
    )
    inner = f"inner-{ctx.uid}"
    body = (
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Description: Today's Topics\r\n\r\n"
        f'{toc}\r\n--{boundary}\r\nContent-Type: multipart/digest; boundary="{inner}"\r\n\r\n'
        # In a digest a part without headers is a message/rfc822.
        + "".join(f"--{inner}\r\n\r\n{m}" for m in messages)
        + f"--{inner}--\r\n\r\n--{boundary}--\r\n"
    )
    return (head + body).encode()


Generator = Callable[[random.Random, int, Context], bytes]
#: Name -> (generator, the smallest size it makes, the largest that makes sense).
GENERATORS: dict[str, tuple[Generator, int, int]] = {
    "long_header": (long_header, 3_000, 1_000_000),
    "folded_headers": (folded_headers, 4_500, 64_000),
    "deep_nesting": (deep_nesting, 6_000, 300_000),
    "endless_nesting": (endless_nesting, 50_000, 3_000_000),
    "many_parts": (many_parts, 20_000, 1_000_000),
    "big_attachment": (big_attachment, 20_000, 3_000_000),
    "eight_bit": (eight_bit, 600, 40_000),
    "bad_charset": (bad_charset, 800, 40_000),
    "dsn": (dsn, 2_000, 300_000),
    "digest": (digest, 5_000, 300_000),
}
