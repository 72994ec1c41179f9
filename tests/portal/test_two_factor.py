"""Two-factor sign-in through the pages: the login's code step (lockout, trusted
browsers, recovery codes), enrolment required of admins and agents, the user's own page,
the admin's reset and the command line."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, OrgRole, Role, TrustedBrowser, UserSession
from portal.services import sessions as session_service
from portal.services import two_factor
from portal.sqltypes import utcnow
from tests.helpers import (
    PASSWORD,
    TWO_FACTOR_STEP,
    AuthActions,
    csrf_token_from,
    enrol_totp,
    totp_code,
)


@pytest.fixture(autouse=True)
def loose_ip_limit(app):
    app.config["LOGIN_RATE_LIMIT"] = "1000 per minute"  # the per-IP limit has its own tests


def password_only(client, email: str, password: str = PASSWORD):
    """The login form's first step alone."""
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def post_form(client, page_url: str, action: str, data: dict):
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **data})


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


def secret_on(page: str) -> str:
    return re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)


def recovery_codes_on(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9-]+)</code></li>", page)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.AGENT])
def test_admins_and_agents_see_only_the_enrolment_until_done(client, make_user, role):
    user = make_user(role)
    assert password_only(client, user.email).headers["Location"] == "/dashboard"
    for url in ("/dashboard", "/inbox", "/channels", "/admin", "/account/password"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"] == "/account/two-factor", url
    page = client.get("/account/two-factor")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Your role requires two-factor sign-in" in body and "<svg" in body
    secret = secret_on(body)

    # A wrong code is told next to the field.
    wrong = post_form(client, "/account/two-factor", "/account/two-factor", {"enable-code": "1"})
    assert wrong.status_code == 422 and 'id="enable-code-error"' in wrong.get_data(as_text=True)

    done = post_form(
        client,
        "/account/two-factor",
        "/account/two-factor",
        {"enable-code": pyotp.TOTP(secret).now()},
    )
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"
    assert len(set(recovery_codes_on(done.get_data(as_text=True)))) == 10
    assert client.get("/dashboard").status_code == 200
    db.session.refresh(user)
    assert two_factor.totp_secret(user) == secret
    assert secret.encode() not in user.totp_secret_encrypted  # stored encrypted


def test_a_forced_password_change_comes_before_the_enrolment(client, make_user):
    admin = make_user(Role.ADMIN)
    admin.must_change_password = True
    db.session.commit()
    password_only(client, admin.email)
    assert client.get("/dashboard").headers["Location"] == "/account/password"
    assert client.get("/account/two-factor").headers["Location"] == "/account/password"
    assert client.get("/account/password").status_code == 200


def test_sellers_may_go_without_a_second_factor(client, make_user):
    seller = make_user(Role.SELLER)
    assert password_only(client, seller.email).headers["Location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200
    assert "Two-factor sign-in is <strong>off</strong>" in text(client.get("/account/two-factor"))


def test_the_code_step_signs_in_only_with_a_right_code(client, auth, make_user):
    seller = make_user(Role.SELLER)
    enrol_totp(seller)
    first = password_only(client, seller.email)
    assert first.headers["Location"] == TWO_FACTOR_STEP
    # Nothing is signed in between the steps.
    assert client.get("/dashboard").headers["Location"].startswith("/login?next=")
    assert db.session.scalars(select(UserSession)).all() == []

    wrong = auth.enter_code("000000")
    assert wrong.status_code == 200 and "This code is not right." in text(wrong)
    assert 'id="code-error"' in wrong.get_data(as_text=True)
    right = auth.enter_code(totp_code(seller.email))
    assert right.status_code == 302 and right.headers["Location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200


def test_a_used_code_is_refused_the_second_time(app, client, make_user):
    seller = make_user(Role.SELLER)
    enrol_totp(seller)
    code = totp_code(seller.email)
    password_only(client, seller.email)
    assert AuthActions(client).enter_code(code).status_code == 302
    other = app.test_client()
    password_only(other, seller.email)
    replay = AuthActions(other).enter_code(code)
    assert replay.status_code == 200 and "This code is not right." in text(replay)


def test_wrong_codes_count_towards_the_account_lockout(client, auth, make_user):
    seller = make_user(Role.SELLER)
    enrol_totp(seller)
    password_only(client, seller.email)
    answers = [auth.enter_code("000000") for _ in range(5)]
    assert "Too many failed logins" in text(answers[-1])
    # Locked: even the right code waits, and so does the password.
    refused = auth.enter_code(totp_code(seller.email))
    assert refused.status_code == 429 and "try again in" in text(refused)
    assert password_only(client, seller.email).status_code == 429
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "user.locked_out"))
    assert event.target_id == seller.id


def test_the_code_step_expires_and_needs_the_password_first(client, auth, make_user):
    seller = make_user(Role.SELLER)
    enrol_totp(seller)
    assert client.get(TWO_FACTOR_STEP).headers["Location"] == "/login"
    password_only(client, seller.email)
    with client.session_transaction() as session:
        state = session["two_factor_pending"]
        state["at"] = (utcnow() - timedelta(minutes=11)).timestamp()
        session["two_factor_pending"] = state
    assert client.get(TWO_FACTOR_STEP).headers["Location"] == "/login"


def test_a_recovery_code_signs_in_once(app, client, make_user):
    seller = make_user(Role.SELLER)
    enrol_totp(seller)
    codes = two_factor.regenerate_recovery_codes(seller, totp_code(seller.email), now=utcnow())
    db.session.commit()
    password_only(client, seller.email)
    assert AuthActions(client).enter_code(codes[3]).headers["Location"] == "/dashboard"
    other = app.test_client()
    password_only(other, seller.email)
    again = AuthActions(other).enter_code(codes[3])
    assert again.status_code == 200 and "This code is not right." in text(again)


def test_a_trusted_browser_skips_the_code_until_revoked(app, client, auth, make_user):
    seller = make_user(Role.SELLER)
    enrol_totp(seller)
    password_only(client, seller.email)
    response = auth.enter_code(totp_code(seller.email), trust=True)
    cookie = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("sellerdesk_trusted_browser=") and "HttpOnly" in c for c in cookie)
    auth.logout()
    assert password_only(client, seller.email).headers["Location"] == "/dashboard"

    # Another user's password in this browser still needs their own code.
    other = make_user(Role.SELLER)
    enrol_totp(other)
    auth.logout()
    assert password_only(client, other.email).headers["Location"] == TWO_FACTOR_STEP

    # Signing out everywhere revokes the trust.
    session_service.end_sessions(seller)
    db.session.commit()
    assert db.session.scalars(select(TrustedBrowser)).all() == []
    fresh = app.test_client()
    fresh.set_cookie(
        "sellerdesk_trusted_browser", client.get_cookie("sellerdesk_trusted_browser").value
    )
    assert password_only(fresh, seller.email).headers["Location"] == TWO_FACTOR_STEP


