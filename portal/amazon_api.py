"""Calling the Selling Partner API: access tokens, rate limits, getOrder, the review
request (Solicitations API), typed failures.

No database and no Flask: the caller hands in the seller's region, Seller ID and
decrypted refresh token (portal/services/orders.py does, for a channel). One AmazonApi
lives per process (the worker's); it keeps

- **access tokens** from Login with Amazon (`grant_type=refresh_token` with the app's
  client ID and secret), in memory only, keyed by a digest of the refresh token, until
  shortly before `expires_in` ends. Neither token is ever logged, raised or returned;
- **a token bucket per seller, region and operation**, with Amazon's published usage
  plan (getOrder: 0.5 requests/s, burst 30) until an answer's `x-amzn-RateLimit-Limit`
  tells the rate applied. An empty bucket makes no call and answers "retry later".

Every outcome but an order is an ApiFailure: a kind the caller acts on, a sentence fit
for a page, and how long to wait before trying again (None: trying again will not help).
429 answers "retry later" with a backoff that grows while Amazon keeps refusing, never
a retry in a loop; 5xx answers and timeouts are retried a few times with a growing pause,
then answered "retry later"; 403 is the seller's authorisation withdrawn (after one retry
with a fresh access token, in case only the cached one was refused).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import (
    HTTPDefaultErrorHandler,
    HTTPErrorProcessor,
    HTTPHandler,
    HTTPSHandler,
    OpenerDirector,
    Request,
)

from portal.amazon_orders import AmazonOrder, MalformedOrder, read_order

log = logging.getLogger(__name__)

REGIONS = ("NA", "EU", "FE")
#: The one solicitation Amazon offers (Solicitations API v1).
REVIEW_ACTION = "productReviewAndSellerFeedback"
#: Upper bound of what we read from any answer (an order with many items is well below).
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
#: An access token is renewed this long before Amazon says it expires.
TOKEN_MARGIN = 120.0
#: Amazon's published usage plans (requests per second, burst), per operation.
USAGE_PLANS: dict[str, tuple[float, int]] = {
    "getOrder": (0.5, 30),
    "getSolicitationActionsForOrder": (1.0, 5),
    "createProductReviewAndSellerFeedbackSolicitation": (1.0, 5),
}
#: 5xx answers and timeouts: tries per call, and the first pause (doubled each time).
ATTEMPTS = 3
BACKOFF = 1.0
#: How long to wait after a call that failed on Amazon's side, and the longest backoff.
UNAVAILABLE_RETRY = 60.0
MAX_RETRY = 15 * 60.0
#: Data sets always asked for with an order; BUYER and RECIPIENT only with PII allowed.
ORDER_DATA = ("FULFILLMENT", "PACKAGES", "PROCEEDS")
PII_DATA = ("BUYER", "RECIPIENT")


class FailureKind(StrEnum):
    NOT_AUTHORISED = "not_authorised"  # the channel holds no SP-API authorisation
    NOT_CONFIGURED = "not_configured"  # no endpoint or LWA client for this region
    AUTHORISATION_REVOKED = "authorisation_revoked"  # 403, or LWA's invalid_grant
    RATE_LIMITED = "rate_limited"  # 429, or our own bucket is empty
    UNAVAILABLE = "unavailable"  # 5xx or no answer in time, after retries
    NOT_FOUND = "not_found"  # 404: no such order for this seller
    REJECTED = "rejected"  # another 4xx: the request or our credentials
    MALFORMED = "malformed"  # an answer we cannot read


@dataclass(frozen=True)
class ApiFailure:
    kind: FailureKind
    #: A sentence for the page that shows the (older) data beside it.
    message: str
    #: Seconds to wait before asking again; None when asking again will not help.
    retry_after: float | None = None
    #: Amazon's HTTP status, when it answered.
    status: int | None = None


@dataclass(frozen=True)
class ApiSettings:
    #: Region (NA, EU, FE) -> the SP-API endpoint; empty: no calls for that region.
    endpoints: Mapping[str, str]
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    timeout: float
    include_pii: bool


@dataclass(frozen=True)
class Seller:
    """Whom a call is for: the seller's region, Seller ID and (decrypted) refresh token."""

    region: str
    seller_id: str
    refresh_token: str = field(repr=False)


