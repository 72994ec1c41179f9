"""Tenant isolation over every route: a matrix of endpoint × role × whose objects.

The cases come from `app.url_map`, not from a hand list: every endpoint (and every
word of an `<any(...)>` parameter, and every method) is one row, and a row needs an
entry in ROUTES (tests/security/routes.py) saying who may use it and which objects fill
its URL. An endpoint without an entry fails `test_every_route_has_an_entry`, so a new
page cannot ship unchecked.

Roles: anonymous, a seller of A, a seller of B, an agent assigned to A, an agent
assigned to nobody, an admin. Objects: A's, B's, shared ones ("G") and mixed pairs
(A's thread with B's message). Each cell checks:

- the status: 200, a redirect, the login page, 403, 404, or "invalid" (400/422:
  the request got through the access check and only the empty form was refused);
- no leak: the body never contains the marker of an organisation the role may not
  see (`betamark` for A's people, either marker for the unassigned agent);
- a refused request changes nothing in the database, and a GET changes nothing
  beyond what its entry allows (an export writes an audit event);
- an allowed page about A's objects shows A's marker (the cell tested something).
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from werkzeug.routing import AnyConverter

from tests.helpers import csrf_token_from
from tests.security import routes
from tests.security.conftest import record
from tests.security.routes import (
    CASES,
    DENIED,
    ENDPOINTS,
    OK,
    ROUTES,
    Case,
    Entry,
    build_url,
    expected,
    outcome,
    url_map_app,
)
from tests.security.world import MARKS, ROLES, SEES, Matrix, fingerprint, restore


def test_every_route_has_an_entry():
    record("route matrix: endpoints", len(ENDPOINTS))
    record("route matrix: roles", len(ROLES))
    record("route matrix: cases (endpoint, method, <any> word)", len(CASES))
    missing = sorted(ENDPOINTS - ROUTES.keys())
    assert not missing, (
        f"endpoints without an entry in ROUTES ({routes.__file__}): {missing}. Say who may use "
        "each one and which objects fill its URL."
    )
    stale = sorted(ROUTES.keys() - ENDPOINTS)
    assert not stale, f"ROUTES has entries for endpoints that no longer exist: {stale}"


def test_entries_name_every_url_parameter():
    app = url_map_app()
    for rule in app.url_map.iter_rules():
        entry = ROUTES.get(rule.endpoint)
        if entry is None:
            continue  # reported by test_every_route_has_an_entry
        anys = {a for a, c in rule._converters.items() if isinstance(c, AnyConverter)}
        named = set(entry.args) | set(entry.values) | anys
        assert set(rule.arguments) == named, (rule.endpoint, rule.arguments, named)
        assert set(entry.formats) <= set(entry.args) | set(entry.query), rule.endpoint
        for owners in entry.owners:
            assert len(owners) == len(entry.args) + len(entry.query) or len(owners) == 1


# --- running one cell ---------------------------------------------------------------------


def _owners_of(entry: Entry) -> list[str]:
    if not entry.args and not entry.query:
        return [""]
    return list(entry.owners)


def _send(client: FlaskClient, method: str, url: str, role: str):
    if method == "GET":
        return client.get(url)
    # A valid CSRF token, so the answer comes from the access check and not from CSRF.
    page = client.get("/login" if role == "anonymous" else "/dashboard")
    token = csrf_token_from(page.get_data(as_text=True))
    return client.open(url, method=method, data={"csrf_token": token})


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", [c for c in CASES if c.endpoint in ROUTES], ids=lambda c: c.id)
def test_route_cell(matrix: Matrix, case: Case, role: str):
    entry = ROUTES[case.endpoint]
    client = matrix.clients[role]
    cells = [(owners, expected(entry, role, owners)) for owners in _owners_of(entry)]
    # Refusals first: they must leave the world exactly as it is for the allowed ones.
    cells.sort(key=lambda cell: not (cell[1] <= DENIED))
    problems = []
    for owners, expect in cells:
        url = build_url(matrix, case, entry, owners)
        denied = expect <= DENIED
        response = _send(client, case.method, url, role)
        body = response.get_data(as_text=True) + response.headers.get("Location", "")
        response.close()
        got = outcome(response)
        where = f"{role} {case.method} {url} (objects of {owners or '-'})"
        record("route matrix: cells")
        if got not in expect:
            problems.append(f"{where}: got {got}, expected {' or '.join(sorted(expect))}")
        for owner, mark in MARKS.items():
            if owner not in SEES[role] and mark in body:
                problems.append(f"{where}: shows {owner}'s data ({mark!r}) to {role}")
        first = owners.replace("G", "")[-1:] if owners else ""
        shown = case.method == "GET" and got == OK and first and entry.mark
        if shown and MARKS[first] not in body:
            problems.append(f"{where}: allowed, but the page does not show {first}'s object")
        after = fingerprint()
        changed = sorted(t for t in after if after[t] != matrix.digest[t])
        if changed:
            may_change = case.method != "GET" and not denied
            if not may_change and set(changed) - (set() if denied else entry.get_writes):
                kind = "refused request" if denied else "GET"
                problems.append(f"{where}: a {kind} changed {changed}")
            restore(matrix.rows)
        # Logging out, and leaving the organisation (which closes the account and signs
        # the browser out), drop the client's sign-in.
        if case.endpoint == "auth.logout" or (
            case.endpoint == "orgs.leave" and client.get("/dashboard").status_code != 200
        ):
            matrix.log_in_again(role)
    assert not problems, "\n".join(problems)
