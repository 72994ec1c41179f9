"""Sign-ins kept on the server: start, resolve, activity, listing, ending, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Role, UserSession
from portal.services import sessions as session_service
from portal.services import users as user_service
from portal.sqltypes import utcnow

YEAR = timedelta(days=365)


@pytest.fixture
def seller(make_user):
    return make_user(Role.SELLER)


def sign_in(user, *, remember: bool = False, now=None, ip: str = "192.0.2.7") -> UserSession:
    row = session_service.start_session(
        user,
        remember=remember,
        remember_for=YEAR,
        ip_address=ip,
        user_agent="Mozilla/5.0 (X11; Linux x86_64) " + "x" * 400,
        now=now or utcnow(),
    )
    db.session.commit()
    return row


def test_a_sign_in_is_named_by_a_token_of_which_only_the_hash_is_kept(seller):
    row = sign_in(seller, remember=True)
    token = seller.get_id()
    assert seller.current_session is row and len(token) >= 43
    assert row.token_hash == session_service.token_digest(token) != token
    assert row.is_remembered and row.ip_address == "192.0.2.7"
    assert len(row.user_agent) == 255  # cut to the column
    # Each sign-in gets its own token.
    other = sign_in(seller)
    assert seller.get_id() != token and other.token_hash != row.token_hash


def test_resolve_finds_the_user_of_a_live_sign_in_only(seller, make_user):
    sign_in(seller)
    token = seller.get_id()
    db.session.expire_all()
    user = session_service.resolve_session(token, now=utcnow())
    assert user == seller and user.get_id() == token
    for wrong in (None, "", token + "x", token[:-1], str(seller.id), "x" * 5000):
        assert session_service.resolve_session(wrong, now=utcnow()) is None


def test_a_user_without_a_sign_in_has_no_id(seller):
    with pytest.raises(RuntimeError, match="no sign-in"):
        seller.get_id()


def test_an_inactive_users_sign_in_resolves_to_nobody(seller):
    sign_in(seller)
    token = seller.get_id()
    seller.is_active = False  # as if set behind the service's back
    db.session.commit()
    assert session_service.resolve_session(token, now=utcnow()) is None


def test_sign_ins_expire(seller):
    now = utcnow()
    browser = sign_in(seller, now=now)
    browser_token = seller.get_id()
    remembered = sign_in(seller, remember=True, now=now)
    remembered_token = seller.get_id()
    assert browser.expires_at == now + session_service.IDLE_LIMIT
    assert remembered.expires_at == now + YEAR
    later = now + session_service.IDLE_LIMIT
    assert session_service.resolve_session(browser_token, now=later) is None
    assert session_service.resolve_session(remembered_token, now=later) == seller
    assert session_service.resolve_session(remembered_token, now=now + YEAR) is None
    assert session_service.list_sessions(seller, now=later) == [remembered]


def test_activity_is_noted_at_most_once_a_minute_and_keeps_a_browser_session(seller):
    now = utcnow()
    browser = sign_in(seller, now=now)
    remembered = sign_in(seller, remember=True, now=now)
    soon = now + session_service.ACTIVITY_RESOLUTION - timedelta(seconds=1)
    assert not session_service.note_activity(browser, now=soon, ip_address="198.51.100.1")
    assert browser.last_seen_at == now and browser.ip_address == "192.0.2.7"
    later = now + timedelta(days=20)
    assert session_service.note_activity(browser, now=later, ip_address="198.51.100.1")
    assert session_service.note_activity(remembered, now=later, ip_address="198.51.100.1")
    assert browser.last_seen_at == later and browser.ip_address == "198.51.100.1"
    # A browser session lasts IDLE_LIMIT past its last request; a remembered one does not
    # outlive its cookie.
    assert browser.expires_at == later + session_service.IDLE_LIMIT
    assert remembered.expires_at == now + YEAR


def test_list_and_end_sign_ins(seller, make_user):
    other_user = make_user(Role.AGENT)
    now = utcnow()
    first = sign_in(seller, now=now - timedelta(hours=2))
    second = sign_in(seller, now=now - timedelta(hours=1))
    third = sign_in(seller, now=now)
    sign_in(other_user)
    assert session_service.list_sessions(seller, now=now) == [third, second, first]

    # Only the user's own: another user's id (or an ended one) ends nothing.
    assert not session_service.end_session(other_user, second.id)
    assert session_service.end_session(seller, second.id)
    assert not session_service.end_session(seller, second.id)
    db.session.commit()
    assert session_service.list_sessions(seller, now=now) == [third, first]

    assert session_service.end_sessions(seller, keep=third) == 1
    db.session.commit()
    assert session_service.list_sessions(seller, now=now) == [third]
    assert session_service.end_sessions(seller) == 1
    db.session.commit()
    assert session_service.list_sessions(seller, now=now) == []
    assert len(session_service.list_sessions(other_user, now=now)) == 1


def test_expired_sign_ins_are_deleted_at_the_next_login(seller, make_user):
    long_ago = utcnow() - YEAR - timedelta(days=1)
    sign_in(seller, now=long_ago)
    sign_in(seller, remember=True, now=long_ago)
    kept = sign_in(seller, remember=True, now=utcnow() - timedelta(days=300))
    count = select(func.count()).select_from(UserSession).where(UserSession.user_id == seller.id)
    assert db.session.scalar(count) == 2  # the browser session ended 31 days after it began
    sign_in(make_user(Role.ADMIN))  # anyone's login: the remembered one's year is over too
    assert db.session.scalars(
        select(UserSession.id).where(UserSession.user_id == seller.id)
    ).all() == [kept.id]


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(
            lambda user: user_service.change_password(
                user, "amber kettle tundra violin", actor=user
            ),
            id="pw",
        ),
        pytest.param(lambda user: user_service.reset_password(user, actor=None), id="reset"),
        pytest.param(lambda user: user_service.deactivate_user(user, actor=None), id="deactivate"),
    ],
)
def test_account_changes_end_every_sign_in(seller, make_user, end):
    sign_in(seller)
    sign_in(seller, remember=True)
    bystander = make_user(Role.SELLER)
    sign_in(bystander)
    end(seller)
    db.session.commit()
    assert session_service.list_sessions(seller, now=utcnow()) == []
    assert len(session_service.list_sessions(bystander, now=utcnow())) == 1
