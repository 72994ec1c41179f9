"""Checks a reply against Amazon's Buyer-Seller Messaging rules before it is sent.

Pure functions: no database, no Flask, so the composer, canned replies and any
future outbox check can all call `check_reply`. The checks warn, they never
block: an agent may know better (a carrier's phone number is allowed, say), but
should see what Amazon is likely to reject or flag.

The text is NFKC-normalised first, so full-width digits and half-width katakana
are caught too; excerpts are quoted from the normalised text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ingest.mail.amazon import ORDER_ID_RE

#: Amazon accepts up to 10 MB of attachments in one message (same value as the
#: portal's MAX_ATTACHMENT_BYTES default).
MAX_ATTACHMENTS_BYTES = 10 * 1024 * 1024

#: What Buyer-Seller Messaging accepts: documents and images. Anything else
#: (archives, executables, HTML, scripts, videos) is refused or stripped.
ACCEPTED_ATTACHMENT_TYPES: dict[str, frozenset[str]] = {
    ".pdf": frozenset({"application/pdf"}),
    ".txt": frozenset({"text/plain"}),
    ".doc": frozenset({"application/msword"}),
    ".docx": frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document"}),
    ".jpg": frozenset({"image/jpeg", "image/pjpeg"}),
    ".jpeg": frozenset({"image/jpeg", "image/pjpeg"}),
    ".png": frozenset({"image/png"}),
    ".gif": frozenset({"image/gif"}),
}
_ACCEPTED_CONTENT_TYPES = frozenset().union(*ACCEPTED_ATTACHMENT_TYPES.values())
# Mail clients label files they cannot identify like this; the extension decides then.
_UNSPECIFIC_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_ACCEPTED_NAMES = "PDF, Word (.doc, .docx), plain text (.txt) and JPEG, PNG or GIF images"


@dataclass(frozen=True)
class ComplianceWarning:
    """One thing in a reply that Amazon's messaging rules forbid."""

    code: str
    #: What Amazon forbids and how to fix it, in plain words for the agent.
    message: str
    #: The offending text (a link, an address, a word, a file name), when there is one.
    excerpt: str | None = None


def check_reply(
    body: str,
    *,
    attachments: Sequence[tuple[str, str, int]] = (),
    order_id: str | None = None,
    is_post_order: bool = False,
) -> list[ComplianceWarning]:
    """Warnings for `body` and its `attachments` (filename, content type, size in bytes)."""
    text = unicodedata.normalize("NFKC", body or "")
    warnings: list[ComplianceWarning] = []
    links = list(_find_links(text))
    emails = list(_find_emails(text))
    # "https://amazon.de@evil.example" is a link, not also an e-mail address; the
    # "example.com" of "jane [at] example.com" is part of an address, not a link.
    web_links = [span for url, span, _ in links if "://" in url]
    emails = [(a, span) for a, span in emails if not any(_overlap(span, s) for s in web_links)]
    links = [link for link in links if not any(_overlap(link[1], span) for _, span in emails)]
    warnings += [_link_warning(url) for url, _, is_amazon in links if not is_amazon]
    warnings += [_email_warning(address) for address, _ in emails]
    link_spans = [span for _, span, _ in links]
    masked = _mask(text, link_spans + [span for _, span in emails])
    warnings += [_phone_warning(number) for number in _find_phone_numbers(masked)]
    warnings += [_marketing_warning(term, kind) for term, kind in _find_marketing(text)]
    warnings += _check_attachments(attachments)
    if is_post_order:
        warning = _check_order_reference(text, order_id)
        if warning is not None:
            warnings.append(warning)
    return warnings


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# --- links ---------------------------------------------------------------------------

