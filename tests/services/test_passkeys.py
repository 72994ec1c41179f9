"""Passkeys in the service: registration and sign-in ceremonies verified on real
signatures (a software authenticator), and what is refused."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Passkey, Role
from portal.services import passkeys, two_factor
from portal.sqltypes import utcnow
from tests.webauthn_authenticator import SoftAuthenticator, b64url

ORIGIN = "http://localhost:5000"


@pytest.fixture(autouse=True)
def public_url(app):
    app.config["PUBLIC_URL"] = ORIGIN
    app.config.pop("WEBAUTHN_RP_ID", None)


def register(user, authenticator=None, name="Laptop") -> SoftAuthenticator:
    authenticator = authenticator or SoftAuthenticator(origin=ORIGIN, rp_id="localhost")
    ceremony = passkeys.registration_ceremony(user)
    passkeys.add_passkey(
        user,
        name=name,
        credential=authenticator.create(ceremony.options_json),
        challenge=ceremony.challenge,
        now=utcnow(),
    )
    db.session.commit()
    return authenticator


def sign_in(authenticator, user=None, **answer):
    ceremony = passkeys.sign_in_ceremony(user)
    return passkeys.check_passkey(
        authenticator.get(ceremony.options_json, **answer),
        challenge=ceremony.challenge,
        user=user,
        now=utcnow(),
    )


def test_a_registered_passkey_signs_in_with_and_without_the_password(make_user):
    seller = make_user(Role.SELLER)
    assert not two_factor.has_second_factor(seller)
    options = json.loads(passkeys.registration_ceremony(seller).options_json)
    assert options["rp"] == {"id": "localhost", "name": "Sellerdesk"}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert seller.email not in options["user"]["id"]  # the handle names no address
    key = register(seller)
    assert two_factor.has_second_factor(seller)
    assert sign_in(key, seller) == seller  # the second step after the password
    assert sign_in(key) == seller  # password-less: the passkey names its user
    (stored,) = passkeys.list_passkeys(seller)
    assert stored.name == "Laptop" and stored.sign_count == 2 and stored.last_used_at
    assert stored.transports == "internal"
    kinds = db.session.scalars(select(AuditEvent.kind).where(AuditEvent.target_id == seller.id))
    assert "user.passkey_added" in set(kinds)


def test_a_second_authenticator_is_excluded_from_registering_the_same_key(make_user):
    seller = make_user(Role.SELLER)
    key = register(seller)
    options = json.loads(passkeys.registration_ceremony(seller).options_json)
    assert [c["id"] for c in options["excludeCredentials"]] == [b64url(key.credential_id)]
    with pytest.raises(passkeys.PasskeyError, match="already have a passkey called 'laptop'"):
        register(seller, name="laptop")
    with pytest.raises(passkeys.PasskeyError, match="already registered"):
        register(seller, key, name="Phone")


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"origin": "https://evil.example"}, "another site's origin"),
        ({"rp_id": "evil.example"}, "another relying party"),
    ],
)
def test_answers_for_another_site_are_refused(make_user, answer, why):
    seller = make_user(Role.SELLER)
    key = register(seller)
    with pytest.raises(passkeys.PasskeyError, match="not accepted"):
        sign_in(key, seller, **answer)


def test_a_registration_for_another_origin_or_challenge_is_refused(make_user):
    seller = make_user(Role.SELLER)
    key = SoftAuthenticator(origin=ORIGIN, rp_id="localhost")
    ceremony = passkeys.registration_ceremony(seller)
    for credential, challenge in (
        (key.create(ceremony.options_json, origin="https://evil.example"), ceremony.challenge),
        (key.create(ceremony.options_json), b"another challenge"),
        ("{not json", ceremony.challenge),
    ):
        with pytest.raises(passkeys.PasskeyError, match="could not be verified"):
            passkeys.add_passkey(
                seller, name="X", credential=credential, challenge=challenge, now=utcnow()
            )
    assert passkeys.list_passkeys(seller) == []


def test_another_users_passkey_is_not_their_second_factor(make_user):
    ann, bob = make_user(Role.SELLER), make_user(Role.SELLER)
    anns_key = register(ann)
    register(bob)
    with pytest.raises(passkeys.PasskeyError):
        sign_in(anns_key, bob)


def test_the_same_answer_twice_and_a_cloned_key_are_refused(make_user):
    seller = make_user(Role.SELLER)
    key = register(seller)
    ceremony = passkeys.sign_in_ceremony(seller)
    answer = key.get(ceremony.options_json)
    passkeys.check_passkey(answer, challenge=ceremony.challenge, user=seller, now=utcnow())
    with pytest.raises(passkeys.PasskeyError):  # its counter no longer moves forward
        passkeys.check_passkey(answer, challenge=ceremony.challenge, user=seller, now=utcnow())
    key.sign_count = 0  # a copy of the key, behind the original
    with pytest.raises(passkeys.PasskeyError):
        sign_in(key, seller)


def test_password_less_needs_the_user_verified(make_user):
    seller = make_user(Role.SELLER)
    key = register(seller)
    key.verifies_user = False  # a bare security key tapped, no PIN
    with pytest.raises(passkeys.PasskeyError):
        sign_in(key)
    assert sign_in(key, seller) == seller  # after the password, presence is enough


def test_removing_the_last_required_factor_is_refused(make_user):
    agent = make_user(Role.AGENT)
    register(agent)
    (only,) = passkeys.list_passkeys(agent)
    with pytest.raises(passkeys.PasskeyError, match="only second factor"):
        passkeys.remove_passkey(agent, only.id, actor=agent)
    register(agent, name="Phone")
    assert passkeys.remove_passkey(agent, only.id, actor=agent) == "Laptop"
    assert passkeys.remove_passkey(agent, only.id, actor=agent) is None  # gone already


def test_an_admin_reset_removes_the_passkeys_too(make_user):
    seller, admin = make_user(Role.SELLER), make_user(Role.ADMIN)
    register(seller)
    two_factor.reset_second_factor(seller, actor=admin)
    db.session.commit()
    assert db.session.scalars(select(Passkey)).all() == []
    assert not two_factor.has_second_factor(seller)
