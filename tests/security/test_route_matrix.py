"""Tenant isolation over every route: a matrix of endpoint × role × whose objects.

The cases come from `app.url_map`, not from a hand list: every endpoint (and every
word of an `<any(...)>` parameter, and every method) is one row, and a row needs an
entry in ROUTES saying who may use it and which objects fill its URL. An endpoint
without an entry fails `test_every_route_has_an_entry`, so a new page cannot ship
unchecked.

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

import itertools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import url_for
from flask.testing import FlaskClient
from werkzeug.routing import AnyConverter

from portal import create_app
from tests.conftest import _test_config, csrf_token_from
from tests.security.conftest import record
from tests.security.world import MARKS, ROLES, SEES, Matrix, fingerprint, restore

# Outcomes, as `outcome()` reads a response.
OK = "200"
REDIRECT = "redirect"  # 302/303 elsewhere than the login page
LOGIN = "login"  # a redirect to /login?next=…
FORBIDDEN = "403"
NOT_FOUND = "404"
INVALID = "invalid"  # 400 or 422: past the access check, the (empty) form refused
ALLOWED = frozenset({OK, REDIRECT, INVALID})
DENIED = frozenset({LOGIN, FORBIDDEN, NOT_FOUND})

Expect = frozenset[str]
Policy = Callable[[str, str], Expect]


def _is(role: str, kind: str) -> bool:
    return role.startswith(kind)


# --- policies: (role, owner of the first object) -> acceptable outcomes -------------------


def public(ok: Expect = frozenset({OK})) -> Policy:
    return lambda role, owner: ok


def guests(ok: Expect = frozenset({OK})) -> Policy:
    """Login and sign-up: for anonymous users; a logged-in user is sent to the dashboard."""
    return lambda role, owner: ok if role == "anonymous" else frozenset({REDIRECT})


def logged_in(ok: Expect = frozenset({OK})) -> Policy:
    return lambda role, owner: frozenset({LOGIN}) if role == "anonymous" else ok


def admin_only(ok: Expect = frozenset({OK})) -> Policy:
    def policy(role: str, owner: str) -> Expect:
        if role == "anonymous":
            return frozenset({LOGIN})
        return ok if role == "admin" else frozenset({FORBIDDEN})

    return policy


def roles_only(*kinds: str, ok: Expect = frozenset({OK})) -> Policy:
    def policy(role: str, owner: str) -> Expect:
        if role == "anonymous":
            return frozenset({LOGIN})
        return ok if any(_is(role, k) for k in kinds) else frozenset({FORBIDDEN})

    return policy


def tenant(action: str, ok: Expect = frozenset({OK})) -> Policy:
    """A tenant object: invisible -> 404; visible -> `ok` if the role may `action`, else 403.

    read: everyone who sees it; work (status, tags, notes, replies): agents and admins;
    manage (tokens, setup, reply permission): the organisation's sellers and admins.
    """

    def policy(role: str, owner: str) -> Expect:
        if role == "anonymous":
            return frozenset({LOGIN})
        if owner not in SEES[role]:
            return frozenset({NOT_FOUND})
        allowed = {
            "read": True,
            "work": _is(role, "agent") or role == "admin",
            "manage": _is(role, "seller") or role == "admin",
        }[action]
        return ok if allowed else frozenset({FORBIDDEN})

    return policy


def canned(action: str, ok: Expect = frozenset({OK})) -> Policy:
    """Canned replies: global ones ("G") are read by all and changed by admins only;
    an organisation's are read and changed by everyone who sees the organisation."""

    def policy(role: str, owner: str) -> Expect:
        if role == "anonymous":
            return frozenset({LOGIN})
        if owner == "G":
            return ok if action == "read" or role == "admin" else frozenset({FORBIDDEN})
        return ok if owner in SEES[role] else frozenset({NOT_FOUND})

    return policy


def canned_new(role: str, owner: str) -> Expect:
    if role == "anonymous":
        return frozenset({LOGIN})
    # Sellers for their organisation, agents for the ones they work for, admins for all.
    return frozenset({FORBIDDEN}) if role == "agent_none" else ALLOWED


