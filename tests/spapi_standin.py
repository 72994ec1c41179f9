"""A local stand-in for Amazon's SP-API consent page and the Login-with-Amazon token endpoint.

A real HTTP server on a free loopback port (stdlib `http.server` in a thread), so the
portal's redirect, callback and code exchange run over real HTTP, in tests and in a
real browser:

- ``GET /apps/authorize/consent?application_id=…&state=…&redirect_uri=…`` shows a
  consent page with "Authorise" and "Deny" buttons (plain HTML, no scripts);
- ``POST /apps/authorize/confirm`` redirects to the redirect URI with ``state``,
  ``selling_partner_id`` and a fresh ``spapi_oauth_code`` (valid CODE_TTL, once), or
  with ``error=access_denied`` when denied;
- ``POST /auth/o2/token`` takes ``grant_type=authorization_code`` with ``code``,
  ``client_id`` and ``client_secret`` (and the ``redirect_uri`` of the consent, when
  given) and answers JSON ``{access_token, refresh_token, token_type, expires_in}``,
  or Amazon's OAuth errors: ``invalid_grant`` (unknown, used or expired code),
  ``invalid_client`` (wrong client), ``unsupported_grant_type``; a test may ask for a
  5xx answer or a slow one; with ``grant_type=refresh_token`` and a refresh token it
  handed out (and not revoked since) it answers ``{access_token, token_type,
  expires_in}``, else ``invalid_grant``;
- ``GET /orders/2026-01-01/orders/{orderId}?includedData=…`` (Orders API v2026-01-01
  getOrder) answers the order from Amazon's published examples
  (tests/data/spapi/getOrder_2026-01-01.json) with only the data sets asked for, when
  ``x-amz-access-token`` is an access token it issued and still valid (else 403, as
  Amazon does), with ``x-amzn-RateLimit-Limit``; 404 for an order it does not know. A
  test queues faults (`faults`, for any SP-API call): 429 (with rate headers), 403, a 5xx,
  a timeout, malformed JSON. Every call is counted per operation (`calls`);
- ``GET /solicitations/v1/orders/{orderId}?marketplaceIds=…`` lists the review request
  among the actions while the order is in `review_window` and not yet `reviewed`, and
  ``POST …/solicitations/productReviewAndSellerFeedback`` sends it once (201), else 400.

Loaded as a pytest plugin from tests/conftest.py: `spapi_standin` (session) is the
running server, `spapi` (per test) resets it and points the app's settings at it.
"""

from __future__ import annotations

import copy
import html
import json
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit
from urllib.request import HTTPHandler, OpenerDirector, Request

import pytest

from tests.helpers import DATA

HOST = "127.0.0.1"
APPLICATION_ID = "amzn1.sp.solution.4ea38b7b-0000-4bae-87ae-standin00001"
CLIENT_ID = "amzn1.application-oa2-client.standin0000000000000000000001"
CLIENT_SECRET = "amzn1.oa2-cs.v1.standin-secret-0123456789abcdef"
SELLING_PARTNER_ID = "A3STANDINSELLER"
#: Amazon: "The spapi_oauth_code expires after five minutes."
CODE_TTL = 300.0
ORDERS_PATH = "/orders/2026-01-01/orders/"
SOLICITATIONS_PATH = "/solicitations/v1/orders/"
REVIEW_ACTION = "productReviewAndSellerFeedback"
#: Amazon's answers to getOrder, from its model (see tests/data/spapi/README.md).
EXAMPLE_ORDERS: dict[str, dict[str, Any]] = {
    answer["order"]["orderId"]: answer
    for answer in json.loads((DATA / "spapi" / "getOrder_2026-01-01.json").read_text("utf-8"))
}
#: includedData value -> the order's field it adds (items are always included).
INCLUDED_DATA = {
    "BUYER": "buyer",
    "RECIPIENT": "recipient",
    "PROCEEDS": "proceeds",
    "FULFILLMENT": "fulfillment",
    "PACKAGES": "packages",
    "TAX": "tax",
    "PAYMENT": "payment",
    "FULFILLMENT_ORDERS": "fulfillmentOrders",
}
API_FAULTS = ("429", "403", "500", "503", "timeout", "malformed", "not_an_order")


@dataclass
class _Code:
    issued_at: float
    redirect_uri: str
    used: bool = False