def test_a_forged_trust_cookie_is_ignored(client, make_user):
    seller = make_user(Role.SELLER)
    enrol_totp(seller)
    client.set_cookie("sellerdesk_trusted_browser", f'{{"user": {seller.id}, "token": "x"}}')
    assert password_only(client, seller.email).headers["Location"] == TWO_FACTOR_STEP


def test_enrolling_ends_the_other_sessions_of_the_user(app, client, auth, make_user):
    seller = make_user(Role.SELLER)
    elsewhere = app.test_client()
    password_only(elsewhere, seller.email)
    auth.login(seller.email)
    secret = secret_on(client.get("/account/two-factor").get_data(as_text=True))
    response = post_form(
        client,
        "/account/two-factor",
        "/account/two-factor",
        {"enable-code": pyotp.TOTP(secret).now()},
    )
    assert response.status_code == 200
    assert client.get("/dashboard").status_code == 200
    assert elsewhere.get("/dashboard").status_code == 302


def test_new_recovery_codes_and_turning_it_off(app, client, auth, make_user):
    seller = make_user(Role.SELLER)
    enrol_totp(seller)
    auth.login(seller.email)
    page = "/account/two-factor"
    refused = post_form(client, page, f"{page}/recovery-codes", {"codes-code": "123456"})
    assert refused.status_code == 422 and 'id="codes-code-error"' in refused.get_data(as_text=True)
    made = post_form(
        client, page, f"{page}/recovery-codes", {"codes-code": totp_code(seller.email)}
    )
    assert made.status_code == 200 and len(recovery_codes_on(made.get_data(as_text=True))) == 10
    assert "Recovery codes left: <strong>10</strong>" in text(client.get(page))

    off = post_form(client, page, f"{page}/disable", {"disable-code": totp_code(seller.email)})
    assert off.status_code == 302
    db.session.refresh(seller)
    assert not two_factor.has_second_factor(seller)
    auth.logout()
    assert password_only(client, seller.email).headers["Location"] == "/dashboard"


def test_an_agent_cannot_turn_it_off(client, auth, make_user):
    agent = make_user(Role.AGENT)
    auth.login(agent.email)
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert 'id="disable"' not in page
    refused = post_form(
        client,
        "/account/two-factor",
        "/account/two-factor/disable",
        {"disable-code": totp_code(agent.email)},
    )
    assert refused.status_code == 422 and "requires two-factor" in text(refused)


