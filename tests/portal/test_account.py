"""/account: the user's sign-ins, signing one or all others out; an admin and the CLI
signing a user out everywhere. Through the test client, CSRF on."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.account.devices import describe_device
from portal.extensions import db
from portal.models import AuditEvent, Role, UserSession
from tests.helpers import AuthActions, FreshContextClient, csrf_token_from

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


def sign_in_elsewhere(app, user, user_agent: str = FIREFOX):
    """Another browser signed in as `user`; its client."""
    # Each request in its own app context, as a real server does: the login's second
    # step needs the CSRF token of its own page, not one cached from the first.
    other = FreshContextClient(app, app.response_class)
    other.environ_base["HTTP_USER_AGENT"] = user_agent
    assert AuthActions(other).login(user.email).status_code == 302
    return other


def sessions_of(user) -> list[UserSession]:
    db.session.expire_all()
    return list(db.session.scalars(select(UserSession).where(UserSession.user_id == user.id)))


def kinds_about(user) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEvent.kind).where(AuditEvent.target_id == user.id).order_by(AuditEvent.id)
        )
    )


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        (FIREFOX, "Firefox on Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari on iPhone",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0 Safari/537.36 Edg/131.0",
            "Edge on Windows",
        ),
        ("curl/8.5.0", "curl/8.5.0"),
        ("", "Unknown device"),
    ],
)
def test_devices_are_named_in_words(agent, device):
    assert describe_device(agent) == device


def test_the_page_lists_the_users_own_sign_ins_only(app, client, login_as, make_user):
    user = login_as(Role.SELLER)
    sign_in_elsewhere(app, user)
    stranger = make_user(Role.SELLER)
    sign_in_elsewhere(app, stranger, "Stranger/1.0")

    page = client.get("/account").get_data(as_text=True)

    assert "Firefox on Windows" in page and "this browser" in page
    assert "Stranger/1.0" not in page
    assert page.count('id="session-') == 2
    assert 'href="/account/password"' in page and 'href="/account/two-factor"' in page


def test_signing_one_browser_out(app, client, login_as):
    user = login_as(Role.SELLER)
    other = sign_in_elsewhere(app, user)
    [theirs] = [s for s in sessions_of(user) if s.user_agent == FIREFOX]
    token = csrf_token_from(client.get("/account").get_data(as_text=True))

    response = client.post(f"/account/sessions/{theirs.id}/sign-out", data={"csrf_token": token})

    assert response.status_code == 302
    assert other.get("/dashboard").status_code == 302  # sent to the login
    assert client.get("/dashboard").status_code == 200
    assert len(sessions_of(user)) == 1
    assert "user.session_ended" in kinds_about(user)


def test_another_users_sign_in_is_not_found(app, client, login_as, make_user):
    login_as(Role.SELLER)
    stranger = make_user(Role.SELLER)
    sign_in_elsewhere(app, stranger)
    [theirs] = sessions_of(stranger)
    token = csrf_token_from(client.get("/account").get_data(as_text=True))

    response = client.post(f"/account/sessions/{theirs.id}/sign-out", data={"csrf_token": token})

    assert response.status_code == 404
    assert len(sessions_of(stranger)) == 1


def test_signing_out_everywhere_else_keeps_this_browser(app, client, login_as):
    user = login_as(Role.AGENT)
    others = [sign_in_elsewhere(app, user) for _ in range(2)]
    token = csrf_token_from(client.get("/account").get_data(as_text=True))

    response = client.post("/account/sessions/sign-out-elsewhere", data={"csrf_token": token})

    assert response.status_code == 302
    assert "2 other sign-ins" in client.get("/account").get_data(as_text=True)
    assert [o.get("/dashboard").status_code for o in others] == [302, 302]
    assert len(sessions_of(user)) == 1
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "user.sessions_ended"))
    assert event.details["count"] == 2


def test_the_forms_need_their_csrf_token(app, client, login_as):
    user = login_as(Role.SELLER)
    sign_in_elsewhere(app, user)
    assert client.post("/account/sessions/sign-out-elsewhere").status_code == 400
    assert len(sessions_of(user)) == 2


def test_an_admin_signs_a_user_out_everywhere(app, client, admin, make_user):
    user = make_user(Role.SELLER)
    browsers = [sign_in_elsewhere(app, user) for _ in range(2)]
    page = client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert "2 active sign-ins" in page

    response = client.post(
        f"/admin/users/{user.id}/sign-out", data={"sessions-csrf_token": csrf_token_from(page)}
    )

    assert response.status_code == 302
    assert [b.get("/dashboard").status_code for b in browsers] == [302, 302]
    assert sessions_of(user) == []
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "user.sessions_ended"))
    assert (event.actor_id, event.details) == (admin.id, {"count": 2, "by_admin": True})


def test_an_admin_signs_themself_out_on_their_account_page(client, admin):
    page = client.get(f"/admin/users/{admin.id}").get_data(as_text=True)
    response = client.post(
        f"/admin/users/{admin.id}/sign-out", data={"sessions-csrf_token": csrf_token_from(page)}
    )
    assert response.status_code == 422
    assert "Account page" in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 200


def test_the_cli_signs_a_user_out_everywhere(app, runner, make_user):
    user = make_user(Role.AGENT)
    sign_in_elsewhere(app, user)

    result = runner.invoke(args=["users", "end-sessions", "--email", user.email])

    assert result.exit_code == 0, result.output
    assert result.output == f"ended\t1\t{user.email}\n"
    assert sessions_of(user) == []
    assert "user.sessions_ended" in kinds_about(user)
    missing = runner.invoke(args=["users", "end-sessions", "--email", "nobody@example.com"])
    assert missing.exit_code != 0 and "No user" in missing.output


def test_the_alerts_are_chosen_on_the_account_page(client, login_as):
    user = login_as(Role.AGENT)
    page = client.get("/account").get_data(as_text=True)
    assert 'id="alerts"' in page and "A daily digest" in page
    assert 'id="alerts-assigned" name="alerts-assigned" type="checkbox" value="y"' in page
    response = client.post(
        "/account/alerts",
        data={"csrf_token": csrf_token_from(page), "alerts-digest": "y"},  # the rest unticked
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("#alerts")
    db.session.refresh(user)
    assert (user.alert_assigned, user.alert_deadline, user.alert_digest) == (False, False, True)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "user.alerts_changed"))
    assert event.details == {"assigned": False, "deadline": False, "digest": True}
