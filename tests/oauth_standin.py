"""A local stand-in for an OAuth2 authorisation server (Microsoft's or Google's sign-in),
as Dovecot and the portal meet it: real HTTP on a free loopback port (stdlib `http.server`
in a thread), like tests/spapi_standin.py.

- ``GET /authorize?response_type=code&client_id=…&redirect_uri=…&scope=…&state=…
  &code_challenge=…&code_challenge_method=S256[&login_hint=…]`` consents at once as
  `consent_as` (else the login hint) and redirects to the redirect URI with ``code`` and
  ``state``; with `deny_next` set, with ``error=access_denied``. A missing or non-S256
  challenge, or an unknown client, gets ``error=invalid_request`` instead.
- ``POST /token``: ``grant_type=authorization_code`` with ``code``, ``redirect_uri``,
  ``code_verifier`` (its S256 must match the challenge), ``client_id`` and
  ``client_secret``; ``grant_type=refresh_token`` issues a NEW refresh token each time
  (rotation) and the old one stops working. Answers ``{access_token, refresh_token,
  token_type, expires_in, scope}``, or RFC 6749 errors: ``invalid_grant`` (unknown, used,
  revoked or expired), ``invalid_client`` (401, wrong secret). A test queues 5xx answers
  (`fail_token_with`) or a slow one (`token_delay`).
- ``POST /introspect`` (RFC 7662, Dovecot's `introspection_mode = post`): ``token=…`` →
  ``{"active": true, "username": USER, …}`` for a live access token, else
  ``{"active": false}``.
- `revoke(user)`: the user withdrew consent; every token of theirs dies.

Loaded as a pytest plugin from tests/conftest.py: `oauth_standin` (session) is the running
server, `oauth` (per test) resets it and points the app's OAUTH_* settings at it.
"""

from __future__ import annotations

import base64
import hashlib
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
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

HOST = "127.0.0.1"
CLIENT_ID = "standin-client-0001"
CLIENT_SECRET = "standin-secret-0123456789"
CODE_TTL = 600.0


@dataclass
class _Code:
    user: str
    redirect_uri: str
    challenge: str
    issued_at: float
    used: bool = False