def api_settings(config: Mapping[str, Any]) -> ApiSettings | None:
    """The settings for SP-API calls, or None when the LWA client is not configured."""
    client_id = (config.get("LWA_CLIENT_ID") or "").strip()
    client_secret = (config.get("LWA_CLIENT_SECRET") or "").strip()
    token_url = (config.get("LWA_TOKEN_URL") or "").strip()
    if not (client_id and client_secret and token_url):
        return None
    return ApiSettings(
        endpoints={r: (config.get(f"SPAPI_ENDPOINT_{r}") or "").strip() for r in REGIONS},
        token_url=token_url,
        client_id=client_id,
        client_secret=client_secret,
        timeout=float(config.get("LWA_TIMEOUT") or 10),
        include_pii=bool(config.get("SPAPI_INCLUDE_PII")),
    )


def opener_without_redirects() -> OpenerDirector:
    """http(s) only, and no redirects: a secret goes to the configured URL or nowhere."""
    opener = OpenerDirector()
    for handler in (HTTPHandler(), HTTPSHandler(), HTTPDefaultErrorHandler(), HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def lwa_token_request(token_url: str, form: Mapping[str, str]) -> Request:
    """A POST of `form` to Login with Amazon's token endpoint (its scheme checked by the caller)."""
    return Request(  # noqa: S310 (http(s) only: every caller checks the scheme first)
        token_url,
        data=urlencode(form).encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
            "Accept": "application/json",
            "User-Agent": "Sellerdesk",
        },
    )


# --- rate limits ------------------------------------------------------------------------


