from __future__ import annotations

import re

import pytest
from cryptography.fernet import Fernet

from portal import create_app
from portal.config import config_from_env
from portal.extensions import db
from portal.models import AuditEvent, Message, Organisation, OrgRole, Role, User
from portal.services import sessions as session_service
from portal.sqltypes import utcnow
from tests.helpers import PASSWORD, FreshContextClient, csrf_token_from


def _signup(client, **fields):
    page = client.get("/signup")
    data = {
        "organisation": "Acme Toys",
        "name": "Ann",
        "email": "ann@example.com",
        "password": PASSWORD,
        "password2": PASSWORD,
        "csrf_token": csrf_token_from(page.get_data(as_text=True)),
    }
    data.update(fields)
    return client.post("/signup", data=data)


def test_signup_creates_organisation_and_owner(client, auth):
    response = _signup(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    user = db.session.scalar(db.select(User).filter_by(email="ann@example.com"))
    assert (user.role, user.org_role) == (Role.SELLER, OrgRole.OWNER)
    assert user.organisation.name == "Acme Toys"
    assert user.password_hash != PASSWORD and "scrypt" in user.password_hash
    [welcome] = _system_mail()
    assert (welcome.to_addresses, welcome.subject) == ("ann@example.com", "Welcome to Sellerdesk")
    assert auth.login("ann@example.com").status_code == 302
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "Acme Toys" in dashboard


def _system_mail() -> list[Message]:
    return list(db.session.scalars(db.select(Message).where(Message.thread_id.is_(None))))


@pytest.mark.parametrize(
    ("fields", "field_name", "message"),
    [
        ({"email": "not-an-email"}, "email", "Invalid email address."),
        ({"email": ""}, "email", "This field is required."),
        ({"organisation": ""}, "organisation", "This field is required."),
        ({"password": "short", "password2": "short"}, "password", "at least 12 characters"),
        ({"password2": "something else!"}, "password2", "The passwords do not match."),
        # The probe's business name: stored, it made every reply of the business unsendable.
        (
            {"organisation": "Evil\r\nBcc: x@evil.test"},
            "organisation",
            "Business name cannot contain U+000D (CARRIAGE RETURN)",
        ),
        ({"organisation": "Evil\nCorp"}, "organisation", "U+000A (LINE FEED)"),
        ({"name": "Ann\u202enoS"}, "name", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ({"name": "Ann\tLee"}, "name", "U+0009 (TAB)"),
    ],
)
def test_signup_validate_input(client, fields, field_name, message):
    response = _signup(client, **fields)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    # The message sits right after its own field, tied to it for screen readers.
    assert f'id="{field_name}-error"' in html
    error_html = html.split(f'id="{field_name}-error"', 1)[1][:200]
    assert message in error_html
    assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 0


def test_signup_answers_the_same_for_a_taken_address_and_mails_its_owner(client, make_user):
    owner = make_user(Role.SELLER, email="ann@example.com", organisation=None)
    answers = []
    for email, business in (("ann@example.com", "Acme Toys"), ("new@example.com", "New Toys")):
        response = _signup(client, email=email, organisation=business)
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        # The page but its CSRF token, which every fresh session has its own of.
        page = re.sub(r'name="csrf_token" type="hidden" value="[^"]+"', "", page)
        answers.append(
            (response.status_code, response.headers["Location"], page.replace(email, "X"))
        )
    assert answers[0] == answers[1]
    assert "We have sent a mail to X" in answers[0][2]
    # Nothing created for the taken address; its owner is told, the newcomer welcomed.
    assert db.session.scalar(db.select(Organisation).filter_by(name="Acme Toys")) is None
    assert db.session.get(User, owner.id).password_hash == owner.password_hash
    mails = {m.to_addresses: m.subject for m in _system_mail()}
    assert mails == {
        "ann@example.com": "Someone tried to sign up to Sellerdesk with your address",
        "new@example.com": "Welcome to Sellerdesk",
    }


def test_signup_refuses_a_taken_business_name(client, make_user):
    make_user(Role.SELLER, email="ann@example.com", organisation=None)
    org = db.session.scalar(db.select(Organisation))
    html = _signup(client, email="bob@example.com", organisation=org.name.upper()).get_data(
        as_text=True
    )
    assert "A business with this name is already registered." in html


def test_post_without_csrf_token_is_refused(client, make_user):
    user = make_user()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302  # still logged out


def test_login_and_logout(client, auth, make_user):
    user = make_user()
    response = auth.login(user.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200
    assert db.session.scalar(db.select(AuditEvent).filter_by(kind="user.login")) is not None
    response = auth.logout()
    assert response.status_code == 302
    assert client.get("/dashboard").status_code == 302  # back to /login


def test_logout_is_post_only(client, login_as):
    login_as()
    assert client.get("/logout").status_code == 405


@pytest.mark.parametrize("password", ["wrong password", ""])
def test_login_failure_message_beside_field(client, auth, make_user, password):
    user = make_user()
    response = auth.login(user.email, password=password)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="password-error"' in html


def test_login_unknown_email_same_message(client, auth):
    html = auth.login("nobody@example.com").get_data(as_text=True)
    assert "Wrong e-mail or password." in html


def test_inactive_user_cannot_log_in(client, auth, make_user):
    user = make_user()
    user.is_active = False
    db.session.commit()
    assert auth.login(user.email).status_code == 200


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/orgs/1", "/orgs/1"),
        ("https://evil.example/", "/dashboard"),
        ("//evil.example/x", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
    ],
)
def test_login_next_redirect_stays_on_site(client, make_user, next_url, expected):
    user = make_user()
    page = client.get("/login")
    response = client.post(
        "/login",
        query_string={"next": next_url},
        data={
            "email": user.email,
            "password": PASSWORD,
            "csrf_token": csrf_token_from(page.get_data(as_text=True)),
        },
    )
    assert response.headers["Location"] == expected


def test_login_is_rate_limited(app, client, auth, make_user):
    # One client trying many addresses: the per-IP limit (one address: the lockout below).
    user = make_user()
    statuses = [
        auth.login(f"guess{n}@example.com", password="wrong password").status_code
        for n in range(10)
    ]
    assert statuses == [200] * 10
    response = auth.login(user.email)
    assert response.status_code == 429
    assert "Too many login attempts" in response.get_data(as_text=True)


def test_signup_is_rate_limited(client, make_user):
    # Each sign-up mails the address it names: trying many must be slow.
    make_user(Role.SELLER, email="ann@example.com", organisation=None)
    statuses = [_signup(client, organisation=f"Business {n}").status_code for n in range(10)]
    assert statuses == [302] * 10
    response = _signup(client, email="new@example.com", organisation="New Org")
    assert response.status_code == 429
    assert "Too many sign-up attempts" in response.get_data(as_text=True)
    assert db.session.scalar(db.select(User).filter_by(email="new@example.com")) is None


def test_session_cookie_flags(client, auth, make_user):
    user = make_user()
    response = auth.login(user.email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def _set_cookies(response) -> dict[str, str]:
    """Each cookie the response sets, by name: its whole Set-Cookie header."""
    return {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}


def _remember_login(client, email, **request):
    page = client.get("/login", **request)
    return client.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "remember": "y",
            "csrf_token": csrf_token_from(page.get_data(as_text=True)),
        },
        **request,
    )


def test_remember_cookie_flags(client, make_user):
    cookie = _set_cookies(_remember_login(client, make_user().email))["remember_token"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # `make run` serves plain http: a Secure cookie would never come back there.
    assert "Secure" not in cookie


def test_session_and_remember_cookies_are_secure_in_production(
    app, make_user, monkeypatch, database_url, tmp_path
):
    monkeypatch.setenv("SELLERDESK_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "production-secret")
    monkeypatch.setenv("TOKEN_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("DATABASE_URL", database_url)
    production = create_app({**config_from_env(str(tmp_path)), "TESTING": True})
    production.test_client_class = FreshContextClient
    user = make_user()
    try:
        # Over HTTPS, Flask-WTF also wants the Referer of the same site.
        response = _remember_login(
            production.test_client(),
            user.email,
            base_url="https://portal.example",
            headers={"Referer": "https://portal.example/login"},
        )
    finally:
        with production.app_context():
            db.engine.dispose()  # its own engine: close its connections now, not at GC
    assert response.status_code == 302
    cookies = _set_cookies(response)
    for name in ("session", "remember_token"):
        assert "; Secure" in cookies[name], cookies[name]
        assert "HttpOnly" in cookies[name] and "SameSite=Lax" in cookies[name]


def test_session_changes_on_login(client, auth, make_user):
    user = make_user()
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    auth.login(user.email)
    with client.session_transaction() as sess:
        assert "planted" not in sess
        ref = sess["_user_id"]
    # The new session names a new sign-in of this user, kept on the server.
    assert session_service.resolve_session(ref, now=utcnow()) == user


def test_one_time_password_must_be_changed(client, auth, runner, app):
    result = runner.invoke(args=["users", "bootstrap-admin"])
    assert result.exit_code == 0, result.output
    password = result.output.split("password:")[1].split()[0]
    assert auth.login("admin@helpdesk.test", password=password).status_code == 302
    # Every page leads to the password change until it is done.
    response = client.get("/dashboard")
    assert response.headers["Location"] == "/account/password"
    page = client.get("/account/password").get_data(as_text=True)
    assert "one-time password" in page
    response = client.post(
        "/account/password",
        data={
            "current_password": password,
            "new_password": "a brand new password",
            "new_password2": "a brand new password",
            "csrf_token": csrf_token_from(page),
        },
    )
    assert response.headers["Location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200
    # Running it again on a non-empty install creates nothing.
    assert runner.invoke(args=["users", "bootstrap-admin"]).output == ""


def test_error_pages_are_friendly(client, login_as):
    login_as()
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


def test_unexpected_error_shows_no_stack_trace(app, client):
    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = client.get("/boom")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "Something went wrong" in html
    assert "secret internals" not in html and "Traceback" not in html


def test_security_headers(client):
    response = client.get("/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