@dataclass(frozen=True)
class Entry:
    """Who may use an endpoint, and how to build its URL from the world's objects.

    args/query: URL (or query-string) parameter -> name of a world object; the cell's
    owners say whose object each one is, in order. owners: the owner combinations to
    try; two-letter ones pair objects of different owners (A's thread, B's message).
    values: fixed values for the other parameters. get_writes: tables a GET may change.
    mark: whether an allowed GET must show the owner's marker.
    """

    policy: Policy
    args: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    owners: tuple[str, ...] = ()
    values: dict[str, str] = field(default_factory=dict)
    #: How an object's id is written into a parameter (default: the id itself).
    formats: dict[str, str] = field(default_factory=dict)
    get_writes: frozenset[str] = frozenset()
    mark: bool = True


AB = ("A", "B")
PAIRS = ("AA", "BB", "AB", "BA")
READ, WORK, MANAGE = tenant("read"), tenant("work", ALLOWED), tenant("manage", ALLOWED)
ADMIN_GET, ADMIN_POST = admin_only(), admin_only(ALLOWED)
MESSAGE = {"thread_id": "thread", "message_id": "inbound"}

ROUTES: dict[str, Entry] = {
    # --- public and account pages
    "static": Entry(public(), values={"filename": "css/app.css"}),
    "main.index": Entry(public(frozenset({REDIRECT}))),
    "main.healthz": Entry(public(frozenset({OK, "503"}))),
    "main.dashboard": Entry(logged_in()),
    "auth.login": Entry(guests(frozenset({OK, INVALID}))),
    "auth.signup": Entry(guests(frozenset({OK, INVALID}))),
    "auth.logout": Entry(public(frozenset({REDIRECT}))),
    "auth.change_password": Entry(logged_in(frozenset({OK, INVALID}))),
    # --- organisations
    "orgs.detail": Entry(READ, args={"org_id": "org"}, owners=AB),
    "orgs.audit": Entry(READ, args={"org_id": "org"}, owners=AB),
    "orgs.export_messages": Entry(
        READ, args={"org_id": "org"}, owners=AB, get_writes=frozenset({"audit_events"})
    ),
    "orgs.reply_permission": Entry(MANAGE, args={"org_id": "org"}, owners=AB),
    # --- channels
    "channels.index": Entry(logged_in()),
    "channels.new": Entry(roles_only("seller", ok=ALLOWED)),
    "channels.detail": Entry(READ, args={"channel_id": "channel"}, owners=AB),
    "channels.submit_token": Entry(MANAGE, args={"channel_id": "channel"}, owners=AB),
    "channels.confirm_steps": Entry(MANAGE, args={"channel_id": "channel"}, owners=AB),
    "channels.report_revoked": Entry(MANAGE, args={"channel_id": "channel"}, owners=AB),
    # "Authorise with Amazon" (SP-API): starting and revoking manage the channel (its
    # sellers and admins are redirected: to Amazon's consent page, or back to the channel
    # with "nothing to revoke"); the callback is for sellers and admins, and a forged
    # state names a channel but must not reach it (nor say whether it exists): back to
    # the channel list, nothing stored.
    "channels.spapi_authorise": Entry(
        tenant("manage", frozenset({REDIRECT})), args={"channel_id": "channel"}, owners=AB
    ),
    "channels.spapi_revoke": Entry(
        tenant("manage", frozenset({REDIRECT})), args={"channel_id": "channel"}, owners=AB
    ),
    "channels.spapi_callback": Entry(
        roles_only("seller", "admin", ok=frozenset({REDIRECT})),
        query={"state": "channel"},
        owners=AB,
        formats={"state": "{}.forged-state-not-issued-here"},
    ),
    # --- inbox and threads
    "inbox.index": Entry(logged_in()),
    "inbox.thread_detail": Entry(READ, args={"thread_id": "thread"}, owners=AB),
    "inbox.message_html": Entry(READ, args=MESSAGE, owners=PAIRS),
    "inbox.attachment": Entry(
        READ, args={"thread_id": "thread", "attachment_id": "attachment"}, owners=PAIRS
    ),
    "inbox.change_status": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    "inbox.assign": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    "inbox.add_tag": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    "inbox.remove_tag": Entry(WORK, args={"thread_id": "thread", "tag_id": "tag"}, owners=PAIRS),
    "inbox.add_note": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    # Sellers reply only when their organisation allows it (off in the world).
    "inbox.reply": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    # --- canned replies
    "canned.index": Entry(logged_in()),
    "canned.new": Entry(canned_new),
    # Like the mailbox form: a POST with no fields keeps the reply's text (saved, redirected).
    "canned.edit": Entry(
        canned("manage", ALLOWED), args={"reply_id": "canned"}, owners=("A", "B", "G")
    ),
    "canned.delete": Entry(
        canned("manage", ALLOWED), args={"reply_id": "canned"}, owners=("A", "B", "G")
    ),
    "canned.render": Entry(
        canned("read"),
        args={"reply_id": "canned"},
        query={"thread_id": "thread"},
        owners=("AA", "BB", "AB", "BA", "GA", "GB"),
    ),
    # --- the admin console
    "admin.index": Entry(ADMIN_GET),
    "admin.channels": Entry(ADMIN_GET),
    "admin.channel_detail": Entry(ADMIN_GET, args={"channel_id": "channel"}, owners=AB),
    "admin.channel_verify": Entry(ADMIN_POST, args={"channel_id": "channel"}, owners=AB),
    "admin.channel_reject": Entry(ADMIN_POST, args={"channel_id": "channel"}, owners=AB),
    "admin.channel_disable": Entry(ADMIN_POST, args={"channel_id": "channel"}, owners=AB),
    "admin.channel_enable": Entry(ADMIN_POST, args={"channel_id": "channel"}, owners=AB),
    "admin.channel_address": Entry(ADMIN_POST, args={"channel_id": "channel"}, owners=AB),
    "admin.settings": Entry(admin_only(frozenset({OK, INVALID}))),
    "admin.settings_reset": Entry(ADMIN_POST),
    "admin.users": Entry(ADMIN_GET),
    "admin.user_new": Entry(admin_only(frozenset({OK, INVALID}))),
    "admin.user_detail": Entry(ADMIN_GET, args={"user_id": "user"}, owners=AB),
    "admin.user_temporary_password": Entry(ADMIN_GET, args={"user_id": "user"}, owners=AB),
    "admin.user_deactivate": Entry(ADMIN_POST, args={"user_id": "user"}, owners=AB),
    "admin.user_reactivate": Entry(ADMIN_POST, args={"user_id": "user"}, owners=AB),
    "admin.user_role": Entry(ADMIN_POST, args={"user_id": "user"}, owners=AB),
    "admin.user_reset_password": Entry(ADMIN_POST, args={"user_id": "user"}, owners=AB),
    "admin.user_assign": Entry(ADMIN_POST, args={"user_id": "agent"}, owners=AB),
    "admin.user_unassign": Entry(ADMIN_POST, args={"user_id": "agent", "org_id": "org"}, owners=AB),
    "admin.organisations": Entry(ADMIN_GET),
    "admin.organisation_reply_permission": Entry(ADMIN_POST, args={"org_id": "org"}, owners=AB),
    "admin.mailboxes": Entry(ADMIN_GET),
    "admin.mailbox_new": Entry(admin_only(frozenset({OK, INVALID}))),
    # A POST with no fields keeps the mailbox's values: saved unchanged, redirected.
    "admin.mailbox_edit": Entry(admin_only(ALLOWED), args={"mailbox_id": "mailbox"}, owners=("G",)),
    "admin.mailbox_set_enabled": Entry(ADMIN_POST, args={"mailbox_id": "mailbox"}, owners=("G",)),
    "admin.mailbox_test": Entry(ADMIN_POST, args={"mailbox_id": "mailbox"}, owners=("G",)),
    "admin.health": Entry(ADMIN_GET),
    "admin.unrouted": Entry(ADMIN_GET),
    "admin.unrouted_detail": Entry(ADMIN_GET, args={"message_id": "unrouted"}, owners=("G",)),
    "admin.unrouted_html": Entry(ADMIN_GET, args={"message_id": "unrouted"}, owners=("G",)),
    "admin.unrouted_assign": Entry(ADMIN_POST, args={"message_id": "unrouted"}, owners=("G",)),
    "admin.discard_message": Entry(ADMIN_POST, args={"message_id": "unrouted"}, owners=("G",)),
    "admin.raw_message": Entry(ADMIN_GET, args={"message_id": "unrouted"}, owners=("G",)),
    "admin.quarantine": Entry(ADMIN_GET),
    "admin.quarantine_detail": Entry(ADMIN_GET, args={"message_id": "quarantined"}, owners=("G",)),
    "admin.quarantine_retry": Entry(ADMIN_POST, args={"message_id": "quarantined"}, owners=("G",)),
    "admin.outbox": Entry(ADMIN_GET),
    "admin.outbox_action": Entry(ADMIN_POST, args={"message_id": "reply"}, owners=AB),
    "admin.audit": Entry(ADMIN_GET),
}


