"""HTTP ingress: mail that providers post to `/inbound/<token>`, checked and stored.

A mailbox of kind "http" (`http-ingress://?provider=…`) has a random path token,
shown once and kept as its SHA-256, and a signing key kept encrypted with TOKEN_KEY.
Each delivery is authenticated as its provider signs it:

- **generic** (any MTA, `curl`): the body is the message (`message/rfc822`);
  `X-Sellerdesk-Timestamp` is Unix seconds and `X-Sellerdesk-Signature` is
  `sha256=` + hex HMAC-SHA256(key, timestamp + "." + body);
- **mailgun**: a route's `forward()` to a URL ending in `mime` posts the form fields
  `body-mime`, `timestamp`, `token` and `signature` = hex HMAC-SHA256(Mailgun's
  webhook signing key, timestamp + token);
- **ses**: Amazon SES publishes to SNS, which posts JSON signed with a certificate
  (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) fetched only over HTTPS from
  a host ending in SNS_CERT_HOST_SUFFIX; a SubscriptionConfirmation is confirmed by
  visiting its SubscribeURL (same rule); a Notification carries the mail in
  `content`, or names the S3 object the receipt rule wrote it to (SES_S3_ENDPOINT),
  fetched with a GET signed with AWS Signature Version 4 when SES_S3_ACCESS_KEY_ID is
  set (unsigned otherwise, for a bucket that lets the portal in by policy). SNS's
  signature proves only that SNS sent a message, not which topic is the seller's: a
  mailbox is pinned to the TopicArn of the first verified message (its subscription's
  confirmation) and refuses every other topic, confirming nothing for it.

A request older or newer than INBOUND_MAX_AGE_SECONDS is stale; a signature (Mailgun
token, SNS MessageId) taken within that window is a replay. Both are refused before
anything is stored. The replay memory is a table written in the very transaction
that stores the mail (`deliver` commits: this module's name says so), so a request
that dies before its commit can be retried as it was, and every web worker sees
what another took. Retries that the provider signs afresh are found by the
pipeline's content de-duplication, as for IMAP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.parser import BytesParser
from email.policy import compat32
from urllib.parse import parse_qsl, quote, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ingest.mail.parse_result import parse_inbound
from portal.crypto import decrypt_secret, encrypt_secret
from portal.extensions import db
from portal.models import InboundReplay, Mailbox, User
from portal.services.audit import record_event
from portal.services.inbound import InboundMail, Outcome, store_inbound
from portal.services.mailbox_config import MailboxConfigError, create_mailbox
from portal.services.mailboxes import HTTP_PROVIDERS, is_http_ingress, parse_source_url
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Sellerdesk-Timestamp"
SIGNATURE_HEADER = "X-Sellerdesk-Signature"
#: SNS message fields signed, in order, by message type (Amazon's "Verifying the
#: signatures of Amazon SNS messages"); Subject only when present.
SNS_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SNS_SIGNED_FIELDS["UnsubscribeConfirmation"] = SNS_SIGNED_FIELDS["SubscriptionConfirmation"]
SNS_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
FETCH_TIMEOUT = 10.0


class Refused(Exception):
    """A delivery refused before anything was stored; `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class IngressSettings:
    """The settings deliveries are checked against (from the app's config)."""

    max_age: timedelta
    sns_cert_host_suffix: str
    sns_ca_file: str | None
    s3_endpoint: str
    inbound_domain: str
    max_attachment_bytes: int
    parse_seconds: float | None
    #: AWS credentials S3 GETs are signed with (Signature Version 4); no key id: unsigned,
    #: for a bucket whose policy lets the portal read without credentials.
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = field(default="", repr=False)
    s3_session_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Delivery:
    """What a checked request hands over: the mail (None: nothing to store, such as a
    confirmed SNS subscription) and the key that marks this request as taken."""

    raw: bytes | None
    replay_key: str
    note: str = ""


@dataclass(frozen=True)
class NewHttpMailbox:
    mailbox: Mailbox
    #: Shown once: the path secret, and the generic form's signing key (None when the
    #: provider gave the key, or SES, which signs with certificates).
    token: str
    signing_key: str | None


# --- mailboxes -----------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_http_mailbox(
    *, actor: User | None, name: str, provider: str, signing_key: str | None = None
) -> NewHttpMailbox:
    """Add an HTTP ingress mailbox (audited, no commit) with a new random path token;
    the generic form gets a new signing key unless one is given, Mailgun needs its own."""
    provider = (provider or "generic").strip().lower()
    if provider not in HTTP_PROVIDERS:
        raise MailboxConfigError(f"Unknown provider {provider!r}: use {', '.join(HTTP_PROVIDERS)}.")
    signing_key = (signing_key or "").strip() or None
    if provider == "mailgun" and not signing_key:
        raise MailboxConfigError("A Mailgun mailbox needs Mailgun's HTTP webhook signing key.")
    generated = None
    if provider == "generic" and not signing_key:
        generated = signing_key = secrets.token_urlsafe(32)
    settings = parse_source_url(f"http-ingress://?provider={provider}")
    mailbox = create_mailbox(actor=actor, name=name, settings=settings)
    token = secrets.token_urlsafe(32)
    mailbox.ingress_token_hash = token_hash(token)
    mailbox.signing_key_encrypted = encrypt_secret(signing_key) if signing_key else None
    db.session.flush()
    return NewHttpMailbox(mailbox, token, generated)


def mailbox_for_token(token: str) -> Mailbox | None:
    """The enabled HTTP mailbox whose path token this is, else None."""
    if not token or len(token) > 200:
        return None
    mailbox = db.session.scalar(
        select(Mailbox).where(Mailbox.ingress_token_hash == token_hash(token))
    )
    if mailbox is None or not mailbox.is_enabled or not is_http_ingress(mailbox.source_url):
        return None
    return mailbox


def provider_of(mailbox: Mailbox) -> str:
    return parse_source_url(mailbox.source_url).provider


# --- checking requests ---------------------------------------------------------------


def _fresh(timestamp: float, settings: IngressSettings, now: float) -> None:
    if abs(now - timestamp) > settings.max_age.total_seconds():
        raise Refused(400, "stale request: its timestamp is outside the accepted window")


def _key_of(mailbox: Mailbox) -> bytes:
    if mailbox.signing_key_encrypted is None:
        raise Refused(403, "this mailbox has no signing key")
    return decrypt_secret(mailbox.signing_key_encrypted).encode()


def check_generic(
    mailbox: Mailbox, body: bytes, headers: dict[str, str], settings: IngressSettings, now: float
) -> Delivery:
    """The generic form: HMAC-SHA256(key, timestamp + "." + body) in sha256=HEX."""
    stamp = (headers.get(TIMESTAMP_HEADER) or "").strip()
    signature = (headers.get(SIGNATURE_HEADER) or "").strip()
    if not stamp or not signature:
        raise Refused(401, f"unsigned request: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} needed")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise Refused(400, f"{TIMESTAMP_HEADER} must be Unix seconds")
    scheme, _, given = signature.partition("=")
    expected = hmac.new(_key_of(mailbox), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if scheme.strip().lower() != "sha256" or not hmac.compare_digest(
        given.strip().lower().encode(), expected.encode()
    ):
        raise Refused(403, "wrong signature")
    _fresh(int(stamp), settings, now)
    if not body.strip():
        raise Refused(400, "empty message")
    return Delivery(body, f"sig:{expected}")


def mailgun_form(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of Mailgun's post as bytes, urlencoded or multipart/form-data.

    Not through werkzeug's form: it decodes fields as UTF-8 and replaces what is not,
    which would change 8-bit mail in other charsets before it is stored."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        # Latin-1 maps each byte to one character and back: the fields' bytes unchanged.
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
        return {name: value.encode("latin-1") for name, value in pairs}
    if kind != "multipart/form-data":
        raise Refused(415, "Mailgun posts a form (urlencoded or multipart/form-data)")
    envelope = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    form = BytesParser(policy=compat32).parsebytes(envelope + body)
    if not form.is_multipart():
        raise Refused(400, "malformed multipart/form-data")
    fields: dict[str, bytes] = {}
    for part in form.get_payload():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and name not in fields:
            fields[name] = part.get_payload(decode=True) or b""
    return fields


def check_mailgun(
    mailbox: Mailbox, form: dict[str, str], raw: bytes | None, settings: IngressSettings, now: float
) -> Delivery:
    """Mailgun's route post: signature = HMAC-SHA256(signing key, timestamp + token)."""
    stamp, token, signature = (form.get(k, "").strip() for k in ("timestamp", "token", "signature"))
    if not stamp or not token or not signature:
        raise Refused(401, "unsigned request: timestamp, token and signature needed")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12 or len(token) > 120:
        raise Refused(400, "malformed timestamp or token")
    expected = hmac.new(_key_of(mailbox), (stamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
        raise Refused(403, "wrong signature")
    _fresh(int(stamp), settings, now)
    if not raw or not raw.strip():
        raise Refused(400, "no body-mime: the route's URL must end in 'mime' (raw MIME)")
    return Delivery(raw, f"mg:{token}")


def _sns_string_to_sign(message: dict) -> bytes:
    fields = SNS_SIGNED_FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise Refused(400, f"unknown SNS message type {str(message.get('Type'))[:40]!r}")
    parts = []
    for name in fields:
        if name not in message:
            if name == "Subject":
                continue
            raise Refused(400, f"SNS message without {name}")
        parts.append(f"{name}\n{message[name]}\n")
    return "".join(parts).encode()


def _https_url_on_suffix(url: str, suffix: str, what: str) -> str:
    """`url` if it is https on a host ending in `suffix`, else Refused (nothing fetched)."""
    parts = urlsplit(str(url))
    host = (parts.hostname or "").lower()
    suffix = suffix.lower()
    if parts.scheme != "https" or not host or not suffix or not host.endswith(suffix):
        raise Refused(403, f"{what} is not on an https host ending in {suffix!r}")
    return str(url)


def _ssl_context(settings: IngressSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.sns_ca_file or None)


def _open(
    url: str,
    settings: IngressSettings,
    *,
    secure: bool = True,
    headers: dict[str, str] | None = None,
) -> bytes:
    context = _ssl_context(settings) if secure else None
    # Redirects could leave the checked host: not followed.
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (checked URLs)
    with opener.open(request, timeout=FETCH_TIMEOUT) as response:
        return response.read(10 * 1024 * 1024 + 1)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


_cert_cache: dict[str, x509.Certificate] = {}
_cert_lock = threading.Lock()


def _signing_certificate(url: str, settings: IngressSettings) -> x509.Certificate:
    url = _https_url_on_suffix(url, settings.sns_cert_host_suffix, "SigningCertURL")
    with _cert_lock:
        cached = _cert_cache.get(url)
    if cached is not None and cached.not_valid_after_utc > utcnow():
        return cached
    try:
        cert = x509.load_pem_x509_certificate(_open(url, settings))
    except Exception as exc:
        log.warning("SNS signing certificate %s unusable: %s", url, exc)
        raise Refused(403, "the SNS signing certificate cannot be fetched or read") from None
    with _cert_lock:
        _cert_cache[url] = cert
    return cert


def verify_sns(message: dict, settings: IngressSettings) -> None:
    """Check an SNS message's signature against its signing certificate, or Refused."""
    version = str(message.get("SignatureVersion", ""))
    if version not in SNS_HASHES:
        raise Refused(400, "SignatureVersion must be 1 or 2")
    if not message.get("Signature") or not message.get("SigningCertURL"):
        raise Refused(401, "unsigned SNS message")
    to_sign = _sns_string_to_sign(message)
    cert = _signing_certificate(message["SigningCertURL"], settings)
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused(403, "the SNS signing certificate has no RSA key")
    try:
        signature = base64.b64decode(str(message["Signature"]), validate=True)
        key.verify(signature, to_sign, padding.PKCS1v15(), SNS_HASHES[version]())
    except (InvalidSignature, ValueError):
        raise Refused(403, "wrong signature") from None


def _sns_time(value: object) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise Refused(400, "SNS Timestamp is not a time") from None


def check_ses(mailbox: Mailbox, body: bytes, settings: IngressSettings, now: float) -> Delivery:
    """An SNS post: verified, fresh, from the mailbox's pinned topic; a subscription is
    confirmed, a notification's mail taken from its content or fetched from S3."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "not an SNS message (JSON expected)") from None
    if not isinstance(message, dict):
        raise Refused(400, "not an SNS message (JSON object expected)")
    verify_sns(message, settings)
    _fresh(_sns_time(message.get("Timestamp")), settings, now)
    key = f"sns:{str(message.get('MessageId', ''))[:120]}"
    kind = message["Type"]
    # Before anything is confirmed or fetched: a foreign topic gets nothing from us.
    pin_sns_topic(mailbox, str(message["TopicArn"]))
    if kind == "SubscriptionConfirmation":
        url = _https_url_on_suffix(
            message.get("SubscribeURL", ""), settings.sns_cert_host_suffix, "SubscribeURL"
        )
        try:
            _open(url, settings)
        except Exception as exc:
            log.warning("Confirming the SNS subscription at %s failed: %s", url, exc)
            raise Refused(502, "the SNS subscription could not be confirmed") from None
        log.info("Confirmed the SNS subscription to %s", message.get("TopicArn"))
        return Delivery(None, key, "subscription confirmed")
    if kind == "UnsubscribeConfirmation":
        return Delivery(None, key, "unsubscribed")
    return Delivery(_ses_mail(message, settings), key)


def pin_sns_topic(mailbox: Mailbox, topic: str) -> None:
    """Refused(403) unless `topic` is the mailbox's pinned SNS topic; an unpinned
    mailbox is pinned to it and COMMITTED at once.

    SNS's signature proves only that SNS sent the message: anyone who learns the path
    token can subscribe a topic of their own. The first verified message pins the topic,
    normally the seller's subscription confirmation (or, for a mailbox subscribed before
    pins existed, its first notification). The pin is claimed by a conditional UPDATE
    and committed before the SubscribeURL is visited, so of two topics racing for a new
    mailbox only one is ever confirmed."""
    if mailbox.sns_topic_arn is None:
        claimed = db.session.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox.id, Mailbox.sns_topic_arn.is_(None))
            .values(sns_topic_arn=topic)
        ).rowcount
        if claimed:
            record_event(
                "mailbox.sns_topic_pinned", actor=None, target=mailbox, details={"topic": topic}
            )
            log.info("Mailbox %s: pinned to the SNS topic %s", mailbox.name, topic)
        db.session.commit()
        db.session.refresh(mailbox)
    if mailbox.sns_topic_arn != topic:
        log.warning(
            "Mailbox %s: refused a message from the SNS topic %s (pinned to %s)",
            mailbox.name,
            topic[:200],
            mailbox.sns_topic_arn,
        )
        raise Refused(403, "this SNS topic is not the one this mailbox takes mail from")


def unpin_sns_topic(*, actor: User | None, mailbox: Mailbox) -> str | None:
    """Forget an SES mailbox's pinned SNS topic (audited, no commit), so that the next
    confirmed subscription pins its own; returns the topic that was pinned."""
    if not is_http_ingress(mailbox.source_url) or provider_of(mailbox) != "ses":
        raise MailboxConfigError(f"{mailbox.name} is not an Amazon SES mailbox.")
    previous = mailbox.sns_topic_arn
    mailbox.sns_topic_arn = None
    db.session.flush()
    record_event(
        "mailbox.sns_topic_unpinned", actor=actor, target=mailbox, details={"topic": previous}
    )
    log.info("Mailbox %s: SNS topic pin %s cleared", mailbox.name, previous)
    return previous


def _ses_mail(message: dict, settings: IngressSettings) -> bytes:
    try:
        notice = json.loads(message["Message"])
    except (ValueError, TypeError):
        raise Refused(400, "the SNS Message is not an SES notification") from None
    if not isinstance(notice, dict) or notice.get("notificationType") != "Received":
        raise Refused(400, "not an SES 'Received' notification")
    action = (notice.get("receipt") or {}).get("action") or {}
    if "content" in notice:
        content = str(notice["content"])
        if str(action.get("encoding", "")).upper() == "BASE64":
            try:
                return base64.b64decode(content, validate=True)
            except ValueError:
                raise Refused(400, "the SES content is not Base64") from None
        return content.encode("utf-8", "surrogateescape")
    if action.get("type") == "S3" and action.get("bucketName") and action.get("objectKey"):
        return _s3_object(str(action["bucketName"]), str(action["objectKey"]), settings)
    raise Refused(400, "the SES notification holds no content and names no S3 object")


#: The SHA-256 of an empty body: a GET's payload hash, signed like any other header.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def sigv4_headers(
    method: str,
    url: str,
    *,
    region: str,
    access_key_id: str,
    secret_access_key: str,
    when: datetime,
    service: str = "s3",
    session_token: str = "",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers that sign a body-less request with AWS Signature Version 4 (pure).

    `url`'s path must already be URI-encoded as S3 wants it (each segment once, `/`
    kept); `headers` are extra headers to send and sign. Returns them all, with
    Host, x-amz-date, x-amz-content-sha256 (the empty body's hash), the session token
    when given, and Authorization."""
    parts = urlsplit(url)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    signed = {
        **{name.lower(): " ".join(value.split()) for name, value in (headers or {}).items()},
        "host": parts.netloc,
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": stamp,
    }
    if session_token:
        signed["x-amz-security-token"] = session_token
    names = sorted(signed)
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True))
    )
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            EMPTY_SHA256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret_access_key}".encode()
    for step in (day, region, service, "aws4_request"):
        key = hmac.new(key, step.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        **{name: value for name, value in signed.items() if name != "host"},
        "Host": parts.netloc,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        ),
    }


def _s3_object(bucket: str, key: str, settings: IngressSettings) -> bytes:
    if not settings.s3_endpoint:
        raise Refused(400, "the mail is in S3 but SES_S3_ENDPOINT is not set")
    url = f"{settings.s3_endpoint.rstrip('/')}/{quote(bucket, safe='')}/{quote(key, safe='/')}"
    headers = None
    if settings.s3_access_key_id:
        headers = sigv4_headers(
            "GET",
            url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            session_token=settings.s3_session_token,
            when=utcnow(),
        )
    try:
        return _open(url, settings, secure=url.startswith("https:"), headers=headers)
    except Exception as exc:
        # Not the sender's fault: a 5xx, so that SNS tries again.
        log.warning("Fetching %s from S3 failed: %s", url, exc)
        raise Refused(502, "the mail could not be fetched from S3") from None


# --- storing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    outcome: Outcome | None
    note: str = ""


def deliver(mailbox: Mailbox, delivery: Delivery, settings: IngressSettings) -> Stored:
    """Store a checked delivery through the one inbound pipeline and COMMIT, together
    with its replay key; Refused(409) for a request taken before."""
    for attempt in (1, 2):
        try:
            return _deliver_once(mailbox, delivery, settings)
        except IntegrityError:
            # Another worker stored the same request, or the same mail, at the same
            # moment: the second attempt sees it (a replay, or a duplicate).
            db.session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _deliver_once(mailbox: Mailbox, delivery: Delivery, settings: IngressSettings) -> Stored:
    now = utcnow()
    # Forget what is older than twice the window: a replay that old is stale anyway.
    db.session.execute(
        delete(InboundReplay).where(InboundReplay.seen_at < now - 2 * settings.max_age)
    )
    taken = db.session.scalar(
        select(InboundReplay.id).where(
            InboundReplay.mailbox_id == mailbox.id, InboundReplay.key == delivery.replay_key
        )
    )
    if taken is not None:
        db.session.rollback()
        raise Refused(409, "replayed request: this signature was taken already")
    db.session.add(InboundReplay(mailbox_id=mailbox.id, key=delivery.replay_key, seen_at=now))
    outcome = None
    if delivery.raw is not None:
        parsed = parse_inbound(
            delivery.raw,
            max_attachment_bytes=settings.max_attachment_bytes,
            time_limit=settings.parse_seconds,
        )
        (result,) = store_inbound(
            [InboundMail(delivery.raw, parsed)],
            mailbox=mailbox,
            uidvalidity=None,
            inbound_domain=settings.inbound_domain,
            now=now,
        )
        outcome = result.outcome
        mailbox.last_delivery_at = now
    db.session.commit()
    log.info("Mailbox %s: HTTP delivery %s", mailbox.name, outcome or delivery.note)
    return Stored(outcome, delivery.note)


def now_seconds() -> float:
    return time.time()