def test_an_admin_resets_a_users_second_factor(app, client, auth, make_user):
    agent = make_user(Role.AGENT)
    agents_browser = app.test_client()
    AuthActions(agents_browser).login(agent.email)
    admin = make_user(Role.ADMIN)
    auth.login(admin.email)
    url = f"/admin/users/{agent.id}"
    assert "Two-factor sign-in is on." in text(client.get(url))
    response = post_form(client, url, f"{url}/reset-two-factor", {})
    assert response.status_code == 302
    db.session.refresh(agent)
    assert agent.totp_secret_encrypted is None
    assert agents_browser.get("/dashboard").status_code == 302  # signed out
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "user.two_factor_reset"))
    assert event.actor_id == admin.id and event.target_id == agent.id
    # At the next login the agent enrols again.
    password_only(agents_browser, agent.email)
    assert agents_browser.get("/dashboard").headers["Location"] == "/account/two-factor"

    own = post_form(
        client, f"/admin/users/{admin.id}", f"/admin/users/{admin.id}/reset-two-factor", {}
    )
    assert own.status_code == 422 and "your own second factor" in text(own)


def test_users_totp_enrols_headlessly_prints_the_secret_and_is_audited(runner, client, make_user):
    agent = make_user(Role.AGENT)
    result = runner.invoke(args=["users", "totp", "--email", agent.email.upper()])
    assert result.exit_code == 0, result.output
    email, secret = result.output.rstrip("\n").split("\t")
    assert email == agent.email
    password_only(client, agent.email)
    assert AuthActions(client).enter_code(pyotp.TOTP(secret).now()).status_code == 302
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.kind == "user.two_factor_provisioned")
    )
    assert event.target_id == agent.id and secret not in str(event.details)

    missing = runner.invoke(args=["users", "totp", "--email", "nobody@example.com"])
    assert missing.exit_code != 0 and "No user" in missing.output


def test_users_reset_two_factor_on_the_command_line(runner, make_user):
    agent = make_user(Role.AGENT)
    enrol_totp(agent)
    result = runner.invoke(args=["users", "reset-two-factor", "--email", agent.email])
    assert result.exit_code == 0 and result.output == f"{agent.email}\treset\n"
    db.session.refresh(agent)
    assert two_factor.must_enrol(agent)
    assert runner.invoke(args=["users", "reset-two-factor", "--email", "x@y.z"]).exit_code != 0


def test_an_owner_requires_it_of_the_whole_organisation(app, client, auth, make_user):
    owner = make_user(Role.SELLER)
    org = owner.organisation
    colleague = make_user(Role.SELLER, organisation=org)
    colleague.org_role = OrgRole.MEMBER
    db.session.commit()
    page = f"/orgs/{org.id}"
    action = f"{page}/two-factor"
    auth.login(owner.email)
    # Not before the owner has a second factor: they would lock themselves out.
    refused = post_form(client, page, action, {"two-factor-required": "1"})
    assert refused.status_code == 422
    assert "Turn on two-factor sign-in for your own account first" in text(refused)
    db.session.refresh(org)
    assert not org.requires_two_factor

    enrol_totp(owner)  # which ends the owner's sign-ins
    auth.login(owner.email)
    assert "2 of your colleagues have no second factor yet" not in text(client.get(page))
    assert "1 of your colleagues has no second factor yet" in text(client.get(page))
    done = post_form(client, page, action, {"two-factor-required": "1"})
    assert done.status_code == 302
    db.session.refresh(org)
    assert org.requires_two_factor
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.kind == "organisation.two_factor_requirement_changed")
    )
    assert event.actor_id == owner.id and event.details == {"requires_two_factor": True}
    auth.logout()

    # The colleague without one sees only the enrolment, then cannot turn it off.
    assert password_only(client, colleague.email).status_code == 302
    assert client.get("/dashboard").headers["Location"] == "/account/two-factor"
    enrol_totp(colleague)
    auth.login(colleague.email)
    refused = post_form(
        client,
        "/account/two-factor",
        "/account/two-factor/disable",
        {"disable-code": totp_code(colleague.email)},
    )
    assert refused.status_code == 422 and "Your organisation requires" in text(refused)
    # A member may not change the rule.
    assert post_form(client, page, action, {"two-factor-required": "0"}).status_code == 403
    auth.logout()

    auth.login(owner.email)
    assert post_form(client, page, action, {"two-factor-required": "0"}).status_code == 302
    db.session.refresh(org)
    assert not org.requires_two_factor
    assert not two_factor.is_required(colleague)