# Top-level domains worth flagging when written without http:// or www. A closed
# list keeps "invoice.pdf", "e.g." and "Mr.Smith" from looking like websites.
_TLD_LINES = (
    "com net org info biz pro name shop store online site website web app dev io ly gl gg",
    "link xyz club top vip live life world page blog news email tech cloud digital",
    "eu uk de fr es it nl be lu at ch se no dk fi is ie pt pl cz sk hu ro bg gr ru ua",
    "tr cn hk tw jp kr sg my in au nz ca us mx br ar cl co za ae sa eg ma tv me to cc ws fm la",
)
_TLDS = frozenset(tld for line in _TLD_LINES for tld in line.split())
# TLDs that are also everyday words ("the product.It works", "z.B. de"): only a
# domain when written in lower case, as addresses are.
_WORDLIKE_TLDS = frozenset(
    {"it", "in", "me", "us", "be", "no", "to", "co", "de", "es", "se", "at", "is", "la", "my"}
)

_URL_RE = re.compile(
    r"(?P<scheme>(?:https?|ftp)://[^\s<>\"']+)"
    r"|(?P<www>(?<![\w.@/-])www\.[^\s<>\"']+)"
    # A bare domain such as shop.example.com/returns, not inside an e-mail address.
    r"|(?P<bare>(?<![\w.@/-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?P<tld>[a-z]{2,24})(?![\w@-]|\.[a-z0-9])(?:/[^\s<>\"']*)?)",
    re.IGNORECASE,
)
# amazon.com, amazon.de, amazon.co.uk, amazon.co.jp, amazon.com.au and their subdomains.
_AMAZON_HOST_RE = re.compile(r"(?:^|\.)amazon\.(?:[a-z]{2,3}|com?\.[a-z]{2})$")
_TRAILING_PUNCTUATION = ".,;:!?)]}'\"»›>"


def _find_links(text: str) -> Iterator[tuple[str, tuple[int, int], bool]]:
    """(url, span, is_amazon) for each web address in `text`."""
    for match in _URL_RE.finditer(text):
        url = match.group(0).rstrip(_TRAILING_PUNCTUATION)
        if not url:
            continue
        if match.group("bare"):
            tld = match.group("tld")
            if tld.lower() not in _TLDS or (tld.lower() in _WORDLIKE_TLDS and tld != tld.lower()):
                continue
        span = (match.start(), match.start() + len(url))
        yield url, span, _is_amazon_url(url)


def _is_amazon_url(url: str) -> bool:
    candidate = url if "://" in url else f"http://{url}"
    try:
        # hostname, not the text before the first "/": https://amazon.de@evil.example
        # goes to evil.example.
        host = urlsplit(candidate).hostname or ""
    except ValueError:
        return False
    return bool(_AMAZON_HOST_RE.search(host.rstrip(".").lower()))


def _link_warning(url: str) -> ComplianceWarning:
    return ComplianceWarning(
        "outside_link",
        "Amazon does not allow links to websites outside Amazon in messages to buyers. "
        "Remove the link; if the buyer needs more information, write it in the message "
        "or link to the page on Amazon instead.",
        url,
    )


# --- e-mail addresses ------------------------------------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[\w.%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}(?![\w-])"
    # Spelt out to dodge filters: "name (at) shop (dot) com", "name [at] shop.com".
    r"|(?<![\w.+-])[\w.%+-]+\s*[\[(]\s*at\s*[\])]\s*[a-z0-9-]+"
    r"(?:\s*(?:\.|[\[(]\s*dot\s*[\])])\s*[a-z0-9-]+)+",
    re.IGNORECASE,
)


def _find_emails(text: str) -> Iterator[tuple[str, tuple[int, int]]]:
    for match in _EMAIL_RE.finditer(text):
        yield match.group(0), match.span()


def _email_warning(address: str) -> ComplianceWarning:
    return ComplianceWarning(
        "email_address",
        "Amazon does not allow e-mail addresses in messages to buyers. Remove it: "
        "the buyer answers through Amazon's messages, which reach you here.",
        address,
    )


# --- phone numbers -----------------------------------------------------------------------