@dataclass
class SpapiStandIn:
    """The stand-in server and what it has seen; a test changes its behaviour through it."""

    application_id: str = APPLICATION_ID
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    selling_partner_id: str = SELLING_PARTNER_ID
    port: int = 0
    #: Refresh tokens handed out, newest last (for "never stored in plaintext" checks).
    issued_refresh_tokens: list[str] = field(default_factory=list)
    #: Form fields of every token request, as received.
    token_requests: list[dict[str, str]] = field(default_factory=list)
    #: Query of every consent page request.
    consent_requests: list[dict[str, str]] = field(default_factory=list)
    #: HTTP status of the next token answers (e.g. [500]), consumed one per request.
    fail_token_with: list[int] = field(default_factory=list)
    #: Seconds the token endpoint waits before answering.
    token_delay: float = 0.0
    #: Exceptions raised while serving a request (the `spapi` fixture fails on any).
    errors: list[BaseException] = field(default_factory=list)
    #: Calls per operation ("lwa_refresh", "getOrder"), refused ones included.
    calls: Counter[str] = field(default_factory=Counter)
    #: Every SP-API call: its operation, whether its token was good, what it asked for.
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: Faults of the next SP-API answers (API_FAULTS), consumed one per request.
    faults: list[str] = field(default_factory=list)
    #: Orders whose review-request window is open, and those already asked for one.
    review_window: set[str] = field(default_factory=set)
    reviewed: set[str] = field(default_factory=set)
    #: The orders it knows, by order ID (Amazon's examples unless a test changes them).
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: `x-amzn-RateLimit-Limit` sent with getOrder's answers.
    rate_limit: str = "0.5"
    #: expires_in of the access tokens it hands out, and how long a "timeout" waits.
    access_token_ttl: int = 3600
    slow_seconds: float = 3.0
    #: Refresh tokens valid for grant_type=refresh_token (issued ones join; revoke removes).
    refresh_tokens: set[str] = field(default_factory=set)
    #: Access tokens handed out -> when they expire (time.monotonic()).
    access_tokens: dict[str, float] = field(default_factory=dict)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set by reset(): a delayed answer from the previous test stops waiting.
    _wake: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        standin = self

        class Handler(_Handler):
            pass

        Handler.standin = standin
        self._server = _Server((HOST, 0), Handler)
        self._server.standin = standin
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def reset(self) -> None:
        self._wake.set()
        self._wake = threading.Event()
        with self._lock:
            self.selling_partner_id = SELLING_PARTNER_ID
            self.client_secret = CLIENT_SECRET
            self.issued_refresh_tokens.clear()
            self.token_requests.clear()
            self.consent_requests.clear()
            self.fail_token_with.clear()
            self.token_delay = 0.0
            self.errors.clear()
            self._codes.clear()
            self.calls.clear()
            self.requests.clear()
            self.faults.clear()
            self.review_window = set(EXAMPLE_ORDERS)
            self.reviewed.clear()
            self.orders = copy.deepcopy(EXAMPLE_ORDERS)
            self.rate_limit = "0.5"
            self.access_token_ttl = 3600
            self.slow_seconds = 3.0
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def consent_url(self) -> str:
        return f"{self.base_url}/apps/authorize/consent"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/o2/token"

    def config(self) -> dict[str, Any]:
        """The portal settings that point at this stand-in, for every region."""
        return {
            "SPAPI_ENDPOINT_NA": self.base_url,
            "SPAPI_ENDPOINT_EU": self.base_url,
            "SPAPI_ENDPOINT_FE": self.base_url,
            "SPAPI_INCLUDE_PII": False,
            "SPAPI_APPLICATION_ID": self.application_id,
            "LWA_CLIENT_ID": self.client_id,
            "LWA_CLIENT_SECRET": CLIENT_SECRET,
            "SPAPI_CONSENT_URL_NA": self.consent_url,
            "SPAPI_CONSENT_URL_EU": self.consent_url,
            "SPAPI_CONSENT_URL_FE": self.consent_url,
            "LWA_TOKEN_URL": self.token_url,
            "SPAPI_REDIRECT_URI": "",
            "LWA_TIMEOUT": 5,
        }

    # --- refresh and access tokens ---------------------------------------------------

    def accept_refresh_token(self, refresh_token: str) -> str:
        """Take `refresh_token` as one it issued (a channel's stored authorisation)."""
        with self._lock:
            self.refresh_tokens.add(refresh_token)
        return refresh_token

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """The seller withdrew the authorisation: LWA refuses it, its access tokens die."""
        with self._lock:
            self.refresh_tokens.discard(refresh_token)
            self.access_tokens.clear()

    def expire_access_tokens(self) -> None:
        """Every access token handed out so far stops working (as after an hour)."""
        with self._lock:
            self.access_tokens.clear()

    # --- codes --------------------------------------------------------------------

    def issue_code(self, redirect_uri: str = "") -> str:
        code = "ANDstandin" + secrets.token_urlsafe(18)
        with self._lock:
            self._codes[code] = _Code(time.monotonic(), redirect_uri)
        return code

    def expire_codes(self) -> None:
        """Age every code issued so far past Amazon's five minutes."""
        with self._lock:
            for code in self._codes.values():
                code.issued_at -= CODE_TTL + 1

    # --- driving the consent page without a browser ---------------------------------

    def consent(self, consent_url: str, *, decision: str = "authorise") -> str:
        """Open `consent_url` and press a button over real HTTP; the redirect target URL."""
        opener = _no_redirects()
        with opener.open(consent_url, timeout=5) as page:
            assert page.status == 200, page.status
            body = page.read().decode()
        assert 'name="decision"' in body
        query = {k: v[0] for k, v in parse_qs(urlsplit(consent_url).query).items()}
        form = urlencode(
            {
                "state": query.get("state", ""),
                "redirect_uri": query.get("redirect_uri", ""),
                "decision": decision,
            }
        ).encode()
        request = Request(  # noqa: S310 (our own http URL)
            f"{self.base_url}/apps/authorize/confirm", data=form, method="POST"
        )
        with opener.open(request, timeout=5) as answer:
            assert answer.status == 302, answer.status
            return answer.headers["Location"]


