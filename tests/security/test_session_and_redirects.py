"""Sessions and redirects: fixation, what a login or logout leaves behind, and `next`.

Flask keeps the session in a signed cookie, so "the session id" is the cookie's
value: it must change on login, and nothing planted in it before (by an attacker
who got their own cookie into the victim's browser) may survive or authenticate.
The session and remember-me cookies name a sign-in kept on the server (a UserSession
row): once it has ended (logout, password change or reset, deactivation), no copy of
either cookie opens a page again.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urljoin, urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select

from portal.extensions import db
from portal.models import Role, UserSession
from portal.services import sessions as session_service
from portal.services import users as user_service
from portal.sqltypes import utcnow
from tests.helpers import (
    PASSWORD,
    TWO_FACTOR_STEP,
    AuthActions,
    FreshContextClient,
    csrf_token_from,
    enrol_if_required,
    totp_code,
)
from tests.security.conftest import record
from tests.security.world import fast_passwords

HOST = "portal.test"


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch):
    fast_passwords(monkeypatch)


def _cookie(client: FlaskClient, name: str = "session") -> str | None:
    cookie = client.get_cookie(name)
    return cookie.value if cookie else None


def _login(client: FlaskClient, email: str, *, remember: bool = False, next_url=None):
    """The login form with these options, then the code when the user has a second
    factor (admins and agents are given one first)."""
    enrol_if_required(email)
    page = client.get("/login")
    data = {"email": email, "password": PASSWORD, "csrf_token": csrf_token_from(page.text)}
    if remember:
        data["remember"] = "y"
    query = {"next": next_url} if next_url is not None else None
    response = client.post("/login", data=data, query_string=query)
    if response.status_code == 302 and response.headers["Location"] == TWO_FACTOR_STEP:
        return AuthActions(client).enter_code(totp_code(email))
    return response


def _logout(client: FlaskClient):
    token = csrf_token_from(client.get("/dashboard").text)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    return response


def _new_client(app) -> FlaskClient:
    app.test_client_class = FreshContextClient
    return app.test_client()


def _dashboard_with_remember_me(app, cookie: str) -> int:
    """The dashboard's status for a new browser that brings only this remember-me cookie."""
    browser = _new_client(app)
    browser.set_cookie("remember_token", cookie)
    return browser.get("/dashboard").status_code


def _with_cookie(app, value: str) -> FlaskClient:
    other = _new_client(app)
    other.set_cookie("session", value)
    return other


def _signed_in_user_id(client: FlaskClient) -> int | None:
    """The user whose live sign-in the client's session names, if any."""
    with client.session_transaction() as sess:
        ref = sess.get("_user_id")
    user = session_service.resolve_session(ref, now=utcnow())
    return user.id if user is not None else None


# --- fixation ---------------------------------------------------------------------------


def test_attackers_planted_session_neither_survives_nor_authenticates(app, client, make_user):
    victim = make_user(Role.SELLER)
    # The attacker gets a session of their own (with a CSRF token and data in it) ...
    attacker = _new_client(app)
    with attacker.session_transaction() as sess:
        sess["planted"] = "by the attacker"
    attacker.get("/login")
    planted = _cookie(attacker)
    assert planted
    # ... and plants that cookie in the victim's browser, who then logs in.
    client.set_cookie("session", planted)
    assert _login(client, victim.email).status_code == 302
    after = _cookie(client)
    assert after and after != planted
    with client.session_transaction() as sess:
        assert "planted" not in sess
    assert _signed_in_user_id(client) == victim.id
    # The planted cookie is worth nothing: it was never logged in.
    assert _with_cookie(app, planted).get("/dashboard").status_code == 302
    assert attacker.get("/dashboard").status_code == 302


def test_csrf_token_from_before_login_does_not_work_after_it(app, client, make_user):
    user = make_user(Role.ADMIN)
    old_token = csrf_token_from(client.get("/login").text)
    assert _login(client, user.email).status_code == 302
    # A form the attacker prepared with the pre-login token is refused.
    response = client.post("/logout", data={"csrf_token": old_token})
    assert response.status_code == 400
    assert client.get("/dashboard").status_code == 200
    new_token = csrf_token_from(client.get("/dashboard").text)
    assert new_token != old_token


def test_signup_starts_a_fresh_session(app, client):
    with client.session_transaction() as sess:
        sess["planted"] = "by the attacker"
    page = client.get("/signup")
    planted = _cookie(client)
    response = client.post(
        "/signup",
        data={
            "organisation": "Fixation Ltd",
            "name": "Fay",
            "email": "fay@example.com",
            "password": PASSWORD,
            "password2": PASSWORD,
            "csrf_token": csrf_token_from(page.text),
        },
    )
    assert response.status_code == 302
    assert _cookie(client) != planted
    with client.session_transaction() as sess:
        assert "planted" not in sess