# --- the cases, from the URL map ---------------------------------------------------------


@dataclass(frozen=True)
class Case:
    endpoint: str
    method: str
    words: tuple[tuple[str, str], ...]  # values of <any(...)> parameters

    @property
    def id(self) -> str:
        return "-".join([self.endpoint, self.method, *(w for _, w in self.words)])


def _url_map_app():
    return create_app(_test_config("sqlite://", Path(tempfile.gettempdir())))


def _cases() -> tuple[list[Case], set[str]]:
    """One case per endpoint, method and <any()> word; and every endpoint of the map."""
    app = _url_map_app()
    cases, endpoints = [], set()
    for rule in app.url_map.iter_rules():
        endpoints.add(rule.endpoint)
        words = [
            [(argument, word) for word in sorted(converter.items)]
            for argument, converter in sorted(rule._converters.items())
            if isinstance(converter, AnyConverter)
        ]
        for fixed in itertools.product(*words):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                cases.append(Case(rule.endpoint, method, tuple(fixed)))
    return sorted(cases, key=lambda c: c.id), endpoints


CASES, ENDPOINTS = _cases()


def test_every_route_has_an_entry():
    record("route matrix: endpoints", len(ENDPOINTS))
    record("route matrix: roles", len(ROLES))
    record("route matrix: cases (endpoint, method, <any> word)", len(CASES))
    missing = sorted(ENDPOINTS - ROUTES.keys())
    assert not missing, (
        f"endpoints without an entry in ROUTES ({__file__}): {missing}. Say who may use "
        "each one and which objects fill its URL."
    )
    stale = sorted(ROUTES.keys() - ENDPOINTS)
    assert not stale, f"ROUTES has entries for endpoints that no longer exist: {stale}"


