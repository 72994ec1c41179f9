"""The password rules (services/passwords.py) and hash upgrades, through the account
services that apply them; the forms' messages are in tests/portal/test_auth.py."""

from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Role
from portal.services import users as user_service
from portal.services.passwords import needs_rehash, password_problem

GOOD = "quiet lantern orbit mosaic"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-one", "Use at least 12 characters."),
        ("x" * 201, "Use at most 200 characters."),
        ("password1234", "This is a very common password."),
        ("aaaaaaaaaaaa", 'Repeats like "aaa" are easy to guess.'),
        ("qwertyuiopas", "similar to a commonly used password"),
        ("123456789012", "similar to a commonly used password"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password, reason):
    problem = password_problem(password)
    assert problem is not None and reason in problem
    assert problem.endswith(".")  # a sentence for the field, with a hint to act on


@pytest.mark.parametrize("password", [GOOD, "correct horse battery", "Tr0ub4dor&3-lamp"])
def test_strong_passwords_pass(password):
    assert password_problem(password) is None


def test_a_password_built_from_the_persons_own_details_is_weak():
    password = "acmetrading2026"
    assert password_problem(password) is None  # strong for someone else
    assert password_problem(password, about=["ana@acmetrading.example", "Acme Trading"])


def test_only_the_start_of_a_very_long_password_is_estimated():
    assert password_problem(GOOD + " " + "a" * 150) is None  # and it does not take seconds


def test_account_services_apply_the_rules(app, make_org):
    org = make_org("Northwind Goods")
    with pytest.raises(user_service.AccountError, match="Password refused: Use at least 12"):
        user_service.create_user("ana@example.com", "short-one", role=Role.SELLER, organisation=org)
    with pytest.raises(user_service.AccountError, match="Password refused"):
        user_service.create_user(
            "ana@example.com", "northwindgoods", role=Role.SELLER, organisation=org
        )
    user = user_service.create_user("ana@example.com", GOOD, role=Role.SELLER, organisation=org)
    with pytest.raises(user_service.AccountError, match="Password refused"):
        user_service.change_password(user, "password1234", actor=user)
    user_service.change_password(user, "amber kettle tundra violin", actor=user)


def test_a_hash_of_an_older_scheme_keeps_working_and_is_upgraded_at_sign_in(app, make_user):
    user = make_user(Role.AGENT, email="old@example.com")
    old = generate_password_hash("correct horse battery", method="pbkdf2:sha256:600000")
    user.password_hash = old
    db.session.commit()
    assert needs_rehash(old)

    assert user_service.authenticate("old@example.com", "wrong password") is None
    assert user.password_hash == old  # only a password that matched is rehashed
    assert user_service.authenticate("old@example.com", "correct horse battery") == user
    db.session.commit()
    assert user.password_hash.startswith("scrypt:") and not needs_rehash(user.password_hash)
    assert user_service.authenticate("old@example.com", "correct horse battery") == user
