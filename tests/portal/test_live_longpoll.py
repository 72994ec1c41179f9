"""Long polling of the live endpoints (?wait=N): a request that finds nothing new is held
on a threaded server until a change its user may see is stored, never woken into an
answer by another organisation's change, and held no longer than watch.MAX_WAIT."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from portal.extensions import db
from portal.models import Direction, Message, Role
from portal.services.inbox import watch
from portal.sqltypes import utcnow

pytestmark = pytest.mark.live  # real HTTP to a threaded server on loopback


def _as_client(client, etag: str) -> dict[str, str]:
    """Headers for real HTTP that carry the test client's sign-in: its cookies and its
    User-Agent (the sign-in is bound to it)."""
    jar = client._cookies.values()  # noqa: SLF001 (werkzeug keeps them here)
    agent = client.get("/healthz").request.headers["User-Agent"]
    return {
        "Cookie": "; ".join(f"{cookie.key}={cookie.value}" for cookie in jar),
        "User-Agent": agent,
        "If-None-Match": etag,
        "Accept": "application/json",
    }


class Held:
    """One GET over real HTTP in a thread of its own; its answer once it comes."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.status: int | None = None
        self.headers: Any = None
        self.body = b""
        self._thread = threading.Thread(target=self._get, args=(url, headers), daemon=True)
        self._thread.start()

    def _get(self, url: str, headers: dict[str, str]) -> None:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                self.status, self.headers, self.body = (
                    response.status,
                    response.headers,
                    response.read(),
                )
        except urllib.error.HTTPError as error:  # 304 comes as one
            self.status, self.headers = error.code, error.headers

    def answer(self) -> int | None:
        self._thread.join(timeout=60)
        return self.status


def _until(condition: Callable[[], bool]) -> None:
    """Wait for a condition of the server's state (not for a time)."""
    for _ in range(2000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the condition never held")  # pragma: no cover


def _waiting(app: Flask) -> int:
    watcher = app.extensions.get("live_watcher")
    return watcher._waiting if watcher else 0  # noqa: SLF001


def test_a_held_request_is_answered_when_a_visible_change_is_stored(
    app, client, login_as, two_channels, make_thread, live_server
):
    uk, _ = two_channels
    make_thread(uk, subject="First question")
    login_as(Role.SELLER, organisation=uk.organisation)
    etag = client.get("/inbox/live").headers["ETag"]
    headers = _as_client(client, etag)

    held = Held(f"{live_server}/inbox/live?wait=25", headers)
    _until(lambda: _waiting(app) == 1)  # held, not answered
    assert held.status is None
    make_thread(uk, subject="Second question")  # commits

    # Answered with the change, not at the end of the wait (which would be a 304).
    assert held.answer() == 200
    assert b"Second question" in held.body
    assert held.headers["X-Live-Wait"] == "25"


def test_another_organisations_change_does_not_answer_a_held_request(
    app, client, login_as, two_channels, make_thread, live_server
):
    uk, de = two_channels
    make_thread(uk, subject="Alpha question")
    login_as(Role.SELLER, organisation=uk.organisation)
    etag = client.get("/inbox/live").headers["ETag"]
    headers = _as_client(client, etag)

    held = Held(f"{live_server}/inbox/live?wait=3", headers)
    _until(lambda: _waiting(app) == 1)
    generation = app.extensions["live_watcher"].generation
    make_thread(de, subject="Beta question")
    # The watcher sees the change and wakes the request; its own check finds nothing.
    _until(lambda: app.extensions["live_watcher"].generation > generation)
    assert held.answer() == 304
    assert held.headers["ETag"] == etag


def test_a_held_thread_request_is_answered_by_a_new_message(
    app, client, login_as, two_channels, make_thread, live_server
):
    uk, _ = two_channels
    thread = make_thread(uk, subject="Parcel late")
    login_as(Role.SELLER, organisation=uk.organisation)
    first = client.get(f"/threads/{thread.id}/live")
    headers = _as_client(client, first.headers["ETag"])
    held = Held(
        f"{live_server}/threads/{thread.id}/live?wait=25&after={first.json['newest']}", headers
    )
    _until(lambda: _waiting(app) == 1)
    db.session.add(
        Message(
            thread=thread,
            channel=uk,
            direction=Direction.IN,
            message_id="<later@example.com>",
            content_hash="later",
            subject="Re: Parcel late",
            from_name="Jane",
            from_address=thread.buyer_address,
            to_addresses=uk.helpdesk_address,
            text_body="Still nothing arrived",
            visible_text="Still nothing arrived",
            snippet="Still nothing arrived",
            created_at=utcnow(),
        )
    )
    db.session.commit()
    assert held.answer() == 200
    assert b"Still nothing arrived" in held.body


def test_stopping_the_watcher_answers_held_requests_and_ends_its_thread(
    app, client, login_as, two_channels, make_thread, live_server
):
    # A watcher left running kept its app and pooled SQLite connections alive for the
    # rest of the process; the suite's app fixture stops it after each test.
    uk, _ = two_channels
    make_thread(uk, subject="First question")
    login_as(Role.SELLER, organisation=uk.organisation)
    etag = client.get("/inbox/live").headers["ETag"]
    held = Held(f"{live_server}/inbox/live?wait=25", _as_client(client, etag))
    _until(lambda: _waiting(app) == 1)
    watcher = app.extensions["live_watcher"]
    thread = watcher._thread  # noqa: SLF001

    watch.stop_watcher(app)

    # Answered with what it had: _until gives up well before the 25 s wait would end.
    _until(lambda: held.status is not None)
    assert held.answer() == 304
    assert held.headers["ETag"] == etag
    assert not thread.is_alive()
    assert "live_watcher" not in app.extensions
    # The next held request gets a watcher of its own.
    again = Held(f"{live_server}/inbox/live?wait=25", _as_client(client, etag))
    _until(lambda: _waiting(app) == 1)
    assert app.extensions["live_watcher"] is not watcher
    make_thread(uk, subject="Second question")
    assert again.answer() == 200


def test_the_wait_is_bounded():
    assert watch.parse_wait("25") == 25
    assert watch.parse_wait("3600") == watch.MAX_WAIT
    for junk in (None, "", "0", "-5", "nan", "soon", "inf"):
        expected = watch.MAX_WAIT if junk == "inf" else 0
        assert watch.parse_wait(junk) == expected


def test_a_changed_answer_is_not_held_and_says_how_long_it_would_wait(
    client, login_as, two_channels, make_thread
):
    uk, _ = two_channels
    make_thread(uk, subject="First question")
    login_as(Role.SELLER, organisation=uk.organisation)
    # No If-None-Match: the rows come at once, whatever the wait.
    first = client.get("/inbox/live?wait=3600")
    assert first.status_code == 200 and first.headers["X-Live-Wait"] == str(watch.MAX_WAIT)
    # Without ?wait the answer is as before: no hold, no mark.
    plain = client.get("/inbox/live", headers={"If-None-Match": first.headers["ETag"]})
    assert plain.status_code == 304 and "X-Live-Wait" not in plain.headers
