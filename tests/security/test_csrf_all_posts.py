"""CSRF: every state-changing route refuses a request without a valid token.

The routes come from the URL map (the route matrix's cases): every POST (and any
other unsafe method) is sent by a role that may use it, with the token missing,
with a token of another session (what a cross-site attacker could hold: their own),
and with garbage. Each must be refused with the "Form expired" page and change
nothing; the same request with the session's own token is not refused by CSRF.
"""

from __future__ import annotations

import pytest

from portal.extensions import csrf
from tests.helpers import csrf_token_from
from tests.security.conftest import record
from tests.security.routes import ALLOWED, CASES, MACHINE_POSTS, ROUTES, build_url, expected
from tests.security.world import Matrix, fingerprint

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: Who sends each request: the first role the matrix allows it for.
PREFERENCE = ("admin", "owner_a", "member_a", "agent_a", "anonymous", "owner_b", "agent_none")
#: The machine posts (HTTP ingress) are CSRF-exempt by design: the route matrix checks
#: that they refuse every unsigned request, and tests/portal/test_inbound_http.py the rest.
POST_CASES = [
    c
    for c in CASES
    if c.method in UNSAFE and c.endpoint in ROUTES and c.endpoint not in MACHINE_POSTS
]


def _sender(endpoint: str) -> tuple[str, str]:
    entry = ROUTES[endpoint]
    owners = entry.owners[0] if entry.owners else ""
    for role in PREFERENCE:
        if expected(entry, role, owners) <= ALLOWED:
            return role, owners
    raise AssertionError(f"no role may use {endpoint}: check its entry in ROUTES")


def _own_token(matrix: Matrix, role: str) -> str:
    page = matrix.clients[role].get("/login" if role == "anonymous" else "/dashboard")
    return csrf_token_from(page.get_data(as_text=True))


def _foreign_token(matrix: Matrix) -> str:
    # A valid token, but of another browser's session: the attacker's own.
    with matrix.app.test_client() as attacker:
        return csrf_token_from(attacker.get("/login").get_data(as_text=True))


def test_csrf_protection_is_on_for_every_unsafe_method(matrix: Matrix):
    config = matrix.app.config
    assert config.get("WTF_CSRF_ENABLED", True) and config.get("WTF_CSRF_CHECK_DEFAULT", True)
    assert set(config.get("WTF_CSRF_METHODS", UNSAFE)) >= UNSAFE
    assert not csrf._exempt_blueprints
    exempt = []
    for rule in matrix.app.url_map.iter_rules():
        view = matrix.app.view_functions[rule.endpoint]
        if f"{view.__module__}.{view.__name__}" in csrf._exempt_views and rule.methods & UNSAFE:
            exempt.append(rule.endpoint)
    assert set(exempt) <= MACHINE_POSTS, f"CSRF-exempt routes that change state: {exempt}"


def test_there_are_post_routes_to_check():
    record("csrf: unsafe routes", len(POST_CASES))
    assert len(POST_CASES) >= 40


@pytest.mark.parametrize("case", POST_CASES, ids=lambda c: c.id)
def test_post_without_a_valid_token_is_refused_and_changes_nothing(matrix: Matrix, case):
    role, owners = _sender(case.endpoint)
    entry = ROUTES[case.endpoint]
    client = matrix.clients[role]
    url = build_url(matrix, case, entry, owners)
    variants = {
        "missing": {},
        "another session's": {"csrf_token": _foreign_token(matrix)},
        "garbage": {"csrf_token": "IjEyMyI.Zz9xYw.not-a-real-signature"},
        "empty": {"csrf_token": ""},
    }
    before = fingerprint()
    problems = []
    for name, data in variants.items():
        response = client.open(url, method=case.method, data=data)
        body = response.get_data(as_text=True)
        record("csrf: refused requests")
        if response.status_code != 400 or "Form expired" not in body:
            problems.append(f"{role} {case.method} {url} with {name} token: {response.status_code}")
    if fingerprint() != before:
        problems.append(f"{role} {case.method} {url}: a refused request changed the database")
    if role != "anonymous":
        # Refused logouts included: the session is still there.
        assert client.get("/dashboard").status_code == 200, f"{role} lost the session"

    # The control: the same request with the session's own token gets past CSRF.
    response = client.open(url, method=case.method, data={"csrf_token": _own_token(matrix, role)})
    if "Form expired" in response.get_data(as_text=True):
        problems.append(f"{role} {case.method} {url}: refused even with a valid token")
    if case.endpoint == "auth.logout":
        matrix.log_in_again(role)
    matrix.reset()
    assert not problems, "\n".join(problems)