def test_entries_name_every_url_parameter():
    app = _url_map_app()
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


def expected(entry: Entry, role: str, owners: str) -> Expect:
    """What `role` must get for objects owned by `owners` (one letter per object)."""
    result = entry.policy(role, owners[0] if owners else "G")
    if not result <= ALLOWED:
        return result
    first = owners[0] if owners else "G"
    for other in owners[1:]:
        # A second object the role cannot see, or one that belongs to another
        # organisation than the first (B's message in A's thread): not found.
        if other != "G" and (other not in SEES[role] or (first != "G" and other != first)):
            return frozenset({NOT_FOUND})
    return result


def outcome(response) -> str:
    code = response.status_code
    if code in (301, 302, 303, 307, 308):
        location = urlsplit(response.headers["Location"])
        if location.path == "/login" and "next" in parse_qs(location.query):
            return LOGIN
        return REDIRECT
    if code in (400, 422):
        return INVALID
    return str(code)


def _owners_of(entry: Entry) -> list[str]:
    if not entry.args and not entry.query:
        return [""]
    return list(entry.owners)


def _build_url(matrix: Matrix, case: Case, entry: Entry, owners: str) -> str:
    params = list(entry.args.items()) + list(entry.query.items())
    letters = owners if len(owners) == len(params) else owners * len(params)
    values: dict[str, object] = dict(entry.values)
    values.update(dict(case.words))
    for (param, name), owner in zip(params, letters, strict=True):
        try:
            object_id = matrix.ids[owner][name]
        except KeyError:
            raise AssertionError(f"the security world has no {name!r} of owner {owner}") from None
        values[param] = entry.formats.get(param, "{}").format(object_id)
    with matrix.app.test_request_context():
        return url_for(case.endpoint, **values)


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
        url = _build_url(matrix, case, entry, owners)
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
        if case.endpoint == "auth.logout":
            matrix.log_in_again(role)
    assert not problems, "\n".join(problems)