# Numbers that are not phone numbers, blanked out before looking for phone numbers:
# order IDs (also digital ones, D01-…), dates, prices, and product, tracking and
# invoice numbers after their label. The first pattern is looser than ORDER_ID_RE
# (a lower-case letter, two digits first): masking a little more than order IDs only
# keeps such numbers from being taken for phone numbers.
_NOT_PHONE_RES = (
    re.compile(r"(?<![\w-])[A-Z]?\d{2,3}-\d{7}-\d{7}(?![\w-])", re.IGNORECASE),
    # Dates, but not 01.23.45.67.89 (a French phone number).
    re.compile(r"(?<![\d./-])\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})(?![./-]?\d)"),
    re.compile(r"(?<![\d./-])\d{4}[./-]\d{1,2}[./-]\d{1,2}(?![./-]?\d)"),
    re.compile(
        r"[£$€¥₹]\s?\d[\d.,]*|(?<![\d.,])\d[\d.,]*\s?(?:€|£|\$|¥|円|EUR|GBP|USD|JPY|CAD|AUD)(?![a-z])"
    ),
    re.compile(
        r"\b(?:ASIN|ISBN(?:-1[03])?|EAN|UPC|GTIN|SKU|FNSKU|tracking|sendungs(?:nummer|nr)"
        r"|tracking-?nummer|num[ée]ro\s+de\s+suivi|n[úu]mero\s+de\s+seguimiento"
        r"|numero\s+di\s+tracciamento|invoice|rechnung(?:snummer|snr)?|facture|factura|fattura"
        r"|ref(?:erence)?)(?![a-z])"
        # "tracking number is 0034…", "Rechnungsnr.: 2024-0815"
        r"[\s:#.]*(?:(?:number|nummer|no|nr|id|code|is|ist|est|es|è|lautet)(?![a-z])[\s:#.]*){0,2}"
        r"(?=[\w-]*\d)[\w-]+",
        re.IGNORECASE,
    ),
)
_PHONE_CANDIDATE_RE = re.compile(r"(?<![\w+])\+?\(?\d+\)?(?:[ .\-/]?\(?\d+\)?)*")
# 555-123-4567, (555) 123-4567, 1-800-555-0199: North American numbers.
_NANP_RE = re.compile(r"(?:1[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}")
# 612 345 678, 912 34 56 78: Spanish numbers have no trunk 0.
_SPANISH_RE = re.compile(r"[6-9]\d{2}(?: \d{3} \d{3}| \d{2} \d{2} \d{2}|\.\d{3}\.\d{3})")
_DECIMAL_RE = re.compile(r"\d+[.,]\d+")
_ZIP4_RE = re.compile(r"\d{5}-\d{4}")
_PHONE_WORD_RE = re.compile(
    r"(?:\b(?:tel|tél|phone|telephone|call|ring|mobile|cell|whatsapp|fax|hotline|telefon\w*"
    r"|rufnummer|handy|anrufen|t[ée]l[ée]phone|portable|appel\w*|tel[ée]fono|m[óo]vil|llam\w*"
    r"|cellulare|chiam\w*)\b|電話|携帯|TEL)[^\n\d]{0,20}$",
    re.IGNORECASE,
)


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    # "#" is neither a digit, a letter nor a separator, so masked text splits candidates.
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "#" * (end - start)
    masked = "".join(chars)
    for pattern in _NOT_PHONE_RES:
        masked = pattern.sub(lambda m: "#" * len(m.group(0)), masked)
    return masked


def _find_phone_numbers(text: str) -> Iterator[str]:
    seen: set[str] = set()
    for match in _PHONE_CANDIDATE_RE.finditer(text):
        candidate = match.group(0)
        digits = re.sub(r"\D", "", candidate)
        if digits in seen:
            continue
        after_phone_word = bool(
            _PHONE_WORD_RE.search(text[max(0, match.start() - 40) : match.start()])
        )
        if _looks_like_phone(candidate, digits, after_phone_word=after_phone_word):
            seen.add(digits)
            yield candidate


