"""The second factor's service: TOTP codes (RFC 6238) each accepted once, recovery codes,
trusted browsers, and what a change of factor ends. The clock is passed in."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, RecoveryCode, Role, TrustedBrowser, UserSession
from portal.services import sessions as session_service
from portal.services import two_factor

NOW = datetime(2026, 12, 5, 12, 0, 10, tzinfo=UTC)
STEP = timedelta(seconds=30)


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def sign_in(user, now=NOW) -> UserSession:
    row = session_service.start_session(
        user, remember=False, remember_for=STEP, ip_address="", user_agent="", now=now
    )
    db.session.commit()
    return row


def enable(user, now=NOW, keep=None) -> tuple[str, list[str]]:
    secret = two_factor.new_totp_secret()
    codes = two_factor.enable_totp(user, secret, code_at(secret, now), now=now, keep=keep)
    db.session.commit()
    return secret, codes


def kinds() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id)))


def test_the_secret_matches_rfc_6238_and_the_app_reads_it_from_the_uri(make_user):
    user = make_user(email="ana@example.com")
    secret = two_factor.new_totp_secret()
    assert len(secret) == 32 and pyotp.TOTP(secret).byte_secret()  # 160 bits, base32
    uri = two_factor.provisioning_uri(user, secret)
    assert uri.startswith("otpauth://totp/Sellerdesk:ana%40example.com?")
    assert f"secret={secret}" in uri and "issuer=Sellerdesk" in uri
    # RFC 6238's SHA-1 test vector (appendix B: 94287082 at T=59), its last 6 digits.
    rfc_secret = base64.b32encode(b"12345678901234567890").decode()
    at_59 = datetime.fromtimestamp(59, UTC)
    two_factor.enable_totp(user, rfc_secret, "287082", now=at_59, keep=None)
    assert two_factor.has_second_factor(user)


def test_enrolment_needs_a_right_code_and_gives_ten_single_use_recovery_codes(make_user):
    user = make_user()
    secret = two_factor.new_totp_secret()
    wrong = str((int(code_at(secret, NOW)) + 1) % 1_000_000).zfill(6)
    with pytest.raises(two_factor.TwoFactorError, match="does not match"):
        two_factor.enable_totp(user, secret, wrong, now=NOW, keep=None)
    assert not two_factor.has_second_factor(user)

    codes = two_factor.enable_totp(user, secret, code_at(secret, NOW), now=NOW, keep=None)
    db.session.commit()
    assert two_factor.has_second_factor(user) and len(set(codes)) == 10
    stored = db.session.scalars(select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10 and not set(codes) & set(stored)  # hashes only
    assert "user.two_factor_enabled" in kinds()


def test_a_code_works_once_even_within_its_window(make_user):
    user = make_user()
    secret, _ = enable(user)
    # The enrolment's own code is used up.
    assert two_factor.check_code(user, code_at(secret, NOW), now=NOW) is None
    later = NOW + STEP
    code = code_at(secret, later)
    assert two_factor.check_code(user, code, now=later) == "totp"
    assert two_factor.check_code(user, code, now=later + timedelta(seconds=5)) is None
    # One step either side is accepted (clock drift) but nothing older than the last used.
    assert two_factor.check_code(user, code_at(secret, later + STEP), now=later) == "totp"
    assert two_factor.check_code(user, code_at(secret, later), now=later) is None
    far = later + 10 * STEP
    assert two_factor.check_code(user, code_at(secret, far + 2 * STEP), now=far) is None
    assert two_factor.check_code(user, code_at(secret, far - 2 * STEP), now=far) is None
    assert two_factor.check_code(user, code_at(secret, far - STEP), now=far) == "totp"
    for junk in ("", "12345", "1234567", "abcdef", "12 34 5x"):
        assert two_factor.check_code(user, junk, now=far) is None


def test_a_recovery_code_works_once_spaced_or_cased_as_typed(make_user):
    user = make_user()
    _, codes = enable(user)
    typed = " " + codes[0].upper().replace("-", " ") + " "
    assert two_factor.check_code(user, typed, now=NOW) == "recovery code"
    assert two_factor.check_code(user, codes[0], now=NOW) is None
    assert two_factor.recovery_codes_left(user) == 9
    assert "user.recovery_code_used" in kinds()

    new = two_factor.regenerate_recovery_codes(user, codes[1], now=NOW)
    db.session.commit()
    assert two_factor.check_code(user, codes[2], now=NOW) is None  # the old ones are gone
    assert two_factor.check_code(user, new[0], now=NOW) == "recovery code"
    with pytest.raises(two_factor.TwoFactorError):
        two_factor.regenerate_recovery_codes(user, "000000", now=NOW)


def test_a_change_of_factor_ends_the_other_sign_ins_and_trusted_browsers(make_user):
    user = make_user()
    here, there = sign_in(user), sign_in(user).id
    token = two_factor.trust_browser(user, now=NOW)
    secret, _ = enable(user, keep=here)
    assert db.session.scalars(select(UserSession.id)).all() == [here.id] != [there]
    assert not two_factor.is_trusted(user, token, now=NOW)

    # Turning it off: a current code, and again the others end.
    sign_in(user)
    token = two_factor.trust_browser(user, now=NOW)
    later = NOW + STEP
    two_factor.disable_two_factor(user, code_at(secret, later), now=later, keep=here)
    db.session.commit()
    assert not two_factor.has_second_factor(user)
    assert db.session.scalars(select(UserSession.id)).all() == [here.id]
    assert db.session.scalars(select(RecoveryCode)).all() == []
    assert not two_factor.is_trusted(user, token, now=NOW)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.AGENT])
def test_admins_and_agents_must_enrol_and_cannot_turn_it_off(make_user, role):
    user = make_user(role)
    assert two_factor.must_enrol(user)
    secret, _ = enable(user)
    assert not two_factor.must_enrol(user)
    later = NOW + STEP
    with pytest.raises(two_factor.TwoFactorError, match="requires"):
        two_factor.disable_two_factor(user, code_at(secret, later), now=later, keep=None)
    assert two_factor.has_second_factor(user)


def test_sellers_may_go_without(make_user):
    assert not two_factor.must_enrol(make_user(Role.SELLER))


def test_a_trusted_browser_lasts_30_days_and_signing_out_everywhere_revokes_it(make_user):
    user, other = make_user(), make_user()
    token = two_factor.trust_browser(user, now=NOW)
    db.session.commit()
    assert two_factor.is_trusted(user, token, now=NOW + timedelta(days=29))
    assert not two_factor.is_trusted(user, token, now=NOW + timedelta(days=30))
    assert not two_factor.is_trusted(other, token, now=NOW)  # it names one user
    assert not two_factor.is_trusted(user, token + "x", now=NOW)
    sign_in(user)
    session_service.end_sessions(user)
    db.session.commit()
    assert not two_factor.is_trusted(user, token, now=NOW)


def test_an_admin_reset_removes_the_factor_ends_every_sign_in_and_is_audited(make_user):
    admin, agent = make_user(Role.ADMIN), make_user(Role.AGENT)
    enable(agent)
    sign_in(agent)
    two_factor.trust_browser(agent, now=NOW)
    two_factor.reset_second_factor(agent, actor=admin)
    db.session.commit()
    assert two_factor.must_enrol(agent)
    assert db.session.scalars(select(UserSession)).all() == []
    assert db.session.scalars(select(TrustedBrowser)).all() == []
    assert db.session.scalars(select(RecoveryCode)).all() == []
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "user.two_factor_reset"))
    assert event.actor_id == admin.id and event.target_id == agent.id
    with pytest.raises(two_factor.TwoFactorError, match="your own"):
        two_factor.reset_second_factor(admin, actor=admin)


def test_provisioning_prints_a_secret_that_works_and_ends_sign_ins(make_user):
    agent = make_user(Role.AGENT)
    sign_in(agent)
    secret = two_factor.provision_totp(agent, now=NOW, actor=None)
    db.session.commit()
    assert two_factor.has_second_factor(agent)
    assert db.session.scalars(select(UserSession)).all() == []
    assert two_factor.check_code(agent, code_at(secret, NOW), now=NOW) == "totp"
    assert "user.two_factor_provisioned" in kinds()
