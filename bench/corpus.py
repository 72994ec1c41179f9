"""A deterministic corpus of real-world-shaped Amazon buyer mail for the ingest benchmark.

Message `i` is the same bytes on every run with the same seed and start time, so
the corpus of 1,000 messages is the first 1,000 of the corpus of 5,000. Shares:

    mailgen     tests.mailgen.amazon_message (UK/US, text + simple HTML) under the
                transport headers a relayed mail really carries (Received, ARC, DKIM…)
    plain       the same shape in the buyer's language (DE, FR, IT, ES, JP; some JP
                in ISO-2022-JP)
    rich        Amazon's table-laid-out HTML notification plus its text part
    attachment  rich, plus one or two photos or PDFs of 20–150 KB (multipart/mixed)
    photo       rich, plus one phone photo of 0.4–1.5 MB
    followup    the buyer's next message in an earlier conversation: same relay
                alias and order, In-Reply-To, quoted history
    fixture     one of tests/data/mail/*.eml (ISO-2022-JP, bounce, auto-reply, Amazon
                notice, broken MIME, not mail at all…) with a unique Message-ID

Every message has its own Message-ID. Lines end in CRLF, as mail on the wire does.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from functools import cache
from pathlib import Path

from tests.mailgen import amazon_message

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "data" / "mail"

INBOUND_DOMAIN = "helpdesk.test"
#: Marketplace code -> the channel's helpdesk address (the fixtures use the first three).
CHANNEL_ADDRESSES = {
    "UK": "uk-chan01@helpdesk.test",
    "DE": "de-chan02@helpdesk.test",
    "JP": "jp-chan03@helpdesk.test",
    "US": "us-chan04@helpdesk.test",
    "FR": "fr-chan05@helpdesk.test",
    "IT": "it-chan06@helpdesk.test",
    "ES": "es-chan07@helpdesk.test",
}

#: Kind -> share of messages (cumulative thresholds are built from this order).
KIND_SHARES = {
    "mailgen": 0.30,
    "plain": 0.12,
    "rich": 0.22,
    "attachment": 0.07,
    "photo": 0.01,
    "followup": 0.20,
    "fixture": 0.08,
}
#: Kinds that start a conversation a later follow-up can continue.
_STARTERS = {"plain", "rich", "attachment", "photo", "followup"}
#: Seconds between two messages' Date headers.
SPACING = 45

# code, relay TLD, language, weight
_MARKETS = [
    ("UK", "co.uk", "en", 30),
    ("US", "com", "en", 20),
    ("DE", "de", "de", 20),
    ("FR", "fr", "fr", 10),
    ("IT", "it", "it", 7),
    ("ES", "es", "es", 7),
    ("JP", "co.jp", "ja", 6),
]


@dataclass(frozen=True)
class Language:
    subject: str
    presale_subject: str
    begin: str
    end: str
    order_label: str
    quantity: str
    respond: str
    wrote: str
    names: tuple[str, ...]
    questions: tuple[str, ...]
    disclaimer: str


_EN_DISCLAIMER = (
    "For Your Information: To help arbitrate disputes and preserve trust and safety, we retain "
    "all messages buyers and sellers send through Amazon for two years. This includes your "
    "response to the message below. Amazon uses filtering technology to protect buyers and "
    "sellers from possible fraud. Messages that fail this filtering will not be transmitted. "
    "We want you to buy with confidence anytime you purchase products on Amazon. Learn more "
    "about Safe Online Shopping and our safe buying guarantee."
)

LANGUAGES = {
    "en": Language(
        subject="Inquiry from Amazon customer {name} (Order: {order})",
        presale_subject="Product details inquiry from Amazon customer {name}",
        begin="------------- Begin message -------------",
        end="------------- End message -------------",
        order_label="Order ID",
        quantity="{n} of",
        respond="Respond",
        wrote="On {date}, {who} wrote:",
        names=("Jane Doe", "Oliver Smith", "Amelia Jones", "Harry Taylor", "Emily Brown"),
        questions=(
            "Hello, my parcel has not arrived yet. It was due on Friday. Can you check where it is?",
            "The item arrived damaged: the lid is cracked. Can I get a replacement or a refund?",
            "Is this available in blue? I would like to order two more for my family.",
            "Could you send me a VAT invoice for this order please? Our company needs it.",
            "The tracking says delivered but nothing was left at my door or with my neighbours.",
            "I ordered the 750ml bottle but received the 500ml one. Please advise how to return it.",
        ),
        disclaimer=_EN_DISCLAIMER,
    ),
    "de": Language(
        subject="Anfrage von Amazon-Kunde {name} (Bestellung: {order})",
        presale_subject="Produktanfrage von Amazon-Kunde {name}",
        begin="------------- Beginn der Nachricht -------------",
        end="------------- Ende der Nachricht -------------",
        order_label="Bestellnummer",
        quantity="{n} von",
        respond="Antworten",
        wrote="Am {date} schrieb {who}:",
        names=("Max Müller", "Jürgen Weiß", "Anna Schäfer", "Lukas Groß", "Sophie Köhler"),
        questions=(
            "Guten Tag, mein Paket ist noch nicht angekommen. Können Sie bitte nachsehen, wo es ist?",
            "Der Artikel kam beschädigt an, der Deckel ist gesprungen. Bitte um Ersatz oder Erstattung.",
            "Ist der Artikel auch in Größe XL verfügbar? Ich würde gern zwei weitere bestellen.",
            "Könnten Sie mir bitte eine Rechnung mit ausgewiesener MwSt. für diese Bestellung schicken?",
        ),
        disclaimer=(
            "Zu Ihrer Information: Um bei Streitigkeiten schlichten zu können und Vertrauen und "
            "Sicherheit zu gewährleisten, speichern wir alle Nachrichten, die Käufer und Verkäufer "
            "über Amazon versenden, zwei Jahre lang. Dazu gehört auch Ihre Antwort auf die "
            "untenstehende Nachricht. Amazon setzt Filtertechnologien ein, um Käufer und Verkäufer "
            "vor möglichem Betrug zu schützen. Nachrichten, die diese Filter nicht passieren, "
            "werden nicht übermittelt."
        ),
    ),
    "fr": Language(
        subject="Demande de renseignements de la part du client Amazon {name} (Commande : {order})",
        presale_subject="Question sur un produit de la part du client Amazon {name}",
        begin="------------- Début du message -------------",
        end="------------- Fin du message -------------",
        order_label="Numéro de commande",
        quantity="{n} de",
        respond="Répondre",
        wrote="Le {date}, {who} a écrit :",
        names=("Sophie Martin", "Léa Bernard", "Hugo Lefèvre", "Chloé Dubois", "Théo Moreau"),
        questions=(
            "Bonjour, mon colis n'est toujours pas arrivé. Pouvez-vous vérifier où il se trouve ?",
            "L'article est arrivé endommagé : le couvercle est fissuré. Un remplacement est-il possible ?",
            "Pourriez-vous m'envoyer une facture avec TVA pour cette commande, s'il vous plaît ?",
        ),
        disclaimer=(
            "Pour votre information : afin de pouvoir arbitrer les litiges et de préserver la "
            "confiance et la sécurité, nous conservons pendant deux ans tous les messages que les "
            "acheteurs et les vendeurs s'envoient via Amazon, y compris votre réponse au message "
            "ci-dessous. Amazon utilise une technologie de filtrage pour protéger les acheteurs "
            "et les vendeurs contre toute fraude éventuelle."
        ),
    ),
    "it": Language(
        subject="Richiesta dal cliente Amazon {name} (Ordine: {order})",
        presale_subject="Domanda su un prodotto dal cliente Amazon {name}",
        begin="------------- Inizio messaggio -------------",
        end="------------- Fine messaggio -------------",
        order_label="Numero d'ordine",
        quantity="{n} di",
        respond="Rispondi",
        wrote="Il giorno {date}, {who} ha scritto:",
        names=("Luca Rossi", "Giulia Bianchi", "Francesca Ricci", "Matteo Romano"),
        questions=(
            "Buongiorno, il mio pacco non è ancora arrivato. Potete verificare dove si trova?",
            "L'articolo è arrivato danneggiato. Posso avere una sostituzione o un rimborso?",
            "Potreste inviarmi la fattura per questo ordine? Grazie mille.",
        ),
        disclaimer=(
            "Per tua informazione: per gestire eventuali controversie e preservare la fiducia e "
            "la sicurezza, conserviamo per due anni tutti i messaggi scambiati tra acquirenti e "
            "venditori tramite Amazon, inclusa la tua risposta al messaggio seguente."
        ),
    ),
    "es": Language(
        subject="Consulta del cliente de Amazon {name} (Pedido: {order})",
        presale_subject="Consulta sobre un producto del cliente de Amazon {name}",
        begin="------------- Inicio del mensaje -------------",
        end="------------- Fin del mensaje -------------",
        order_label="Número de pedido",
        quantity="{n} de",
        respond="Responder",
        wrote="El {date}, {who} escribió:",
        names=("Ana García", "Javier Fernández", "Lucía Martínez", "Pablo Sánchez"),
        questions=(
            "Hola, mi paquete todavía no ha llegado. ¿Pueden comprobar dónde está?",
            "El artículo llegó dañado: la tapa está rota. ¿Pueden enviarme uno nuevo o reembolsarme?",
            "¿Me podrían enviar una factura con IVA de este pedido, por favor?",
        ),
        disclaimer=(
            "Para tu información: para arbitrar disputas y preservar la confianza y la "
            "seguridad, conservamos durante dos años todos los mensajes que compradores y "
            "vendedores se envían a través de Amazon, incluida tu respuesta al mensaje siguiente."
        ),
    ),
    "ja": Language(
        subject="Amazonのお客様 {name} からの問い合わせ (注文番号: {order})",
        presale_subject="Amazonのお客様 {name} からの商品に関する問い合わせ",
        begin="------------- メッセージの開始 -------------",
        end="------------- メッセージの終了 -------------",
        order_label="注文番号",
        quantity="{n} 点:",
        respond="返信する",
        wrote="{date}、{who} さんは書きました:",
        names=("山田 太郎", "佐藤 花子", "鈴木 一郎", "高橋 美咲"),
        questions=(
            "ご注文の商品がまだ届きません。配送状況を確認していただけますか。",
            "商品が破損した状態で届きました。交換または返金をお願いできますでしょうか。",
            "この商品の青色はありますか。あと二つ注文したいと考えています。",
            "領収書を発行していただけますか。宛名は株式会社サンプルでお願いします。",
        ),
        disclaimer=(
            "ご参考: Amazonでは、紛争の仲裁や信頼と安全の確保のため、購入者と出品者がAmazonを"
            "通じて送信したすべてのメッセージを2年間保管しています。これには以下のメッセージへの"
            "返信も含まれます。"
        ),
    ),
}

_ITEMS = [
    ("Garden Kneeler Pad, Green", "£12.99"),
    ("Stainless Steel Water Bottle 750ml, Vacuum Insulated", "£18.49"),
    ("USB-C Cable 2m (2-pack), Braided Nylon, 60W Fast Charging", "£9.99"),
    ("Bamboo Cutting Board Set of 3 with Juice Groove", "£24.95"),
    ("LED Desk Lamp with Wireless Charger, Dimmable, 5 Colour Modes", "£32.00"),
    ("Merino Wool Hiking Socks, 3 Pairs, Size 43-46", "£21.50"),
    ("Silicone Baking Mats (2-pack), Non-Stick, BPA Free", "£11.99"),
    ("Replacement Filter Cartridges for Water Jug, 6 Pack", "£27.99"),
]

_CSS = """
body,table,td,a{-webkit-text-size-adjust:100%;-ms-text-size-adjust:100%}
table,td{mso-table-lspace:0pt;mso-table-rspace:0pt;border-collapse:collapse}
img{-ms-interpolation-mode:bicubic;border:0;height:auto;line-height:100%;outline:none;text-decoration:none}
body{margin:0!important;padding:0!important;width:100%!important;background-color:#f3f3f3}
a[x-apple-data-detectors]{color:inherit!important;text-decoration:none!important;font-size:inherit!important}
.container{width:640px;max-width:640px;background-color:#ffffff}
.header{padding:18px 24px 12px 24px;border-bottom:1px solid #e7e7e7}
.title{font-family:'Amazon Ember',Arial,sans-serif;font-size:20px;line-height:26px;color:#0f1111;padding:18px 24px 6px 24px}
.order{font-family:'Amazon Ember',Arial,sans-serif;font-size:14px;line-height:20px;color:#565959;padding:0 24px 12px 24px}
.order a{color:#007185;text-decoration:none}
.item{font-family:'Amazon Ember',Arial,sans-serif;font-size:14px;line-height:20px;color:#0f1111;padding:6px 12px}
.thumb{width:90px;padding:6px 0 6px 24px;vertical-align:top}
.marker{font-family:Consolas,'Courier New',monospace;font-size:12px;color:#767676;padding:12px 24px 0 24px}
.message{font-family:'Amazon Ember',Arial,sans-serif;font-size:15px;line-height:22px;color:#0f1111;padding:12px 24px;white-space:pre-wrap}
.quoted{border-left:3px solid #d5d9d9;margin:0 24px 12px 24px;padding:6px 12px;color:#565959;font-size:13px}
.button{padding:18px 24px}
.button a{display:inline-block;background:#ffd814;border:1px solid #fcd200;border-radius:8px;padding:8px 22px;font-family:Arial,sans-serif;font-size:14px;color:#0f1111;text-decoration:none}
.legal{font-family:Arial,sans-serif;font-size:11px;line-height:16px;color:#767676;padding:12px 24px 18px 24px;border-top:1px solid #e7e7e7}
.footer{font-family:Arial,sans-serif;font-size:11px;line-height:16px;color:#767676;padding:0 24px 24px 24px}
.footer a{color:#007185;text-decoration:none}
@media only screen and (max-width:660px){.container{width:100%!important}.thumb{width:64px!important}.title{font-size:18px!important}.message{font-size:16px!important}}
@media (prefers-color-scheme:dark){.container{background-color:#1b1b1b!important}.title,.item,.message{color:#f0f0f0!important}}
"""


@dataclass(frozen=True)
class Conversation:
    """Who writes about what: the same for every message of one conversation."""

    key: int
    market: str
    tld: str
    language: Language
    name: str
    alias: str
    order: str | None
    items: tuple[tuple[str, str, str, int], ...]  # title, ASIN, price, quantity
    japanese_jis: bool

    @property
    def to(self) -> str:
        return CHANNEL_ADDRESSES[self.market]

    @property
    def subject(self) -> str:
        lang = self.language
        if self.order:
            return lang.subject.format(name=self.name, order=self.order)
        return lang.presale_subject.format(name=self.name)


@cache
def _fixtures() -> tuple[tuple[str, bytes], ...]:
    return tuple(
        (p.name, re.sub(rb"\r?\n", b"\r\n", p.read_bytes())) for p in sorted(FIXTURES.glob("*.eml"))
    )


class Corpus:
    """`corpus.message(i)`: the bytes of message i; `corpus.kind(i)`: what it is."""

    def __init__(self, *, start: datetime, seed: int = 1, only: str | None = None) -> None:
        if only is not None and only not in KIND_SHARES or only == "followup":
            raise ValueError(f"only= takes one of {sorted(set(KIND_SHARES) - {'followup'})}")
        self.start = start
        self.seed = seed
        #: Every message of this one kind (a stress case, e.g. "photo" for memory).
        self.only = only
        self._thresholds: list[tuple[float, str]] = []
        # Follow-ups look back at earlier kinds; without these caches that is exponential.
        self._kinds: dict[int, str] = {}
        self._conversations: dict[int, Conversation] = {}
        total = 0.0
        for kind, share in KIND_SHARES.items():
            total += share
            self._thresholds.append((total, kind))

    # --- deterministic choices ---------------------------------------------------------

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(str(p) for p in (self.seed, *parts)))

    def kind(self, i: int) -> str:
        if self.only:
            return self.only
        kind = self._kinds.get(i)
        if kind is None:
            roll = self._rng("kind", i).random()
            kind = next((k for t, k in self._thresholds if roll < t), "mailgen")
            if kind == "followup" and self._followup_target(i) is None:
                kind = "rich"  # nothing earlier to follow up: start a conversation instead
            self._kinds[i] = kind
        return kind

    def _followup_target(self, i: int) -> int | None:
        rng = self._rng("target", i)
        for _ in range(12):
            if i == 0:
                return None
            j = rng.randrange(max(0, i - 1500), i)
            if self.kind(j) in _STARTERS:
                return j
        return None

    def conversation_of(self, i: int) -> tuple[int, int]:
        """(conversation key, depth): a starter is its own conversation at depth 0."""
        depth = 0
        while self.kind(i) == "followup":
            target = self._followup_target(i)
            assert target is not None
            i, depth = target, depth + 1
        return i, depth

    def conversation(self, key: int) -> Conversation:
        if key not in self._conversations:
            self._conversations[key] = self._new_conversation(key)
        return self._conversations[key]

    def _new_conversation(self, key: int) -> Conversation:
        rng = self._rng("conversation", key)
        code, tld, lang_code, _ = rng.choices(_MARKETS, weights=[m[3] for m in _MARKETS])[0]
        lang = LANGUAGES[lang_code]
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        alias = "".join(rng.choice(alphabet) for _ in range(15))
        order = None
        if rng.random() < 0.85:
            order = f"{rng.randint(200, 699)}-{rng.randint(0, 9999999):07d}-{rng.randint(0, 9999999):07d}"
        items = tuple(
            (
                title,
                "B0" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(8)),
                price,
                rng.choice((1, 1, 1, 2, 3)),
            )
            for title, price in rng.sample(_ITEMS, rng.choice((1, 1, 1, 2, 3)))
        )
        return Conversation(
            key=key,
            market=code,
            tld=tld,
            language=lang,
            name=rng.choice(lang.names),
            alias=f"{alias}@marketplace.amazon.{tld}",
            order=order,
            items=items,
            japanese_jis=rng.random() < 0.5,
        )

    def message_id(self, i: int) -> str:
        digest = hashlib.sha1(f"{self.seed}:{i}".encode()).hexdigest()  # noqa: S324 - not security
        return (
            f"<0102018c{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-"
            f"{digest[20:32]}-{i:06d}@eu-west-1.amazonses.com>"
        )

    def date(self, i: int) -> datetime:
        return self.start + timedelta(seconds=SPACING * i)

    # --- the messages --------------------------------------------------------------------

    def message(self, i: int) -> bytes:
        """Message i as it arrives in the helpdesk's mailbox (CRLF line ends)."""
        kind = self.kind(i)
        rng = self._rng("message", i)
        if kind == "fixture":
            return self._fixture(i, rng)
        if kind == "mailgen":
            market, tld = rng.choice((("UK", "co.uk"), ("UK", "co.uk"), ("US", "com")))
            to = CHANNEL_ADDRESSES[market]
            body = amazon_message(i, to, rng=rng, tld=tld)
            body = re.sub(rb"(?m)^Delivered-To: .*\n", b"", body, count=1)
            body = re.sub(
                rb"(?m)^Message-ID: .*$", f"Message-ID: {self.message_id(i)}".encode(), body
            )
            body = re.sub(rb"\r?\n", b"\r\n", body)
            return self._transport(i, rng, to, tld) + body
        key, depth = self.conversation_of(i)
        conv = self.conversation(key)
        msg = self._amazon(i, rng, conv, kind=kind, depth=depth)
        return self._transport(i, rng, conv.to, conv.tld) + msg.as_bytes(policy=policy.SMTP)

    def _fixture(self, i: int, rng: random.Random) -> bytes:
        fixtures = _fixtures()
        _name, raw = fixtures[rng.randrange(len(fixtures))]
        # Spread the fixtures' one order and buyer over many conversations.
        order = (
            f"{rng.randint(200, 699)}-{rng.randint(0, 9999999):07d}-{rng.randint(0, 9999999):07d}"
        )
        raw = raw.replace(b"203-1234567-1234567", order.encode())
        raw = raw.replace(b"abc123xyz@", f"fx{rng.getrandbits(40):010x}@".encode())
        header = f"Message-ID: {self.message_id(i)}".encode()
        raw, found = re.subn(rb"(?im)^Message-ID:.*$", header, raw, count=1)
        if not found:
            # No Message-ID (or not mail at all): distinct bytes all the same, so the
            # content-hash de-duplication does not fold the copies into one.
            raw = raw.rstrip(b"\r\n") + f"\r\nbench copy {i}\r\n".encode()
        return raw

    def _transport(self, i: int, rng: random.Random, to: str, tld: str) -> bytes:
        """The headers a buyer message picks up between Amazon SES and the helpdesk."""

        def b64(n: int) -> str:
            return base64.b64encode(rng.randbytes(n)).decode()

        def fold(value: str, width: int = 76) -> str:
            return "\r\n\t".join(value[k : k + width] for k in range(0, len(value), width))

        date = self.date(i)
        stamp = format_datetime(date)
        epoch = int(date.timestamp())
        ses_ip = f"54.240.{rng.randint(0, 15)}.{rng.randint(1, 254)}"
        seller = (
            f"orders@{rng.choice(('example-shop.co.uk', 'kitchenhelden.de', 'outdoor-gear.com'))}"
        )
        ses_id = f"0102018c{rng.getrandbits(64):016x}-{rng.getrandbits(32):08x}-000000"
        signed = "From:To:Subject:MIME-Version:Content-Type:Message-ID:Date:Feedback-ID"
        lines = [
            f"Delivered-To: {to}",
            f"Received: by 2002:a05:7300:{rng.getrandbits(16):x}:b0:{rng.getrandbits(16):x} with SMTP id "
            f"{rng.getrandbits(32):x}csp{rng.randint(100000, 999999)};\r\n        {stamp}",
            f"X-Forwarded-To: {to}",
            f"X-Forwarded-For: {seller} {to}",
            f"Return-Path: <{ses_id}@eu-west-1.amazonses.com>",
            f"Received: from a{ses_ip.replace('.', '-')}.smtp-out.eu-west-1.amazonses.com "
            f"(a{ses_ip.replace('.', '-')}.smtp-out.eu-west-1.amazonses.com. [{ses_ip}])\r\n"
            f"        by mx.google.com with ESMTPS id {b64(9)}\r\n"
            f"        for <{seller}>\r\n"
            "        (version=TLS1_3 cipher=TLS_AES_128_GCM_SHA256 bits=128/128);\r\n"
            f"        {stamp}",
            f"Received-SPF: pass (google.com: domain of {ses_id}@eu-west-1.amazonses.com "
            f"designates {ses_ip} as permitted sender) client-ip={ses_ip};",
            f"ARC-Seal: i=1; a=rsa-sha256; t={epoch}; cv=none;\r\n        d=google.com; "
            f"s=arc-20240605;\r\n        b={fold(b64(256))}",
            "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=google.com; "
            f"s=arc-20240605;\r\n        h=feedback-id:date:message-id:mime-version:subject:to:from"
            f":dkim-signature;\r\n        bh={b64(32)};\r\n        fh=; b={fold(b64(256))}",
            "ARC-Authentication-Results: i=1; mx.google.com;\r\n"
            f"       dkim=pass header.i=@amazon.{tld} header.s=htgb6qsp header.b={b64(6)};\r\n"
            f"       spf=pass (google.com: domain of {ses_id}@eu-west-1.amazonses.com designates "
            f"{ses_ip} as permitted sender);\r\n       dmarc=pass (p=QUARANTINE sp=QUARANTINE "
            f"dis=NONE) header.from=marketplace.amazon.{tld}",
            f"DKIM-Signature: v=1; a=rsa-sha256; q=dns/txt; c=relaxed/simple;\r\n\ts=htgb6qsp; "
            f"d=amazon.{tld}; t={epoch};\r\n\th={signed};\r\n\tbh={b64(32)};\r\n"
            f"\tb={fold(b64(256))}",
            "DKIM-Signature: v=1; a=rsa-sha256; q=dns/txt; c=relaxed/simple;\r\n\t"
            f"s=ihchhvubuqgjsxyuhssfvqohv7z3u4hn; d=amazonses.com; t={epoch};\r\n\th={signed};"
            f"\r\n\tbh={b64(32)};\r\n\tb={fold(b64(256))}",
            f"X-SES-Outgoing: {date:%Y.%m.%d}-{ses_ip}",
            f"Feedback-ID: ::1.eu-west-1.{b64(30)}=:AmazonSES",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()

    def _amazon(
        self, i: int, rng: random.Random, conv: Conversation, *, kind: str, depth: int
    ) -> EmailMessage:
        lang = conv.language
        questions = rng.sample(lang.questions, rng.choice((1, 1, 2, 3)))
        question = " ".join(questions)
        token = f"{rng.getrandbits(48):012X}"
        quoted_text, quoted_html = "", ""
        if depth:
            # The seller's answer and the buyer's first words, quoted under the new text.
            first = self._rng("message", conv.key)
            earlier = " ".join(first.sample(lang.questions, 1))
            when = format_datetime(self.date(conv.key))
            quoted_text = (
                "\n\n"
                + lang.wrote.format(date=when, who=conv.name)
                + "\n"
                + "\n".join("> " + line for line in earlier.splitlines())
            )
            quoted_html = (
                f'<tr><td><div class="quoted"><p>{lang.wrote.format(date=when, who=conv.name)}'
                f"</p><blockquote>{earlier}</blockquote></div></td></tr>"
            )
        item_lines = "\n".join(
            f"{lang.quantity.format(n=qty)} {title}\nASIN: {asin}"
            for title, asin, _, qty in conv.items
        )
        order_line = f"{lang.order_label} {conv.order}:\n" if conv.order else ""
        text = (
            f"{order_line}{item_lines}\n\n{lang.begin}\n\n{question}{quoted_text}\n\n{lang.end}\n\n"
            f"{lang.disclaimer}\n\n[commMgrTok:{token}]\n"
        )
        msg = EmailMessage()
        msg["From"] = formataddr((f"{conv.name} - Amazon Marketplace", conv.alias))
        msg["To"] = conv.to
        subject = conv.subject
        msg["Subject"] = f"RE: {subject}" if depth else subject
        msg["Message-ID"] = self.message_id(i)
        if depth:
            # Half point at the buyer's earlier mail (stored), half at the seller's reply
            # (sent from Seller Central, unknown to the helpdesk): both must thread.
            if rng.random() < 0.5:
                parent = self.message_id(conv.key)
            else:
                parent = f"<reply-{conv.key}-{depth}@sellercentral.amazon.{conv.tld}>"
            msg["In-Reply-To"] = parent
            msg["References"] = parent
        msg["Date"] = format_datetime(self.date(i))
        msg["MIME-Version"] = "1.0"
        msg["X-Amazon-Rte-Version"] = "2.0"
        if conv.language is LANGUAGES["ja"] and conv.japanese_jis and kind == "plain":
            msg.set_content(text, charset="iso-2022-jp")
            return msg
        msg.set_content(text, cte="quoted-printable")
        if kind == "plain":
            html = "".join(f"<p>{line}</p>" for line in text.splitlines() if line)
            msg.add_alternative(f"<html><body>{html}</body></html>", subtype="html")
            return msg
        msg.add_alternative(
            self._html(rng, conv, questions, token, quoted_html),
            subtype="html",
            cte="quoted-printable",
        )
        if kind == "attachment":
            for n in range(rng.choice((1, 1, 2))):
                if rng.random() < 0.7:
                    data = _jpeg(rng, rng.randint(20_000, 150_000))
                    msg.add_attachment(
                        data, maintype="image", subtype="jpeg", filename=f"IMG_{4000 + i + n}.jpg"
                    )
                else:
                    data = _pdf(rng, rng.randint(20_000, 120_000))
                    msg.add_attachment(
                        data,
                        maintype="application",
                        subtype="pdf",
                        filename=f"Rechnung_{conv.order or 'Angebot'}.pdf",
                    )
        elif kind == "photo":
            data = _jpeg(rng, rng.randint(400_000, 1_500_000))
            msg.add_attachment(
                data, maintype="image", subtype="jpeg", filename=f"PXL_20261101_{i:06d}.jpg"
            )
        return msg

    def _html(
        self, rng: random.Random, conv: Conversation, questions: list[str], token: str, quoted: str
    ) -> str:
        lang = conv.language
        site = f"https://sellercentral.amazon.{conv.tld}"
        tracking = "&amp;".join(
            f"{k}={rng.getrandbits(80):020X}" for k in ("C", "K", "M", "R", "T", "U", "H")
        )
        items = "".join(
            f"""
          <tr>
            <td>
              <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">
                <tr>
                  <td class="thumb"><a href="https://www.amazon.{conv.tld}/dp/{asin}?ref_=pe_msg_{token}"><img src="https://m.media-amazon.com/images/I/{rng.getrandbits(60):015X}._SS90_.jpg" width="90" height="90" alt="{title}" style="display:block;border:0;"/></a></td>
                  <td class="item">{lang.quantity.format(n=qty)} <a href="https://www.amazon.{conv.tld}/dp/{asin}" style="color:#007185;text-decoration:none;">{title}</a><br/>ASIN: {asin}<br/><span style="color:#565959;">{price}</span></td>
                </tr>
              </table>
            </td>
          </tr>"""
            for title, asin, price, qty in conv.items
        )
        order = (
            f'<tr><td class="order">{lang.order_label}: <a href="{site}/orders-v3/order/'
            f'{conv.order}?ref_=xx_msg_ord">{conv.order}</a></td></tr>'
            if conv.order
            else ""
        )
        paragraphs = "".join(f"<p style='margin:0 0 10px 0;'>{q}</p>" for q in questions)
        footer_links = " | ".join(
            f'<a href="{site}/{path}?ref_=xx_msg_ftr_{n}">{label}</a>'
            for n, (path, label) in enumerate(
                (
                    ("messaging/inbox", "Buyer-Seller Messages"),
                    ("gp/help/external/G200389110", "Messaging guidelines"),
                    ("notifications/preferences", "Notification preferences"),
                    ("gp/help/external/201389410", "Help"),
                )
            )
        )
        return f"""<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office">
<head>
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8"/>
  <meta name="viewport" content="width=device-width, initial-scale=1.0"/>
  <meta name="x-apple-disable-message-reformatting"/>
  <title>{conv.subject}</title>
  <!--[if mso]><xml><o:OfficeDocumentSettings><o:PixelsPerInch>96</o:PixelsPerInch></o:OfficeDocumentSettings></xml><![endif]-->
  <style type="text/css">{_CSS}</style>
</head>
<body style="margin:0;padding:0;background-color:#f3f3f3;">
  <div style="display:none;max-height:0;overflow:hidden;">{questions[0][:90]}</div>
  <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f3f3f3;">
    <tr>
      <td align="center" style="padding:24px 8px;">
        <table role="presentation" class="container" width="640" cellpadding="0" cellspacing="0" border="0">
          <tr>
            <td class="header"><a href="{site}/messaging/inbox?ref_=xx_msg_hdr_{token}"><img src="https://m.media-amazon.com/images/G/01/SellerCentral/amazon-seller-central-logo._CB{rng.randint(10**8, 10**9)}_.png" width="180" height="30" alt="Amazon Seller Central" style="display:block;border:0;"/></a></td>
          </tr>
          <tr>
            <td class="title">{conv.subject}</td>
          </tr>
          {order}{items}
          <tr><td class="marker">{lang.begin}</td></tr>
          <tr>
            <td class="message">{paragraphs}</td>
          </tr>
          <tr><td class="marker">{lang.end}</td></tr>
          {quoted}
          <tr>
            <td class="button"><a href="{site}/messaging/thread?threadId={token}&amp;ref_=xx_msg_rsp">{lang.respond}</a></td>
          </tr>
          <tr>
            <td class="legal">{lang.disclaimer}</td>
          </tr>
          <tr>
            <td class="footer">{footer_links}<br/><br/>&copy; 1996-2026, Amazon.com, Inc. or its affiliates<br/>[commMgrTok:{token}]</td>
          </tr>
        </table>
      </td>
    </tr>
  </table>
  <img src="https://www.amazon.{conv.tld}/gp/r.html?{tracking}&amp;ref_=pe_msg_{token}" width="1" height="1" alt="" style="display:block;"/>
  <img src="https://sellercentral.amazon.{conv.tld}/messaging/open.gif?id={token}&amp;mp={conv.market}" width="1" height="1" alt=""/>
</body>
</html>
"""


def _jpeg(rng: random.Random, size: int) -> bytes:
    # JFIF header, incompressible "entropy-coded" middle, end-of-image marker: what a
    # phone photo looks like to everything that does not decode it.
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00H\x00H\x00\x00\xff\xdb\x00C\x00"
    return head + rng.randbytes(max(0, size - len(head) - 2)) + b"\xff\xd9"


def _pdf(rng: random.Random, size: int) -> bytes:
    head = (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
        b"3 0 obj\n<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>\nendobj\n"
        b"4 0 obj\n<< /Filter /FlateDecode >>\nstream\n"
    )
    tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    return head + rng.randbytes(max(0, size - len(head) - len(tail))) + tail