def test_login_as_someone_else_replaces_the_session(app, client, make_user):
    first, second = make_user(Role.SELLER), make_user(Role.ADMIN)
    _login(client, first.email)
    # Logged in, the login page sends you away: no silent switch to another user.
    assert client.get("/login").status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/dashboard").text)})
    with client.session_transaction() as sess:
        assert "_user_id" not in sess
    _login(client, second.email)
    assert _signed_in_user_id(client) == second.id


# --- what logout and account changes end ----------------------------------------------------


def test_logout_clears_session_and_remember_cookie(app, client, make_user):
    user = make_user(Role.SELLER)
    _login(client, user.email, remember=True)
    assert _cookie(client, "remember_token")
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/dashboard").text)})
    assert _cookie(client, "remember_token") is None
    with client.session_transaction() as sess:
        assert "_user_id" not in sess
    assert client.get("/dashboard").status_code == 302


def test_logout_with_remember_me_survives_a_browser_restart(app, client, make_user):
    user = make_user(Role.SELLER)
    _login(client, user.email, remember=True)
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/dashboard").text)})
    # The browser closes right after logging out: its session cookie goes, and only a
    # remember-me cookie the logout failed to delete would remain.
    client.delete_cookie("session")
    assert client.get("/dashboard").status_code == 302


@pytest.mark.parametrize("replayed", ["session", "remember_token", "both"])
def test_logout_ends_the_sign_in_for_every_copy_of_its_cookies(app, client, make_user, replayed):
    # Found by the outside probe: the cookies were signed but named only the user (and a
    # key of their password), so a copy taken before the logout kept working.
    user = make_user(Role.SELLER)
    _login(client, user.email, remember=True)
    copied = {name: _cookie(client, name) for name in ("session", "remember_token")}
    names = ["session", "remember_token"] if replayed == "both" else [replayed]

    def replay() -> int:
        browser = _new_client(app)
        for name in names:
            browser.set_cookie(name, copied[name])
        return browser.get("/dashboard").status_code

    assert replay() == 200  # the control: the copy works while the sign-in lasts
    _logout(client)
    assert replay() == 302
    assert session_service.list_sessions(user, now=utcnow()) == []


def test_logout_leaves_the_users_other_sessions(app, client, make_user):
    user = make_user(Role.SELLER)
    laptop, phone = client, _new_client(app)
    _login(laptop, user.email, remember=True)
    _login(phone, user.email, remember=True)
    phones_remember = _cookie(phone, "remember_token")
    assert len(session_service.list_sessions(user, now=utcnow())) == 2
    _logout(laptop)
    assert laptop.get("/dashboard").status_code == 302
    assert phone.get("/dashboard").status_code == 200
    assert _dashboard_with_remember_me(app, phones_remember) == 200
    assert len(session_service.list_sessions(user, now=utcnow())) == 1


def test_reactivating_a_user_does_not_revive_their_old_sessions(app, client, make_user):
    user = make_user(Role.AGENT)
    _login(client, user.email, remember=True)
    copied = {name: _cookie(client, name) for name in ("session", "remember_token")}
    user_service.deactivate_user(user, actor=None)
    db.session.commit()
    assert session_service.list_sessions(user, now=utcnow()) == []
    user_service.reactivate_user(user, actor=None)
    db.session.commit()
    browser = _new_client(app)
    for name, value in copied.items():
        browser.set_cookie(name, value)
    assert browser.get("/dashboard").status_code == 302
    assert _dashboard_with_remember_me(app, copied["remember_token"]) == 302


def test_a_remembered_sign_in_ends_when_its_cookie_would(app, client, make_user):
    # The browser drops the remember-me cookie after REMEMBER_COOKIE_DURATION; a copy of
    # it is refused from then on too (the cookie itself carries no date).
    user = make_user(Role.SELLER)
    before = utcnow()
    _login(client, user.email, remember=True)
    remember = _cookie(client, "remember_token")
    (row,) = session_service.list_sessions(user, now=utcnow())
    duration = app.config["REMEMBER_COOKIE_DURATION"]
    assert before + duration <= row.expires_at <= utcnow() + duration
    row.expires_at = utcnow()
    db.session.commit()
    assert _dashboard_with_remember_me(app, remember) == 302
    assert client.get("/dashboard").status_code == 302