@dataclass
class OAuthStandIn:
    """The stand-in server and what it has seen; a test changes its behaviour through it."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    port: int = 0
    #: Who consents on the authorize page (None: the login hint).
    consent_as: str | None = None
    #: The next authorize request is denied (error=access_denied).
    deny_next: bool = False
    access_token_ttl: int = 3600
    #: Answer token requests without a refresh token (consent without offline access).
    omit_refresh_token: bool = False
    #: HTTP status of the next token answers (e.g. [500]), consumed one per request.
    fail_token_with: list[int] = field(default_factory=list)
    #: Seconds the token endpoint waits before answering.
    token_delay: float = 0.0
    #: Requests per endpoint and grant ("authorize", "authorization_code", "refresh_token",
    #: "introspect"), refused ones included.
    calls: Counter[str] = field(default_factory=Counter)
    #: Query of every authorize request.
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    #: Every refresh token handed out, oldest first.
    issued_refresh_tokens: list[str] = field(default_factory=list)
    #: Refresh token -> user, while valid.
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    #: Access token -> (user, expiry on time.monotonic()).
    access_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        class Handler(_Handler):
            pass

        Handler.standin = self
        self._server = _Server((HOST, self.port), Handler)
        self._server.standin = self
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
            self.client_secret = CLIENT_SECRET
            self.consent_as = None
            self.deny_next = False
            self.access_token_ttl = 3600
            self.omit_refresh_token = False
            self.fail_token_with.clear()
            self.token_delay = 0.0
            self.calls.clear()
            self.authorize_requests.clear()
            self.issued_refresh_tokens.clear()
            self.refresh_tokens.clear()
            self.access_tokens.clear()
            self.errors.clear()
            self._codes.clear()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    def config(self) -> dict[str, Any]:
        """The portal settings that point both providers at this stand-in."""
        values: dict[str, Any] = {"OAUTH_TIMEOUT": 5}
        for provider in ("MICROSOFT", "GOOGLE"):
            values.update(
                {
                    f"OAUTH_{provider}_CLIENT_ID": self.client_id,
                    f"OAUTH_{provider}_CLIENT_SECRET": CLIENT_SECRET,
                    f"OAUTH_{provider}_AUTHORIZE_URL": f"{self.base_url}/authorize",
                    f"OAUTH_{provider}_TOKEN_URL": f"{self.base_url}/token",
                }
            )
        return values

    # --- hooks for tests -------------------------------------------------------------

    def revoke(self, user: str) -> None:
        """`user` withdrew consent: their refresh and access tokens stop working."""
        with self._lock:
            for token in [t for t, u in self.refresh_tokens.items() if u == user]:
                del self.refresh_tokens[token]
            for token in [t for t, (u, _) in self.access_tokens.items() if u == user]:
                del self.access_tokens[token]

    def expire_access_tokens(self) -> None:
        with self._lock:
            self.access_tokens.clear()

    def user_of(self, access_token: str) -> str | None:
        with self._lock:
            entry = self.access_tokens.get(access_token)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def _issue(self, user: str) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        refresh = "rt-" + secrets.token_urlsafe(24)
        self.access_tokens[access] = (user, time.monotonic() + self.access_token_ttl)
        self.refresh_tokens[refresh] = user
        self.issued_refresh_tokens.append(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "scope": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
        }


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: OAuthStandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Kept, not printed (see tests/spapi_standin.py): the `oauth` fixture fails on any.
        self.standin.errors.append(sys.exc_info()[1] or RuntimeError("unknown error"))


class _Handler(BaseHTTPRequestHandler):
    standin: OAuthStandIn
    server_version = "OAuthStandIn/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def _redirect(self, redirect_uri: str, **params: str) -> None:
        joiner = "&" if "?" in redirect_uri else "?"
        self._send(302, b"", "text/plain", Location=redirect_uri + joiner + urlencode(params))

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            self._send(404, b"not found", "text/plain")
            return
        s = self.standin
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with s._lock:
            s.calls["authorize"] += 1
            s.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            self._send(400, b"redirect_uri missing", "text/plain")
            return
        state = query.get("state", "")
        if (
            query.get("client_id") != s.client_id
            or query.get("response_type") != "code"
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
        ):
            self._redirect(
                redirect_uri,
                error="invalid_request",
                error_description="PKCE with S256 and a known client are required.",
                state=state,
            )
            return
        if s.deny_next:
            s.deny_next = False
            self._redirect(
                redirect_uri,
                error="access_denied",
                error_description="The user declined to consent.",
                state=state,
            )
            return
        code = "code-" + secrets.token_urlsafe(18)
        with s._lock:
            s._codes[code] = _Code(
                user=s.consent_as or query.get("login_hint", ""),
                redirect_uri=redirect_uri,
                challenge=query["code_challenge"],
                issued_at=time.monotonic(),
            )
        self._redirect(redirect_uri, code=code, state=state)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        form = self._form()
        if path == "/token":
            self._token(form)
        elif path == "/introspect":
            self._introspect(form)
        else:
            self._send(404, b"not found", "text/plain")

    def _introspect(self, form: dict[str, str]) -> None:
        s = self.standin
        with s._lock:
            s.calls["introspect"] += 1
        user = s.user_of(form.get("token", ""))
        if user is None:
            self._json(200, {"active": False})
            return
        self._json(200, {"active": True, "username": user, "client_id": s.client_id})

    def _token(self, form: dict[str, str]) -> None:
        s = self.standin
        grant = form.get("grant_type", "")
        with s._lock:
            s.calls[grant or "token"] += 1
            failure = s.fail_token_with.pop(0) if s.fail_token_with else None
            delay = s.token_delay
            wake = s._wake
        if delay:
            wake.wait(delay)
        if failure is not None:
            self._json(failure, {"error": "server_error"})
            return
        if form.get("client_id") != s.client_id or form.get("client_secret") != s.client_secret:
            self._json(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "The client secret is not valid for this client.",
                },
            )
            return
        with s._lock:
            if grant == "authorization_code":
                code = s._codes.get(form.get("code", ""))
                if (
                    code is None
                    or code.used
                    or time.monotonic() - code.issued_at > CODE_TTL
                    or code.redirect_uri != form.get("redirect_uri")
                    or s256(form.get("code_verifier", "")) != code.challenge
                ):
                    answer = None
                    reason = "The code is invalid, used, expired or its verifier does not match."
                else:
                    code.used = True
                    answer = s._issue(code.user)
            elif grant == "refresh_token":
                user = s.refresh_tokens.pop(form.get("refresh_token", ""), None)
                if user is None:
                    answer = None
                    reason = "The refresh token was revoked or has expired."
                else:
                    answer = s._issue(user)  # rotation: the old one was popped above
            else:
                self._json(400, {"error": "unsupported_grant_type"})
                return
        if answer is None:
            self._json(400, {"error": "invalid_grant", "error_description": reason})
            return
        if s.omit_refresh_token:
            answer.pop("refresh_token")
        self._json(200, answer)


# --- pytest plugin ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def oauth_standin() -> Iterator[OAuthStandIn]:
    """The stand-in, running for the whole session on a free loopback port."""
    standin = OAuthStandIn()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def oauth(app, oauth_standin: OAuthStandIn) -> Iterator[OAuthStandIn]:
    """The stand-in, reset, with the app's OAUTH_* settings pointing at it."""
    oauth_standin.reset()
    app.config.update(oauth_standin.config())
    yield oauth_standin
    assert oauth_standin.errors == [], "the OAuth stand-in failed while serving"