def _no_redirects() -> OpenerDirector:
    opener = OpenerDirector()
    opener.add_handler(HTTPHandler())  # and nothing else: every answer comes back as it is
    return opener


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: SpapiStandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Keep it instead of printing it: socketserver prints a traceback from this
        # thread, and on Python 3.11 formatting one runs ast.parse, which can break a
        # main thread parsing at the same moment (seen as "AST constructor recursion
        # depth mismatch" in Werkzeug's route compiler).
        self.standin.errors.append(sys.exc_info()[1] or RuntimeError("unknown error"))


class _Handler(BaseHTTPRequestHandler):
    standin: SpapiStandIn
    server_version = "SpapiStandIn/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest output stays readable

    # --- plumbing ---------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the timeout tests): nobody to answer

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json;charset=UTF-8")

    def _html(self, status: int, title: str, body: str) -> None:
        page = (
            f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
            f"</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
        )
        self._send(status, page.encode(), "text/html;charset=utf-8")

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    # --- routes -----------------------------------------------------------------------

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith(ORDERS_PATH):
            self._get_order(unquote(parts.path[len(ORDERS_PATH) :]), parts.query)
            return
        if parts.path.startswith(SOLICITATIONS_PATH):
            self._solicitations("GET", parts.path, parts.query)
            return
        if parts.path != "/apps/authorize/consent":
            self._html(404, "Not found", "")
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.standin.consent_requests.append(query)
        if query.get("application_id") != self.standin.application_id:
            self._html(400, "Unknown application", "<p>This application ID is not registered.</p>")
            return
        if not query.get("state") or not query.get("redirect_uri"):
            self._html(400, "Bad request", "<p>state and redirect_uri are required.</p>")
            return
        fields = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(query[name])}">'
            for name in ("state", "redirect_uri")
        )
        self._html(
            200,
            "Amazon Seller Central (stand-in)",
            "<p>Sellerdesk asks for access to your selling account "
            f"<code>{html.escape(self.standin.selling_partner_id)}</code>.</p>"
            f'<form method="post" action="/apps/authorize/confirm">{fields}'
            '<button type="submit" name="decision" value="authorise">Authorise</button> '
            '<button type="submit" name="decision" value="deny">Deny</button></form>',
        )

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith(SOLICITATIONS_PATH):
            self._form()  # the body is empty; read whatever came
            self._solicitations("POST", path, parts.query)
        elif path == "/apps/authorize/confirm":
            self._confirm(self._form())
        elif path == "/auth/o2/token":
            self._token(self._form())
        elif path == "/moved/auth/o2/token":
            # To check that the portal never follows a redirect with its client secret.
            self._form()
            self._send(307, b"", "text/plain", Location=f"{self.standin.base_url}/auth/o2/token")
        else:
            self._html(404, "Not found", "")

    def _confirm(self, form: dict[str, str]) -> None:
        redirect_uri = form.get("redirect_uri", "")
        if form.get("decision") == "authorise":
            params = {
                "state": form.get("state", ""),
                "selling_partner_id": self.standin.selling_partner_id,
                "spapi_oauth_code": self.standin.issue_code(redirect_uri),
            }
        else:
            params = {
                "state": form.get("state", ""),
                "error": "access_denied",
                "error_description": "The seller denied the authorisation",
            }
        target = urlsplit(redirect_uri)
        query = "&".join(q for q in (target.query, urlencode(params)) if q)
        self._send(302, b"", "text/plain", Location=urlunsplit(target._replace(query=query)))

    def _token(self, form: dict[str, str]) -> None:
        standin = self.standin
        standin.token_requests.append(form)
        if form.get("grant_type") == "refresh_token":
            standin.calls["lwa_refresh"] += 1  # faulted answers count too
        if standin.token_delay:
            standin._wake.wait(standin.token_delay)
        with standin._lock:
            failure = standin.fail_token_with.pop(0) if standin.fail_token_with else None
        if failure is not None:
            self._json(failure, {"error": "server_error", "error_description": "Stand-in fault"})
            return
        if form.get("grant_type") == "refresh_token":
            self._refresh(form)
            return
        if form.get("grant_type") != "authorization_code":
            self._json(400, {"error": "unsupported_grant_type", "error_description": "Bad grant"})
            return
        if not self._client_ok(form):
            return
        with standin._lock:
            code = standin._codes.get(form.get("code", ""))
            valid = (
                code is not None
                and not code.used
                and time.monotonic() - code.issued_at <= CODE_TTL
                and (not code.redirect_uri or form.get("redirect_uri") == code.redirect_uri)
            )
            if code is not None:
                code.used = True  # a code is spent by its first use, good or bad
            refresh_token = "Atzr|IwEBI" + secrets.token_urlsafe(96)
            if valid:
                standin.issued_refresh_tokens.append(refresh_token)
                standin.refresh_tokens.add(refresh_token)
        if not valid:
            self._json(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "The request has an invalid grant parameter : code",
                },
            )
            return
        self._json(
            200,
            {
                "access_token": "Atza|IwEBI" + secrets.token_urlsafe(64),
                "refresh_token": refresh_token,
                "token_type": "bearer",
                "expires_in": 3600,
            },
        )

    def _client_ok(self, form: dict[str, str]) -> bool:
        """Whether the app's client ID and secret are right; answers invalid_client if not."""
        standin = self.standin
        if form.get("client_id") == standin.client_id and secrets.compare_digest(
            form.get("client_secret", ""), standin.client_secret
        ):
            return True
        self._json(
            401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        )
        return False

    def _refresh(self, form: dict[str, str]) -> None:
        standin = self.standin
        if not self._client_ok(form):
            return
        with standin._lock:
            known = form.get("refresh_token", "") in standin.refresh_tokens
            access_token = "Atza|IwEBI" + secrets.token_urlsafe(64)
            if known:
                expires = time.monotonic() + standin.access_token_ttl
                standin.access_tokens[access_token] = expires
        if not known:
            self._json(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "The request has an invalid grant parameter : "
                    "refresh_token",
                },
            )
            return
        self._json(
            200,
            {
                "access_token": access_token,
                "token_type": "bearer",
                "expires_in": standin.access_token_ttl,
            },
        )

    def _api_call(self, operation: str, **request: Any) -> bool:
        """Count the call, check its access token and play a queued fault; False when that
        answered already (a refusal or a fault), True when the route answers itself."""
        standin = self.standin
        token = self.headers.get("x-amz-access-token") or ""
        with standin._lock:
            standin.calls[operation] += 1
            expires = standin.access_tokens.get(token)
            token_ok = expires is not None and expires > time.monotonic()
            standin.requests.append({"operation": operation, "token_ok": token_ok, **request})
            fault = standin.faults.pop(0) if standin.faults else None
        if fault == "timeout":
            standin._wake.wait(standin.slow_seconds)
        if not token_ok or fault == "403":
            self._errors(403, "Unauthorized", "Access to requested resource is denied.")
        elif fault == "429":
            self._errors(
                429,
                "QuotaExceeded",
                "You exceeded your quota for the requested resource.",
                **self._rate(),
            )
        elif fault in ("500", "503"):
            self._errors(int(fault), "InternalFailure", "We encountered an internal error.")
        elif fault == "malformed":
            self._send(200, b'{"order": {"orderId": "', "application/json", **self._rate())
        elif fault == "not_an_order":
            self._send(200, b'{"orders": []}', "application/json", **self._rate())
        else:
            return True
        return False

    def _rate(self) -> dict[str, str]:
        return {"x-amzn-RateLimit-Limit": self.standin.rate_limit, "x-amzn-RequestId": "standin"}

    def _get_order(self, order_id: str, query: str) -> None:
        included = {v for v in ",".join(parse_qs(query).get("includedData", [])).split(",") if v}
        if not self._api_call("getOrder", order_id=order_id, included=included):
            return
        with self.standin._lock:
            answer = copy.deepcopy(self.standin.orders.get(order_id))
        if answer is None:
            self._errors(404, "NotFound", "The requested order was not found.", **self._rate())
            return
        order = answer["order"]
        for name, key in INCLUDED_DATA.items():
            if name not in included:
                order.pop(key, None)
        self._send(200, json.dumps(answer).encode(), "application/json", **self._rate())

    def _solicitations(self, method: str, path: str, query: str) -> None:
        """getSolicitationActionsForOrder (GET) and createProductReviewAndSellerFeedback-
        Solicitation (POST), in the shapes of Amazon's model and its examples."""
        standin = self.standin
        order_id, _, rest = path[len(SOLICITATIONS_PATH) :].partition("/")
        order_id = unquote(order_id)
        marketplace = ",".join(parse_qs(query).get("marketplaceIds", []))
        creating = method == "POST" and rest == "solicitations/productReviewAndSellerFeedback"
        if not (method == "GET" and not rest) and not creating:
            self._errors(404, "NotFound", "No such resource.")
            return
        operation = (
            "createProductReviewAndSellerFeedbackSolicitation"
            if creating
            else "getSolicitationActionsForOrder"
        )
        if not self._api_call(operation, order_id=order_id, marketplace=marketplace):
            return
        if not marketplace:
            self._errors(400, "InvalidInput", "marketplaceIds is required.", **self._rate())
            return
        with standin._lock:
            known = order_id in standin.orders
            offered = order_id in standin.review_window and order_id not in standin.reviewed
            if creating and offered:
                standin.reviewed.add(order_id)
        if not known:
            self._errors(404, "NotFound", "The requested order was not found.", **self._rate())
        elif creating and not offered:
            self._errors(
                400,
                "InvalidInput",
                "A solicitation for this order is not available.",
                **self._rate(),
            )
        elif creating:
            self._send(201, b"{}", "application/json", **self._rate())
        else:
            base = f"{SOLICITATIONS_PATH}{order_id}"
            action = f"{base}/solicitations/productReviewAndSellerFeedback"
            links: dict[str, Any] = {
                "actions": (
                    [{"href": f"{action}?marketplaceIds={marketplace}", "name": REVIEW_ACTION}]
                    if offered
                    else []
                ),
                "self": {"href": f"{base}?marketplaceIds={marketplace}"},
            }
            body = {"_links": links}
            if offered:
                body["_embedded"] = {
                    "actions": [
                        {"_links": {"schema": {"href": f"{action}/schema", "name": REVIEW_ACTION}}}
                    ]
                }
            self._send(200, json.dumps(body).encode(), "application/hal+json", **self._rate())

    def _errors(self, status: int, code: str, message: str, **headers: str) -> None:
        """SP-API's error answer (the model's ErrorList)."""
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._send(status, body, "application/json", **headers)


# --- pytest plugin ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def spapi_standin() -> Iterator[SpapiStandIn]:
    """The stand-in, running for the whole session on a free loopback port."""
    standin = SpapiStandIn()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def spapi(app, spapi_standin: SpapiStandIn) -> Iterator[SpapiStandIn]:
    """The stand-in, reset, with the app's SP-API settings pointing at it."""
    spapi_standin.reset()
    app.config.update(spapi_standin.config())
    yield spapi_standin
    assert spapi_standin.errors == [], "the SP-API stand-in failed while serving"
