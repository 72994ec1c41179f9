"""Password reset by e-mail through the test client, CSRF on: the same answer for every
address, a link that works once and for an hour, every sign-in ended, the limits."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, LoginLockout, Message, Role, UserSession
from portal.services import lockout, password_reset
from portal.sqltypes import utcnow
from tests.helpers import PASSWORD, AuthActions, csrf_token_from, parse_mail

NEW_PASSWORD = "lantern orchard pebble"


def ask_for_link(client, email: str):
    token = csrf_token_from(client.get("/password/forgot").get_data(as_text=True))
    return client.post("/password/forgot", data={"email": email, "csrf_token": token})


def queued_links() -> list[str]:
    links = []
    for message in db.session.scalars(select(Message).where(Message.thread_id.is_(None))):
        text = parse_mail(message.raw).get_content()
        links += re.findall(r"https?://\S+/password/reset/\S+", text)
    return links


def link_path(link: str) -> str:
    """The path of a link the mail built on PUBLIC_URL, for the test client."""
    return "/" + link.split("://", 1)[1].partition("/")[2]


def set_password(client, link: str, password: str = NEW_PASSWORD, repeat: str | None = None):
    path = link_path(link)
    page = client.get(path)
    token = csrf_token_from(page.get_data(as_text=True))
    return client.post(
        path,
        data={"new_password": password, "new_password2": repeat or password, "csrf_token": token},
    )


def test_the_answer_is_the_same_with_and_without_an_account(client, make_user):
    user = make_user(Role.SELLER, email="kim@example.com")
    answers = []
    for email in ("kim@example.com", "nobody@example.com"):
        response = ask_for_link(client, email)
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        # The form's CSRF token carries the second it was signed: two requests either
        # side of a second differ there, with or without an account.
        page = re.sub(r'name="csrf_token"[^>]*>', "CSRF>", page.replace(email, "ADDRESS"))
        answers.append((response.status_code, response.headers["Location"], page))
    assert answers[0] == answers[1]
    assert "a link to choose a new password is on its way" in answers[0][2]
    [mail] = db.session.scalars(select(Message).where(Message.thread_id.is_(None))).all()
    assert mail.to_addresses == "kim@example.com"
    kinds = db.session.scalars(select(AuditEvent.kind).where(AuditEvent.target_id == user.id))
    assert "user.password_reset_requested" in set(kinds)


def test_a_deactivated_account_gets_no_mail(client, make_user):
    user = make_user(Role.SELLER)
    user.is_active = False
    db.session.commit()
    assert ask_for_link(client, user.email).status_code == 302
    assert queued_links() == []


def test_the_link_sets_the_password_once_and_ends_every_sign_in(app, client, make_user):
    user = make_user(Role.SELLER)
    other = app.test_client()
    assert AuthActions(other).login(user.email).status_code == 302
    for _ in range(3):
        lockout.record_failure(user.email, now=utcnow())
    db.session.commit()
    ask_for_link(client, user.email)
    [link] = queued_links()

    response = set_password(client, link)

    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert db.session.scalar(select(func.count()).select_from(UserSession)) == 0
    assert other.get("/dashboard").status_code == 302  # signed out
    assert db.session.scalar(select(func.count()).select_from(LoginLockout)) == 0
    assert AuthActions(client).login(user.email, PASSWORD).status_code == 200  # refused
    assert AuthActions(client).login(user.email, NEW_PASSWORD).status_code == 302
    kinds = set(db.session.scalars(select(AuditEvent.kind).where(AuditEvent.target_id == user.id)))
    assert {"user.password_reset_by_link", "user.password_changed"} <= kinds

    again = app.test_client()
    page = again.get(link_path(link))
    assert "has expired or has already been used" in page.get_data(as_text=True)


def test_the_link_expires_after_an_hour(app, client, make_user):
    user = make_user(Role.SELLER)
    ask_for_link(client, user.email)
    [link] = queued_links()
    path = link_path(link)
    issued = utcnow()

    app.config["CLOCK"] = lambda: issued + timedelta(minutes=59)
    assert "New password" in client.get(path).get_data(as_text=True)
    app.config["CLOCK"] = lambda: issued + timedelta(minutes=61)
    assert "has expired" in client.get(path).get_data(as_text=True)
    assert "has expired" in set_password(client, link).get_data(as_text=True)
    db.session.expire_all()
    assert AuthActions(client).login(user.email, PASSWORD).status_code == 302


@pytest.mark.parametrize(
    "token",
    ["forged.token", "x" * 400, "eyJ1IjoxfQ.aaaaaaaaaaaaaaaaaaaaaaaaaaa"],
    ids=["forged", "too-long", "bad-signature"],
)
def test_a_forged_link_opens_nothing(client, make_user, token):
    make_user(Role.SELLER)
    page = client.get(f"/password/reset/{token}")
    assert page.status_code == 200
    assert "has expired or has already been used" in page.get_data(as_text=True)


def test_a_token_signed_with_another_key_is_refused(app, make_user):
    user = make_user(Role.SELLER)
    token = password_reset.reset_token(user, now=utcnow())
    app.config["SECRET_KEY"] = "another key"
    with pytest.raises(password_reset.ResetLinkError):
        password_reset.user_for_token(token, now=utcnow())


@pytest.mark.parametrize(
    ("password", "repeat", "error"),
    [
        ("short", None, "at least 12 characters"),
        ("lantern orchard pebble", "lantern orchard", "do not match"),
    ],
)
def test_bad_new_passwords_are_told_next_to_the_field(client, make_user, password, repeat, error):
    user = make_user(Role.SELLER)
    ask_for_link(client, user.email)
    [link] = queued_links()
    page = set_password(client, link, password, repeat).get_data(as_text=True)
    assert error in page and 'class="error"' in page


def test_a_password_made_of_the_address_is_refused(client, make_user):
    user = make_user(Role.SELLER, email="marigold.finch@example.com")
    ask_for_link(client, user.email)
    [link] = queued_links()
    page = set_password(client, link, "marigold.finch@example.com").get_data(as_text=True)
    assert 'id="new_password-error"' in page


def test_an_address_gets_one_reset_mail_in_five_minutes(app, client, make_user):
    user = make_user(Role.SELLER)
    statuses = [ask_for_link(client, user.email).status_code for _ in range(3)]
    assert statuses == [302, 302, 302]
    assert len(queued_links()) == 1
    later = utcnow() + timedelta(minutes=6)
    app.config["CLOCK"] = lambda: later
    ask_for_link(client, user.email)
    assert len(queued_links()) == 2


def test_reset_links_are_limited_per_client(client):
    statuses = [ask_for_link(client, f"k{n}@example.com").status_code for n in range(6)]
    assert statuses == [302] * 5 + [429]