def _looks_like_phone(candidate: str, digits: str, *, after_phone_word: bool) -> bool:
    n = len(digits)
    if candidate.startswith("+"):
        return 8 <= n <= 15 and digits[0] != "0"
    if _DECIMAL_RE.fullmatch(candidate) or _ZIP4_RE.fullmatch(candidate):
        return False
    if digits.startswith("00"):  # international prefix in most of Europe
        return 10 <= n <= 17 and digits[2] != "0"
    if digits.startswith("0"):  # national number with its trunk prefix: 020 7946 0958
        return 9 <= n <= 12
    if _NANP_RE.fullmatch(candidate) and digits[-10] in "23456789":
        return True
    if _SPANISH_RE.fullmatch(candidate):
        return True
    return after_phone_word and 6 <= n <= 15


def _phone_warning(number: str) -> ComplianceWarning:
    return ComplianceWarning(
        "phone_number",
        "Amazon does not allow phone numbers in messages to buyers, except those of a "
        "carrier, manufacturer or warranty service. Remove it and keep the conversation "
        "in Amazon's messages.",
        number,
    )


# --- marketing -------------------------------------------------------------------------------

# Whole words or phrases, case-insensitive. Deliberately no bare "offer" or "deal":
# "we can offer you a replacement" is good customer service, not marketing.
_PROMOTION_TERMS = (
    # English
    r"discounts?",
    r"discounted",
    r"coupons?",
    r"coupon codes?",
    r"promo(?:s| codes?)?",
    r"promotions?",
    r"promotional",
    r"vouchers?",
    r"voucher codes?",
    r"sale",
    r"on sale",
    r"\d{1,2}\s?% off",
    r"special (?:offers?|deals?)",
    r"exclusive (?:offers?|deals?)",
    r"limited[- ]time (?:offers?|deals?)",
    r"best deals?",
    r"deals? of the day",
    r"buy now",
    r"shop now",
    r"free gift",
    r"cash ?back",
    r"black friday",
    r"cyber monday",
    r"newsletters?",
    r"subscribe(?!\s*(?:&|and)\s*save)",  # Subscribe & Save is Amazon's own
    r"follow us",
    r"like us on",
    r"visit our (?:store|shop|website)",
    r"our other products",
    # German
    r"rabatt(?:e|code)?",
    r"gutschein(?:e|code)?",
    r"sonderangebot(?:e)?",
    r"angebot der woche",
    r"schnäppchen",
    r"jetzt kaufen",
    r"folgen sie uns",
    r"abonnieren",
    # French
    r"code promo",
    r"promotions?",
    r"soldes",
    r"bon de réduction",
    r"offres? spéciales?",
    r"achetez maintenant",
    r"abonnez-vous",
    r"suivez-nous",
    # Spanish
    r"descuentos?",
    r"cupón",
    r"cupones",
    r"ofertas? especial(?:es)?",
    r"rebajas",
    r"promoción",
    r"código promocional",
    r"compra ahora",
    r"suscríbete",
    r"síguenos",
    # Italian
    r"sconto",
    r"sconti",
    r"offerta speciale",
    r"offerte speciali",
    r"saldi",
    r"promozione",
    r"codice promozionale",
    r"acquista ora",
    r"iscriviti",
    r"seguici",
)
# Japanese has no spaces between words: matched as substrings.
_PROMOTION_TERMS_JA = (
    "割引",
    "値引き",
    "クーポン",
    "セール(?!ス)",
    "キャンペーン",
    "特価",
    "今すぐ購入",
    "メルマガ",
    "フォローして",
)
# Amazon forbids asking for positive reviews or feedback (a neutral request is allowed).
_REVIEW_TERMS = (
    r"positive (?:reviews?|feedback|ratings?)",
    r"(?:5|five)[- ]star (?:reviews?|feedback|ratings?)",
    r"in exchange for (?:a|your) review",
    r"positive (?:bewertung|rezension)(?:en)?",
    r"5[- ]sterne[- ]?bewertung(?:en)?",
    r"avis positifs?",
    r"(?:reseña|valoración|opinión) positiva",
    r"recensione positiva",
    "高評価",
)