@dataclass
class TokenBucket:
    """`rate` requests per second, up to `burst` at once."""

    rate: float
    burst: float
    tokens: float
    updated: float
    #: 429 answers in a row: each doubles the next wait.
    refusals: int = 0

    def take(self, now: float) -> float:
        """Take one request: 0.0 when allowed, else the seconds until one is."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


# --- answers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _NoAnswer(Exception):
    def __init__(self, timed_out: bool) -> None:
        super().__init__("timed out" if timed_out else "unreachable")
        self.timed_out = timed_out


_UNAVAILABLE = "Amazon did not answer properly ({}); the order is fetched again later."
_REVOKED = (
    "Amazon no longer accepts this channel's authorisation (it was withdrawn in Seller "
    'Central, or it expired): the seller needs to click "Authorise with Amazon" again.'
)


class AmazonApi:
    """One process's SP-API client: its access tokens and rate-limit buckets."""

    def __init__(
        self,
        settings: ApiSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = BACKOFF,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._backoff = backoff
        self._lock = threading.Lock()
        self._access_tokens: dict[str, tuple[str, float]] = {}
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}

    # --- getOrder ------------------------------------------------------------------

    def get_order(self, seller: Seller, order_id: str) -> AmazonOrder | ApiFailure:
        """The order `order_id` of the seller, or an ApiFailure saying what to do."""
        data = ORDER_DATA + (PII_DATA if self.settings.include_pii else ())
        answer = self._expect(
            200,
            order_id,
            self._call(
                "getOrder",
                seller,
                f"/orders/2026-01-01/orders/{quote(order_id, safe='')}",
                {"includedData": ",".join(data)},
            ),
        )
        if isinstance(answer, ApiFailure):
            return answer
        try:
            return read_order(json.loads(answer.body.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as exc:  # MalformedOrder is a ValueError
            reason = str(exc) if isinstance(exc, MalformedOrder) else "not JSON"
            log.warning("SP-API getOrder answer unreadable for order %s: %s", order_id, reason)
            return ApiFailure(
                FailureKind.MALFORMED,
                f"Amazon's answer about order {order_id} could not be read ({reason}).",
                status=answer.status,
            )

    # --- Solicitations API v1: the review request ------------------------------------

    def review_request_offered(
        self, seller: Seller, order_id: str, *, marketplace_id: str
    ) -> bool | ApiFailure:
        """Whether Amazon offers the review request for the order now
        (getSolicitationActionsForOrder: 5 to 30 days after delivery, once per order)."""
        answer = self._expect(
            200,
            order_id,
            self._call(
                "getSolicitationActionsForOrder",
                seller,
                f"/solicitations/v1/orders/{quote(order_id, safe='')}",
                {"marketplaceIds": marketplace_id},
            ),
        )
        if isinstance(answer, ApiFailure):
            return answer
        links = _json_object(answer.body).get("_links")
        actions = links.get("actions") if isinstance(links, dict) else None
        if not isinstance(actions, list):
            log.warning("SP-API solicitation actions unreadable for order %s", order_id)
            return ApiFailure(
                FailureKind.MALFORMED,
                f"Amazon's answer about review requests for order {order_id} could not be read.",
                status=answer.status,
            )
        return any(isinstance(a, dict) and a.get("name") == REVIEW_ACTION for a in actions)

    def request_review(
        self, seller: Seller, order_id: str, *, marketplace_id: str
    ) -> ApiFailure | None:
        """Ask Amazon to send the buyer its review and feedback request; None when it did.

        Never retried by itself (a request that timed out may have been sent): Amazon
        sends it once per order, and a second try is answered as not offered.
        """
        answer = self._call(
            "createProductReviewAndSellerFeedbackSolicitation",
            seller,
            f"/solicitations/v1/orders/{quote(order_id, safe='')}/solicitations/{REVIEW_ACTION}",
            {"marketplaceIds": marketplace_id},
            method="POST",
        )
        if not isinstance(answer, ApiFailure) and answer.status == 400:
            _, message = _first_error(answer.body)
            reason = message.rstrip(".") or "the order is not eligible"
            return ApiFailure(
                FailureKind.REJECTED,
                f"Amazon did not send the review request ({reason}).",
                status=400,
            )
        answer = self._expect(201, order_id, answer)
        return answer if isinstance(answer, ApiFailure) else None

    # --- one call: bucket, access token, retries -------------------------------------

    def _expect(
        self, status: int, order_id: str, answer: _Answer | ApiFailure
    ) -> _Answer | ApiFailure:
        """`answer` when it has the `status` of success, else the failure it means."""
        if isinstance(answer, ApiFailure) or answer.status == status:
            return answer
        if answer.status == 404:
            return _not_found(order_id)
        return self._refused(answer)

    def _call(
        self,
        operation: str,
        seller: Seller,
        path: str,
        query: Mapping[str, str],
        *,
        method: str = "GET",
    ) -> _Answer | ApiFailure:
        region, seller_id, refresh_token = seller.region, seller.seller_id, seller.refresh_token
        endpoint = self.settings.endpoints.get(region, "")
        if not endpoint.startswith(("https://", "http://")):
            return ApiFailure(
                FailureKind.NOT_CONFIGURED,
                f"Sellerdesk is not set up to call Amazon's API in the {region} region.",
            )
        url = f"{endpoint.rstrip('/')}{path}?{urlencode(query)}"
        bucket = self._bucket(operation, region, seller_id)
        for fresh_token in (False, True):
            # Every request Amazon sees counts, the retry with a fresh token too.
            with self._lock:
                wait = bucket.take(self._clock())
            if wait:
                return ApiFailure(
                    FailureKind.RATE_LIMITED,
                    "Sellerdesk is pacing its requests to Amazon for this seller; it asks "
                    "again in a moment.",
                    retry_after=wait,
                )
            token = self._access_token(refresh_token, fresh=fresh_token)
            if isinstance(token, ApiFailure):
                return token
            request = Request(  # noqa: S310 (the endpoint's scheme is checked above)
                url,
                method=method,
                data=b"" if method == "POST" else None,
                headers={
                    "x-amz-access-token": token,
                    "Accept": "application/json",
                    "User-Agent": "Sellerdesk (Language=Python)",
                },
            )
            answer = self._with_retries(request, attempts=ATTEMPTS if method == "GET" else 1)
            if isinstance(answer, ApiFailure):
                return answer
            self._note_rate(bucket, answer)
            if answer.status == 403 and not fresh_token:
                self._forget(refresh_token)  # perhaps only the cached access token was refused
                continue
            break
        if answer.status == 403:
            log.warning("SP-API %s refused with 403 for seller %s", operation, seller_id)
            return ApiFailure(FailureKind.AUTHORISATION_REVOKED, _REVOKED, status=403)
        if answer.status == 429:
            with self._lock:
                bucket.tokens = 0.0
                bucket.refusals += 1
                wait = min(MAX_RETRY, max(1 / bucket.rate, 2.0) * 2 ** (bucket.refusals - 1))
            log.info("SP-API %s: 429 for seller %s, retry in %.0fs", operation, seller_id, wait)
            return ApiFailure(
                FailureKind.RATE_LIMITED,
                "Amazon asked Sellerdesk to slow down; it asks again shortly.",
                retry_after=wait,
                status=429,
            )
        with self._lock:
            bucket.refusals = 0
        return answer

    def _bucket(self, operation: str, region: str, seller_id: str) -> TokenBucket:
        key = (seller_id, region, operation)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                rate, burst = USAGE_PLANS[operation]
                bucket = TokenBucket(rate, burst, float(burst), self._clock())
                self._buckets[key] = bucket
            return bucket

    def _note_rate(self, bucket: TokenBucket, answer: _Answer) -> None:
        """Take the rate Amazon says it applies (`x-amzn-RateLimit-Limit`), when it says."""
        raw = answer.headers.get("x-amzn-RateLimit-Limit") or ""
        try:
            rate = float(raw)
        except ValueError:
            return
        if 0 < rate <= 1000:
            with self._lock:
                bucket.rate = rate

    def _with_retries(self, request: Request, *, attempts: int = ATTEMPTS) -> _Answer | ApiFailure:
        """Send `request`, again after a growing pause while Amazon fails (5xx) or is silent."""
        for attempt in range(attempts):
            if attempt:
                self._sleep(self._backoff * 2 ** (attempt - 1))
            try:
                answer = self._send(request)
            except _NoAnswer as exc:
                reason = "no answer in time" if exc.timed_out else "could not reach it"
                continue
            if answer.status < 500:
                return answer
            reason = f"HTTP {answer.status}"
        log.warning("SP-API unavailable after %d attempts: %s", attempts, reason)
        return ApiFailure(
            FailureKind.UNAVAILABLE, _UNAVAILABLE.format(reason), retry_after=UNAVAILABLE_RETRY
        )

    def _send(self, request: Request) -> _Answer:
        try:
            with opener_without_redirects().open(request, timeout=self.settings.timeout) as r:
                return _Answer(r.status, dict(r.headers.items()), r.read(MAX_RESPONSE_BYTES))
        except HTTPError as exc:
            with exc:
                return _Answer(exc.code, dict(exc.headers.items()), exc.read(MAX_RESPONSE_BYTES))
        except (URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            timed_out = isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)
            raise _NoAnswer(timed_out) from None

    def _refused(self, answer: _Answer) -> ApiFailure:
        code, message = _first_error(answer.body)
        log.warning("SP-API refused: HTTP %s %s %s", answer.status, code, message)
        return ApiFailure(
            FailureKind.REJECTED,
            f"Amazon refused the request (HTTP {answer.status}"
            + (f", {code}" if code else "")
            + "); please contact support if it keeps happening.",
            status=answer.status,
        )

    # --- access tokens ----------------------------------------------------------------

    def _access_token(self, refresh_token: str, *, fresh: bool) -> str | ApiFailure:
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        with self._lock:
            cached = self._access_tokens.get(key)
        if cached is not None and not fresh and cached[1] > self._clock():
            return cached[0]
        if not self.settings.token_url.startswith(("https://", "http://")):
            return ApiFailure(FailureKind.NOT_CONFIGURED, "The LWA token URL is misconfigured.")
        request = lwa_token_request(
            self.settings.token_url,
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.settings.client_id,
                "client_secret": self.settings.client_secret,
            },
        )
        answer = self._with_retries(request)
        if isinstance(answer, ApiFailure):
            return answer
        fields = _json_object(answer.body)
        token, expires_in = fields.get("access_token"), fields.get("expires_in")
        if answer.status == 200 and isinstance(token, str) and token:
            lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
            # Renew shortly before the end; a token that lives less than twice the margin
            # is kept for half its life.
            keep = lifetime - TOKEN_MARGIN if lifetime > 2 * TOKEN_MARGIN else lifetime / 2
            with self._lock:
                self._access_tokens[key] = (token, self._clock() + keep)
            return token
        error = str(fields.get("error") or "")[:64]
        log.warning("LWA refused the refresh token: HTTP %s %s", answer.status, error)
        if error == "invalid_grant":
            return ApiFailure(FailureKind.AUTHORISATION_REVOKED, _REVOKED, status=answer.status)
        if answer.status == 200:
            return ApiFailure(
                FailureKind.MALFORMED,
                "Amazon's login service answered without an access token.",
                status=200,
            )
        return ApiFailure(
            FailureKind.REJECTED,
            f"Amazon's login service refused Sellerdesk ({error or f'HTTP {answer.status}'}); "
            "this needs fixing on our side, please contact support.",
            status=answer.status,
        )

    def _forget(self, refresh_token: str) -> None:
        with self._lock:
            self._access_tokens.pop(hashlib.sha256(refresh_token.encode()).hexdigest(), None)


def _not_found(order_id: str) -> ApiFailure:
    return ApiFailure(
        FailureKind.NOT_FOUND,
        f"Amazon has no order {order_id} for this seller (orders older than two years are "
        "not returned).",
        status=404,
    )


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _first_error(raw: bytes) -> tuple[str, str]:
    """Code and message of the first error in an SP-API error list (the model's ErrorList)."""
    errors = _json_object(raw).get("errors")
    first = errors[0] if isinstance(errors, list) and errors else {}
    if not isinstance(first, dict):
        return "", ""
    return str(first.get("code") or "")[:64], str(first.get("message") or "")[:200]
