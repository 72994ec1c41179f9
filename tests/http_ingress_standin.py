"""Local stand-ins for the providers that post mail over HTTP: Mailgun, SNS (with SES), S3.

- `mailgun_post` posts a route's raw-MIME form (`body-mime`, `timestamp`, `token`,
  `signature` = hex HMAC-SHA256(signing key, timestamp + token)) as Mailgun documents.
- `SnsStandin` is an HTTPS server on localhost (tests/certs.py's CA and "good"
  certificate) that serves its signing certificate (an RSA key and a self-signed
  certificate, as SNS's SigningCertURL points to), answers the SubscribeURL it puts
  in a SubscriptionConfirmation (and counts the visits), and serves S3 objects
  (`GET /BUCKET/KEY`) that a test puts there, publicly or, once `s3_credentials` is
  set, only to GETs signed with AWS Signature Version 4 (checked by `s3_signature_error`,
  written here from AWS's documented algorithm, apart from the portal's signer); it
  signs SNS messages with
  SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA) over Amazon's string to sign.
- `generic_post` posts the portal's own form (X-Sellerdesk-Timestamp/-Signature).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SIGNED_FIELDS = {
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
TOPIC = "arn:aws:sns:eu-west-1:123456789012:sellerdesk-inbound"


def post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """POST over real HTTP; (status, JSON answer)."""
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (a test URL)
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"{}")
        except ValueError:
            return exc.code, {"raw": body.decode("latin-1")[:200]}


def generic_headers(key: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(key.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "message/rfc822",
        "X-Sellerdesk-Timestamp": stamp,
        "X-Sellerdesk-Signature": f"sha256={digest}",
    }


def generic_post(url: str, key: str, raw: bytes, **kwargs: int) -> tuple[int, dict]:
    return post(url, raw, generic_headers(key, raw, **kwargs))


def mailgun_fields(key: str, raw: bytes, *, timestamp: int | None = None, token: str = "") -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)  # "a randomly generated string with a length of 50"
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "timestamp": stamp,
        "token": token,
        "signature": signature,
        "recipient": "uk-chan01@helpdesk.test",
        "body-mime": raw.decode("utf-8", "surrogateescape"),
    }


def mailgun_post(url: str, fields: dict, *, multipart: bool = False) -> tuple[int, dict]:
    """Mailgun's post: urlencoded, or multipart/form-data (what it sends for mail with
    attachments)."""
    if not multipart:
        data = urlencode(fields).encode()
        return post(url, data, {"Content-Type": "application/x-www-form-urlencoded"})
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode("utf-8", "surrogateescape")
        + b"\r\n"
        for name, value in fields.items()
    ]
    data = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return post(url, data, {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def s3_signature_error(
    method: str, target: str, headers: dict[str, str], credentials: tuple[str, str]
) -> str | None:
    """None if the request carries a valid SigV4 Authorization for `credentials`
    (access key id, secret), else the S3 error code it would get.

    AWS's steps: a canonical request (method, URI, sorted query, the signed headers
    lowercased and trimmed, their names, the payload hash), a string to sign
    (algorithm, time, scope, the canonical request's SHA-256) and a signing key derived
    from the secret by HMAC-SHA256 over date, region, service and "aws4_request"."""
    lowered = {name.lower(): value for name, value in headers.items()}
    authorization = lowered.get("authorization", "")
    algorithm, _, rest = authorization.partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        return "AccessDenied"
    fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    key_id, date, region, service, terminal = (fields.get("Credential", "") + "////").split("/")[:5]
    if key_id != credentials[0]:
        return "InvalidAccessKeyId"
    signed_names = fields.get("SignedHeaders", "").split(";")
    if "host" not in signed_names or any(name not in lowered for name in signed_names):
        return "AccessDenied"
    path, _, query = target.partition("?")
    canonical_query = "&".join(sorted(query.split("&"))) if query else ""
    canonical_headers = "".join(
        name + ":" + " ".join(lowered[name].strip().split()) + "\n" for name in signed_names
    )
    canonical_request = (
        f"{method}\n{path}\n{canonical_query}\n{canonical_headers}\n"
        f"{';'.join(signed_names)}\n{lowered.get('x-amz-content-sha256', '')}"
    )
    amz_date = lowered.get("x-amz-date", "")
    scope = f"{date}/{region}/{service}/{terminal}"
    string_to_sign = (
        "AWS4-HMAC-SHA256\n"
        + amz_date
        + "\n"
        + scope
        + "\n"
        + hashlib.sha256(canonical_request.encode()).hexdigest()
    )

    def hmac_sha256(key: bytes, data: str) -> bytes:
        return hmac.new(key, data.encode(), hashlib.sha256).digest()

    date_key = hmac_sha256(("AWS4" + credentials[1]).encode(), date)
    date_region_key = hmac_sha256(date_key, region)
    date_region_service_key = hmac_sha256(date_region_key, service)
    signing_key = hmac_sha256(date_region_service_key, "aws4_request")
    expected = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not amz_date.startswith(date) or not hmac.compare_digest(
        expected, fields.get("Signature", "")
    ):
        return "SignatureDoesNotMatch"
    return None


def _signing_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


class SnsStandin:
    """SNS (signing certificate, SubscribeURL) and S3 objects, over HTTPS on localhost."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.key, self.cert_pem = _signing_cert()
        self.objects: dict[str, bytes] = {}
        #: (access key id, secret): S3 objects only to GETs signed with them (SigV4).
        self.s3_credentials: tuple[str, str] | None = None
        #: The region and session token a signed GET must name, checked with the key.
        self.s3_region = "eu-west-1"
        self.s3_session_token = ""
        self.s3_refusals: Counter[str] = Counter()
        self.visits: Counter[str] = Counter()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                # S3 keys arrive URI-encoded (a space as %20); objects are kept by name.
                path = unquote(urlsplit(self.path).path)
                standin.visits[path] += 1
                if path == "/SimpleNotificationService-standin.pem":
                    body = standin.cert_pem
                elif path == "/confirm":
                    body = b"<ConfirmSubscriptionResponse/>"
                elif path in standin.objects:
                    refusal = standin.s3_refusal(self.command, self.path, dict(self.headers))
                    if refusal:
                        standin.s3_refusals[refusal] += 1
                        self.send_response(403)
                        body = f"<Error><Code>{refusal}</Code></Error>".encode()
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    body = standin.objects[path]
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.base = f"https://localhost:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def s3_refusal(self, method: str, target: str, headers: dict[str, str]) -> str | None:
        if self.s3_credentials is None:
            return None  # a public bucket
        error = s3_signature_error(method, target, headers, self.s3_credentials)
        if error:
            return error
        lowered = {name.lower(): value for name, value in headers.items()}
        if f"/{self.s3_region}/s3/" not in lowered["authorization"]:
            return "AuthorizationHeaderMalformed"
        if lowered.get("x-amz-security-token", "") != self.s3_session_token:
            return "InvalidToken"
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def cert_url(self) -> str:
        return f"{self.base}/SimpleNotificationService-standin.pem"

    def sign(self, message: dict, *, version: str = "1") -> dict:
        message = {**message, "SignatureVersion": version}
        message.setdefault("SigningCertURL", self.cert_url)
        to_sign = "".join(
            f"{name}\n{message[name]}\n"
            for name in SIGNED_FIELDS[message["Type"]]
            if name in message
        ).encode()
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 (SNS v1)
        signature = self.key.sign(to_sign, padding.PKCS1v15(), algorithm)
        message["Signature"] = base64.b64encode(signature).decode()
        return message

    def notification(
        self,
        raw: bytes | None,
        *,
        s3_key: str | None = None,
        version: str = "1",
        timestamp: dt.datetime | None = None,
        message_id: str | None = None,
        topic: str = TOPIC,
    ) -> dict:
        """An SES 'Received' notification as SNS posts it: the mail inline (SNS action,
        UTF-8) or in S3 (S3 action, the object put here first)."""
        if s3_key is not None:
            self.objects[f"/inbound-mail/{s3_key}"] = raw or b""
            action = {
                "type": "S3",
                "topicArn": TOPIC,
                "bucketName": "inbound-mail",
                "objectKey": s3_key,
            }
            notice = {
                "notificationType": "Received",
                "receipt": {"action": action},
                "mail": {"messageId": "ses-1"},
            }
        else:
            action = {"type": "SNS", "topicArn": TOPIC, "encoding": "BASE64"}
            notice = {
                "notificationType": "Received",
                "receipt": {"action": action},
                "mail": {"messageId": "ses-1"},
                "content": base64.b64encode(raw or b"").decode(),
            }
        stamp = (timestamp or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return self.sign(
            {
                "Type": "Notification",
                "MessageId": message_id or f"sns-{secrets.token_hex(8)}",
                "TopicArn": topic,
                "Subject": "Amazon SES Email Receipt Notification",
                "Message": json.dumps(notice),
                "Timestamp": stamp,
            },
            version=version,
        )

    def subscription(self, *, topic: str = TOPIC) -> dict:
        return self.sign(
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": f"sns-{secrets.token_hex(8)}",
                "Token": secrets.token_hex(16),
                "TopicArn": topic,
                "Message": "You have chosen to subscribe to the topic.",
                "SubscribeURL": f"{self.base}/confirm?Token=abc",
                "Timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            }
        )


def sns_post(url: str, message: dict) -> tuple[int, dict]:
    return post(
        url,
        json.dumps(message).encode(),
        {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": message["Type"]},
    )