def _term_pattern(terms: Sequence[str], *, whole_words: bool) -> re.Pattern[str]:
    alternatives = "|".join(sorted(set(terms), key=len, reverse=True))
    if whole_words:
        # Not after "-" so "after-sale service" stays clean.
        return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)
    return re.compile(f"(?:{alternatives})")


_PROMOTION_RE = _term_pattern(_PROMOTION_TERMS, whole_words=True)
_PROMOTION_JA_RE = _term_pattern(_PROMOTION_TERMS_JA, whole_words=False)
_REVIEW_RE = _term_pattern(_REVIEW_TERMS, whole_words=True)


def _find_marketing(text: str) -> Iterator[tuple[str, str]]:
    """(term as written, "promotion" or "review") once per distinct term."""
    seen: set[str] = set()
    found = [(m.start(), m.group(0), "promotion") for m in _PROMOTION_RE.finditer(text)]
    found += [(m.start(), m.group(0), "promotion") for m in _PROMOTION_JA_RE.finditer(text)]
    found += [(m.start(), m.group(0), "review") for m in _REVIEW_RE.finditer(text)]
    for _, term, kind in sorted(found):
        key = term.lower()
        if key not in seen:
            seen.add(key)
            yield term, kind


def _marketing_warning(term: str, kind: str) -> ComplianceWarning:
    if kind == "review":
        message = (
            f'Amazon does not allow asking buyers for positive reviews or feedback ("{term}"). '
            "You may ask for a review neutrally, or leave it to Amazon's own request."
        )
    else:
        message = (
            f'Amazon does not allow marketing or promotions in messages to buyers ("{term}"): '
            "no discounts, coupons, sales, newsletters or invitations to buy more. "
            "Remove it and keep to this order."
        )
    return ComplianceWarning("marketing", message, term)


# --- attachments ------------------------------------------------------------------------------


def _check_attachments(attachments: Sequence[tuple[str, str, int]]) -> list[ComplianceWarning]:
    warnings = []
    total = 0
    for filename, content_type, size in attachments:
        total += max(size or 0, 0)
        name = (filename or "").strip() or "an unnamed attachment"
        _, dot, extension = name.rpartition(".")
        extension = f".{extension.lower()}" if dot else ""
        mime = (content_type or "").split(";", 1)[0].strip().lower()
        if extension not in ACCEPTED_ATTACHMENT_TYPES:
            reason = "has no file type" if not extension else f"is a {extension} file"
        elif mime not in _UNSPECIFIC_CONTENT_TYPES and mime not in _ACCEPTED_CONTENT_TYPES:
            reason = f"is marked as {mime}"
        else:
            continue
        warnings.append(
            ComplianceWarning(
                "attachment_type",
                f'Amazon does not accept "{name}" as an attachment: it {reason}. Amazon '
                f"accepts only {_ACCEPTED_NAMES}. Save it in one of those formats or remove it.",
                name,
            )
        )
    if total > MAX_ATTACHMENTS_BYTES:
        warnings.insert(
            0,
            ComplianceWarning(
                "attachment_size",
                f"Amazon accepts at most 10 MB of attachments per message; these add up to "
                f"{total / (1024 * 1024):.1f} MB. Remove some files or make them smaller.",
            ),
        )
    return warnings


# --- order reference -----------------------------------------------------------------------------


def _check_order_reference(text: str, order_id: str | None) -> ComplianceWarning | None:
    order_id = (order_id or "").strip()
    if order_id:
        if order_id.lower() in text.lower():
            return None
        message = (
            f"This reply is about order {order_id}, but the text does not mention it. "
            "Add the order number so the buyer and Amazon can tell which order you mean."
        )
    else:
        if ORDER_ID_RE.search(text):
            return None
        message = (
            "This reply is about an order, but the text mentions no order number. "
            "Add it so the buyer and Amazon can tell which order you mean."
        )
    return ComplianceWarning("missing_order_reference", message)
