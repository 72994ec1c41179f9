"""Lockout per account (services/lockout.py): after five failed logins for an address,
a growing delay, told to the user, the same for addresses with and without an account,
kept in the database so two app instances (gunicorn workers) share it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal import create_app
from portal.extensions import db
from portal.models import AuditEvent, LoginLockout
from portal.services import lockout
from portal.sqltypes import utcnow
from tests.helpers import PASSWORD, AuthActions, FreshContextClient

WRONG = "wrong password, sorry"


@pytest.fixture(autouse=True)
def loose_ip_limit(app):
    app.config["LOGIN_RATE_LIMIT"] = "1000 per minute"  # the per-IP limit has its own tests


def fail(auth, email, times):
    return [auth.login(email, password=WRONG) for _ in range(times)]


def page_text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


def end_the_wait():
    db.session.execute(update(LoginLockout).values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def test_five_failures_lock_the_account_and_say_until_when(app, auth, make_user):
    user = make_user()
    responses = fail(auth, user.email, 5)
    assert all(r.status_code == 200 for r in responses)
    assert "Too many failed logins" not in page_text(responses[3])
    fifth = page_text(responses[4])
    assert "Wrong e-mail or password. Too many failed logins for this e-mail address" in fifth
    assert re.search(r"try again in 30 seconds \(at \d\d:\d\d:\d\d UTC\)", fifth)

    # Even the right password waits now, and says so next to the field.
    refused = auth.login(user.email)
    assert refused.status_code == 429
    assert "try again in" in page_text(refused)
    assert "/dashboard" not in refused.headers.get("Location", "")
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == "user.locked_out"))
    assert event.target_id == user.id

    end_the_wait()
    assert auth.login(user.email).status_code == 302  # and a success starts the count again
    assert db.session.scalars(select(LoginLockout)).all() == []


def test_the_delay_grows_with_each_further_failure(app, make_user):
    email, now = "ana@example.com", utcnow()
    delays = []
    for n in range(1, 13):
        until = lockout.record_failure(email, now=now + timedelta(hours=n))
        delays.append(None if until is None else until - (now + timedelta(hours=n)))
    db.session.commit()
    seconds = [d.total_seconds() if d else None for d in delays]
    assert seconds[:4] == [None] * 4
    assert seconds[4:] == [30, 60, 120, 240, 480, 960, 1920, 3600]  # at most an hour


def test_failures_a_day_apart_start_the_count_again(app):
    now = utcnow()
    for n in range(4):
        lockout.record_failure("ana@example.com", now=now + timedelta(minutes=n))
    later = now + lockout.FORGET_AFTER + timedelta(hours=1)
    assert lockout.record_failure("ana@example.com", now=later) is None
    assert db.session.scalar(select(LoginLockout.failures)) == 1
    assert lockout.forget_old(now=later + lockout.FORGET_AFTER + timedelta(minutes=1)) == 1


def test_an_address_without_an_account_is_answered_alike(app, auth, make_user):
    user = make_user()
    known = [page_text(r) for r in fail(auth, user.email, 6)]
    unknown = [page_text(r) for r in fail(auth, "nobody@example.com", 6)]

    def words(text: str) -> str:
        text = text.replace(user.email, "E").replace("nobody@example.com", "E")
        text = re.sub(r'name="csrf_token"[^>]*>', "", text)
        return re.sub(r"\d\d:\d\d:\d\d", "T", text)

    assert [words(t) for t in known] == [words(t) for t in unknown]
    # Only the hash of an address is kept, never the address itself.
    assert all("@" not in row.key for row in db.session.scalars(select(LoginLockout)))


def test_two_app_instances_share_the_lockout(app, app_config, client, make_user):
    user = make_user()
    fail(AuthActions(client), user.email, 3)
    second_app = create_app({**app_config, "LOGIN_RATE_LIMIT": "1000 per minute"})
    second_app.test_client_class = FreshContextClient
    try:
        second = AuthActions(second_app.test_client())
        fail(second, user.email, 2)
        assert second.login(user.email, password=PASSWORD).status_code == 429
        assert AuthActions(client).login(user.email).status_code == 429
    finally:
        with second_app.app_context():
            db.engine.dispose()