def test_a_browser_session_ends_after_the_idle_limit_and_requests_keep_it(app, client, make_user):
    user = make_user(Role.SELLER)
    _login(client, user.email)
    (row,) = session_service.list_sessions(user, now=utcnow())
    assert not row.is_remembered
    # Seen two minutes ago, about to end: a request moves both on.
    row.last_seen_at = utcnow() - session_service.ACTIVITY_RESOLUTION * 2
    row.expires_at = utcnow() + session_service.ACTIVITY_RESOLUTION
    db.session.commit()
    assert client.get("/dashboard").status_code == 200
    db.session.refresh(row)
    assert (
        row.expires_at > utcnow() + session_service.IDLE_LIMIT - session_service.ACTIVITY_RESOLUTION
    )
    row.expires_at = utcnow()
    db.session.commit()
    assert client.get("/dashboard").status_code == 302


def test_activity_is_written_at_most_once_a_minute(app, client, make_user):
    user = make_user(Role.SELLER)
    _login(client, user.email)
    (row,) = session_service.list_sessions(user, now=utcnow())
    stale = utcnow() - session_service.ACTIVITY_RESOLUTION * 2
    row.last_seen_at, row.ip_address = stale, ""
    db.session.commit()
    updates: list[str] = []

    def count_updates(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE USER_SESSIONS"):
            updates.append(statement)

    event.listen(db.engine, "before_cursor_execute", count_updates)
    try:
        for _ in range(5):
            assert client.get("/dashboard").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count_updates)
    assert len(updates) == 1
    db.session.refresh(row)
    assert row.last_seen_at > stale + session_service.ACTIVITY_RESOLUTION
    assert row.ip_address == "127.0.0.1"


def test_sign_ins_keep_only_a_hash_of_their_token(app, client, make_user):
    user = make_user(Role.SELLER)
    _login(client, user.email, remember=True)
    with client.session_transaction() as sess:
        token = sess["_user_id"]
    (row,) = session_service.list_sessions(user, now=utcnow())
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = db.session.execute(select(UserSession.__table__)).one()
    assert not any(token in str(value) for value in stored)
    assert row.user_agent.startswith("Werkzeug/") and row.ip_address == "127.0.0.1"


def test_remember_cookie_alone_logs_back_in_only_while_the_user_is_active(app, client, make_user):
    user = make_user(Role.SELLER)
    _login(client, user.email, remember=True)
    remember = _cookie(client, "remember_token")
    assert _dashboard_with_remember_me(app, remember) == 200
    user.is_active = False
    db.session.commit()
    assert _dashboard_with_remember_me(app, remember) == 302


def test_deactivated_users_session_ends_at_once(app, client, make_user):
    user = make_user(Role.AGENT)
    _login(client, user.email)
    assert client.get("/dashboard").status_code == 200
    user_service.deactivate_user(user, actor=None)
    db.session.commit()
    assert session_service.list_sessions(user, now=utcnow()) == []
    response = client.get("/dashboard")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_password_reset_by_an_admin_ends_older_sessions(app, client, make_user):
    user = make_user(Role.SELLER)
    _login(client, user.email, remember=True)
    remember = _cookie(client, "remember_token")
    user_service.reset_password(user, actor=None)
    db.session.commit()
    # Whoever held the session (or its remember-me cookie) must log in again, with the
    # temporary password that only the admin and the real user know.
    for url in ("/dashboard", "/inbox", f"/orgs/{user.organisation_id}"):
        assert client.get(url).headers["Location"].startswith("/login")
    assert _dashboard_with_remember_me(app, remember) == 302


# Found by this suite: sessions lived in signed cookies with no server-side state, so
# changing your password did not end your sessions elsewhere: a stolen session stayed
# valid. Now the change deletes the user's sign-ins (portal/services/sessions.py).
def test_changing_your_password_ends_your_other_sessions(app, client, make_user):
    user = make_user(Role.SELLER)
    elsewhere = _new_client(app)
    _login(elsewhere, user.email, remember=True)
    stolen_remember = _cookie(elsewhere, "remember_token")
    _login(client, user.email, remember=True)
    page = client.get("/account/password")
    response = client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": "another long password",
            "new_password2": "another long password",
            "csrf_token": csrf_token_from(page.text),
        },
    )
    assert response.status_code == 302
    # This browser stays logged in, with remember-me renewed for the new password ...
    assert client.get("/dashboard").status_code == 200
    renewed = _cookie(client, "remember_token")
    assert renewed and renewed != stolen_remember
    assert _dashboard_with_remember_me(app, renewed) == 200
    # ... the other one, and its remember-me cookie, are out.
    assert elsewhere.get("/dashboard").status_code == 302
    assert _dashboard_with_remember_me(app, stolen_remember) == 302


def test_a_session_of_the_old_id_format_is_not_accepted(app, client, make_user):
    # Sessions from before the id carried the password's key: each must log in again.
    user = make_user(Role.SELLER)
    _login(client, user.email)
    with client.session_transaction() as sess:
        sess["_user_id"] = str(user.id)
    assert client.get("/dashboard").status_code == 302


