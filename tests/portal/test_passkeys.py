"""Passkeys through the pages: adding and removing them on /account/passkeys, signing in
with one without a password and as the step after it, and enrolling one instead of an
app. A software authenticator answers (tests/webauthn_authenticator.py)."""

from __future__ import annotations

import html
import re

import pytest

from portal.extensions import db
from portal.models import LoginLockout, Role
from portal.services import offboarding, passkeys
from portal.sqltypes import utcnow
from tests.helpers import PASSWORD, TWO_FACTOR_STEP, csrf_token_from
from tests.webauthn_authenticator import SoftAuthenticator, b64url

ORIGIN = "http://localhost:5000"


@pytest.fixture(autouse=True)
def localhost(app):
    app.config["PUBLIC_URL"] = ORIGIN
    app.config["LOGIN_RATE_LIMIT"] = "1000 per minute"


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


def options(client, page: str, url: str) -> str:
    token = csrf_token_from(client.get(page).get_data(as_text=True))
    response = client.post(url, headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    return response.get_data(as_text=True)


def add_passkey(client, key: SoftAuthenticator, name: str = "Work laptop"):
    answer = key.create(options(client, "/account/passkeys", "/account/passkeys/options"))
    token = csrf_token_from(client.get("/account/passkeys").get_data(as_text=True))
    return client.post(
        "/account/passkeys", data={"name": name, "credential": answer, "csrf_token": token}
    )


def passkey_sign_in(client, key: SoftAuthenticator, page: str = "/login", **form):
    answer = key.get(options(client, page, "/login/passkey/options"))
    token = csrf_token_from(client.get(page).get_data(as_text=True))
    return client.post("/login/passkey", data={"credential": answer, "csrf_token": token, **form})


def password_only(client, email: str):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})


@pytest.fixture
def key():
    return SoftAuthenticator(origin=ORIGIN, rp_id="localhost")


def test_a_seller_adds_a_passkey_and_signs_in_with_it_alone(client, auth, make_user, key):
    seller = make_user(Role.SELLER)
    auth.login(seller.email)
    assert "You have no passkey yet" in text(client.get("/account/passkeys"))
    added = add_passkey(client, key)
    assert added.status_code == 302
    page = text(client.get("/account/passkeys"))
    assert "Passkey “Work laptop” added" in page and "Work laptop" in page
    auth.logout()

    assert 'data-passkey="get"' in client.get("/login").get_data(as_text=True)
    done = passkey_sign_in(client, key, time_zone="Europe/Paris")
    assert done.status_code == 302 and done.headers["Location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200
    db.session.refresh(seller)
    assert seller.last_login_at is not None and seller.time_zone == "Europe/Paris"


def test_after_the_password_a_passkey_is_the_second_step(client, auth, make_user, key):
    seller = make_user(Role.SELLER)
    auth.login(seller.email)
    add_passkey(client, key)
    auth.logout()
    assert password_only(client, seller.email).headers["Location"] == TWO_FACTOR_STEP
    step = client.get(TWO_FACTOR_STEP).get_data(as_text=True)
    assert "Use a passkey" in step
    offered = options(client, TWO_FACTOR_STEP, "/login/passkey/options")
    assert b64url(key.credential_id) in offered  # only this user's passkeys are offered
    done = passkey_sign_in(client, key, page=TWO_FACTOR_STEP, trust="y")
    assert done.status_code == 302 and done.headers["Location"] == "/dashboard"
    assert "sellerdesk_trusted_browser" in done.headers.get("Set-Cookie", "")


def test_a_wrong_answer_is_refused_and_counts_towards_the_lockout(
    client, auth, make_user, key, app
):
    seller = make_user(Role.SELLER)
    auth.login(seller.email)
    add_passkey(client, key)
    auth.logout()
    password_only(client, seller.email)
    impostor = SoftAuthenticator(origin=ORIGIN, rp_id="localhost")
    impostor.credential_id = key.credential_id  # the right ID, another private key
    refused = passkey_sign_in(client, impostor, page=TWO_FACTOR_STEP)
    assert refused.status_code == 401
    assert "This passkey was not accepted" in text(refused)
    assert client.get("/dashboard").status_code == 302
    assert db.session.query(LoginLockout).count() == 1


def test_an_answer_without_its_ceremony_is_refused(client, key, make_user):
    make_user(Role.SELLER)
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    answer = key.get('{"challenge": "AAAA"}')
    refused = client.post("/login/passkey", data={"credential": answer, "csrf_token": token})
    assert refused.status_code == 422 and "The passkey prompt expired" in text(refused)


def test_a_name_is_needed_and_names_are_unique(client, auth, make_user, key):
    seller = make_user(Role.SELLER)
    auth.login(seller.email)
    add_passkey(client, key, name="Phone")
    refused = add_passkey(client, SoftAuthenticator(origin=ORIGIN, rp_id="localhost"), "phone")
    assert refused.status_code == 422
    assert 'id="name-error"' in refused.get_data(as_text=True)
    assert "already have a passkey called 'phone'" in text(refused)
    empty = add_passkey(client, SoftAuthenticator(origin=ORIGIN, rp_id="localhost"), "")
    assert empty.status_code == 422 and 'id="name-error"' in empty.get_data(as_text=True)
    assert [p.name for p in passkeys.list_passkeys(seller)] == ["Phone"]


def test_removing_a_passkey(client, auth, make_user, key):
    seller = make_user(Role.SELLER)
    auth.login(seller.email)
    add_passkey(client, key)
    (passkey,) = passkeys.list_passkeys(seller)
    token = csrf_token_from(client.get("/account/passkeys").get_data(as_text=True))
    removed = client.post(f"/account/passkeys/{passkey.id}/remove", data={"csrf_token": token})
    assert removed.status_code == 302
    assert "Passkey “Work laptop” removed" in text(client.get("/account/passkeys"))
    assert passkeys.list_passkeys(seller) == []


def test_an_agent_may_enrol_a_passkey_instead_of_an_app(client, make_user, key):
    agent = make_user(Role.AGENT)
    password_only(client, agent.email)
    assert client.get("/dashboard").headers["Location"] == "/account/two-factor"
    assert "add a passkey" in text(client.get("/account/two-factor"))
    assert client.get("/account/passkeys").status_code == 200
    assert add_passkey(client, key).status_code == 302
    assert client.get("/dashboard").status_code == 200


def test_no_passkeys_are_offered_on_an_ip_address(app, client, auth, make_user):
    app.config["PUBLIC_URL"] = "http://127.0.0.1:5000"  # browsers would refuse
    assert 'data-passkey="get"' not in client.get("/login").get_data(as_text=True)
    auth.login(make_user(Role.SELLER).email)
    page = text(client.get("/account/passkeys"))
    assert "Passkeys cannot be used while the portal is opened by IP address" in page
    assert 'data-passkey="create"' not in page


def test_a_closed_organisations_user_is_refused_with_a_passkey_too(client, auth, make_user, key):
    seller = make_user(Role.SELLER)
    auth.login(seller.email)
    assert add_passkey(client, key).status_code == 302
    auth.logout()
    offboarding.close_organisation(seller.organisation, actor=None, now=utcnow(), grace_days=30)
    seller.is_active = True  # even one an admin let back in
    db.session.commit()
    refused = passkey_sign_in(client, key)
    assert refused.status_code == 403
    assert "This organisation's account is closed" in text(refused)
    assert client.get("/dashboard").status_code == 302