def test_session_cookie_is_signed(app, client, make_user):
    user = make_user(Role.SELLER)
    _login(client, user.email)
    value = _cookie(client)
    # Any change to the payload without the app's key breaks the signature.
    payload, _, signature = value.partition(".")
    forged = _with_cookie(app, f"{payload}x.{signature}")
    assert forged.get("/dashboard").status_code == 302


def test_a_session_naming_another_user_needs_one_of_their_live_sign_ins(app, client, make_user):
    # Even a session signed with the app's key (a leaked SECRET_KEY) must also carry the
    # random token of one of that user's live sign-ins, which the server keeps only hashed.
    user, admin = make_user(Role.SELLER), make_user(Role.ADMIN)
    admins_browser = _new_client(app)
    _login(admins_browser, admin.email)
    with admins_browser.session_transaction() as sess:
        admins_ref = sess["_user_id"]
    stored = db.session.scalars(select(UserSession.token_hash)).all()
    old_format = f"{admin.id}.{hashlib.sha256(admin.password_hash.encode()).hexdigest()[:20]}"
    guesses = [str(admin.id), f"{admin.id}.", f"{admin.id}.{'0' * 20}", old_format, *stored]
    for guess in guesses:
        # A real login first, so the session's other parts (the "strong" protection's
        # browser identifier) are right and only the user id is forged.
        _login(client, user.email)
        with client.session_transaction() as sess:
            sess["_user_id"] = guess
        assert client.get("/dashboard").status_code == 302, guess
    # The control: with the admin's live token the same forged session works ...
    _login(client, user.email)
    with client.session_transaction() as sess:
        sess["_user_id"] = admins_ref
    assert client.get("/admin").status_code == 200
    # ... until the admin logs out.
    _logout(admins_browser)
    assert client.get("/admin").status_code == 302


# --- open redirects ---------------------------------------------------------------------------

#: `next` values that try to leave the site, as attackers write them. The portal's own
#: paths are the control group.
HOSTILE_NEXT = [
    "https://evil.example/",
    "http://evil.example",
    "//evil.example/x",
    "///evil.example/x",
    "////evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "\x00//evil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "https:evil.example",
    "https:/evil.example",
    "http:\\\\evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "evil.example",
    "@evil.example",
    "/@evil.example",
    "//user@evil.example",
    "https://portal.test@evil.example/",
    "//evil.example%2F@portal.test",
    "/\u3002evil.example",
    "//evil%E3%80%82example",
    "/.//evil.example",
    "/./\\evil.example",
    "/ /evil.example",
    "/\r\nSet-Cookie: planted=1",
    "/%0d%0aSet-Cookie:%20planted=1",
]
SAFE_NEXT = ["/orgs/1", "/inbox?status=open&q=x", "/threads/2#m3", "/canned-replies"]


def browser_target(location: str) -> tuple[str, str]:
    """(host, path) a browser goes to when served `Location: location` on /login.

    Follows the WHATWG URL parser's forgiving steps: leading/trailing C0 controls and
    spaces are dropped, tabs and newlines anywhere removed, and for http(s) a backslash
    is a slash.
    """
    cleaned = location.strip("".join(chr(c) for c in range(0x21)))
    cleaned = re.sub(r"[\t\n\r]", "", cleaned).replace("\\", "/")
    target = urlsplit(urljoin(f"http://{HOST}/login", cleaned))
    return target.hostname or "", target.path


@pytest.mark.parametrize("next_url", HOSTILE_NEXT + SAFE_NEXT, ids=repr)
def test_next_never_leaves_the_site(app, client, make_user, next_url):
    user = make_user(Role.ADMIN)
    response = _login(client, user.email, next_url=next_url)
    record("open redirect: next values")
    if "\x00" in next_url:
        # NUL characters are refused before any view runs (portal/security.py).
        assert response.status_code == 400
        return
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "\r" not in location and "\n" not in location
    assert "planted" not in response.headers.get("Set-Cookie", "")
    host, _ = browser_target(location)
    # ("/.//evil.example" is the path //evil.example on this host: not a way out.)
    assert host == HOST, f"next={next_url!r} sends the browser to {location!r}"
    if next_url in SAFE_NEXT:
        assert location == next_url
    # Logged in already, /login?next=… still stays on the site.
    again = client.get("/login", query_string={"next": next_url})
    assert browser_target(again.headers["Location"])[0] == HOST


def test_redirect_to_login_keeps_only_a_path_in_next(app, client):
    response = client.get("/threads/7?images=1")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and not location.netloc
    assert browser_target(response.headers["Location"])[0] == HOST
