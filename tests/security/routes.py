"""The route table of the security suites: who may use each endpoint, and how.

ROUTES has an entry per endpoint of `app.url_map` (its policy: what each role must get
for whose objects; the world objects that fill its URL); CASES are the endpoint ×
method × `<any(...)>` word rows read from the URL map; `expected` says what a role must
get in one cell and `build_url` writes the cell's URL with the world's objects. The
route matrix checks every cell; the CSRF, form and URL fuzzing suites pick their
requests from the same table.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from flask import url_for
from werkzeug.routing import AnyConverter

from portal import create_app
from tests.helpers import app_config_for
from tests.security.world import SEES, WORLD_INGRESS_TOKEN, Matrix

# Outcomes, as `outcome()` reads a response.
OK = "200"
REDIRECT = "redirect"  # 302/303 elsewhere than the login page
LOGIN = "login"  # a redirect to /login?next=…
FORBIDDEN = "403"
NOT_FOUND = "404"
INVALID = "invalid"  # 400 or 422: past the access check, the (empty) form refused
UNSIGNED = "401"  # a machine endpoint (HTTP ingress) refusing an unsigned request
ALLOWED = frozenset({OK, REDIRECT, INVALID})
DENIED = frozenset({LOGIN, FORBIDDEN, NOT_FOUND, UNSIGNED})

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
    manage (tokens, setup, reply permission, people, name): the organisation's owners and
    admins (its members only read and work as sellers do).
    """

    def policy(role: str, owner: str) -> Expect:
        if role == "anonymous":
            return frozenset({LOGIN})
        if owner not in SEES[role]:
            return frozenset({NOT_FOUND})
        allowed = {
            "read": True,
            "work": _is(role, "agent") or role == "admin",
            "manage": _is(role, "owner") or role == "admin",
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


def own_sign_in(role: str, owner: str) -> Expect:
    """A sign-in (the world's is its organisation's seller's): theirs to end, unseen by others."""
    if role == "anonymous":
        return frozenset({LOGIN})
    return frozenset({REDIRECT}) if role == f"owner_{owner.lower()}" else frozenset({NOT_FOUND})


def members_own(role: str, owner: str) -> Expect:
    """The world's member's own thing (their passkey): theirs to change, unseen by others."""
    if role == "anonymous":
        return frozenset({LOGIN})
    return frozenset({REDIRECT}) if role == f"member_{owner.lower()}" else frozenset({NOT_FOUND})


def own_organisation(role: str, owner: str) -> Expect:
    """The organisation's own people may act (an owner alone may be refused: 422);
    others who see it are forbidden, the rest do not find it."""
    if role == "anonymous":
        return frozenset({LOGIN})
    if owner not in SEES[role]:
        return frozenset({NOT_FOUND})
    own = _is(role, "owner") or _is(role, "member")
    return frozenset({REDIRECT, INVALID}) if own else frozenset({FORBIDDEN})


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

#: Posts from machines (mail providers), authenticated by their signatures rather than
#: a session and a CSRF token: every role, anonymous included, is refused unsigned.
MACHINE_POSTS = frozenset({"inbound.deliver", "inbound.deliver_mime"})

ROUTES: dict[str, Entry] = {
    "inbound.deliver": Entry(public(frozenset({UNSIGNED})), values={"token": WORLD_INGRESS_TOKEN}),
    "inbound.deliver_mime": Entry(
        public(frozenset({UNSIGNED})), values={"token": WORLD_INGRESS_TOKEN}
    ),
    # --- public and account pages
    "static": Entry(public(), values={"filename": "css/app.css"}),
    "main.index": Entry(public(frozenset({REDIRECT}))),
    "main.healthz": Entry(public(frozenset({OK, "503"}))),
    "main.dashboard": Entry(logged_in()),
    # Reports: every role, on the organisations it may see (tests/portal/test_reports_views.py).
    "reports.index": Entry(logged_in()),
    "reports.download": Entry(logged_in()),
    "reports.refresh": Entry(logged_in(ALLOWED)),
    "auth.login": Entry(guests(frozenset({OK, INVALID}))),
    "auth.signup": Entry(guests(frozenset({OK, INVALID}))),
    "auth.logout": Entry(public(frozenset({REDIRECT}))),
    "auth.change_password": Entry(logged_in(frozenset({OK, INVALID}))),
    # Reset by e-mail: for anyone; a forged token gets the "expired" page.
    "account.forgot_password": Entry(public(frozenset({OK, INVALID}))),
    "account.reset_password": Entry(public(), values={"token": "forged.token"}),
    # The user's own page: a sign-in is ended by its user alone; anyone else's is not found.
    "account.index": Entry(logged_in()),
    "account.sign_out_session": Entry(own_sign_in, args={"session_id": "session"}, owners=AB),
    "account.sign_out_elsewhere": Entry(logged_in(frozenset({REDIRECT, INVALID}))),
    "account.change_time_zone": Entry(logged_in(frozenset({REDIRECT, INVALID}))),
    "account.change_alerts": Entry(logged_in(frozenset({REDIRECT, INVALID}))),
    "account.change_notifications": Entry(logged_in(frozenset({REDIRECT, INVALID}))),
    "account.claim_notifications": Entry(logged_in(frozenset({OK, INVALID}))),
    # A forged invitation link gets the "expired" page.
    "account.accept_invitation": Entry(public(), values={"token": "forged-token"}),
    # The login's code step answers only a browser whose password was just right: any
    # other is sent to /login, a signed-in one to the dashboard.
    "auth.login_two_factor": Entry(public(frozenset({REDIRECT}))),
    # The user's own second factor: an empty form is refused next to its field.
    "auth.two_factor_page": Entry(logged_in(frozenset({OK, INVALID}))),
    "auth.two_factor_recovery_codes": Entry(logged_in(frozenset({INVALID}))),
    "auth.two_factor_disable": Entry(logged_in(frozenset({INVALID}))),
    # Passkeys: the user's own page; the ceremony's options (JSON); an answer without a
    # ceremony under way is refused next to the field; no one removes another's passkey.
    "auth.passkeys_page": Entry(logged_in()),
    "auth.passkey_registration_options": Entry(logged_in()),
    "auth.add_passkey": Entry(logged_in(frozenset({INVALID}))),
    "auth.remove_passkey": Entry(members_own, args={"passkey_id": "passkey"}, owners=AB),
    # Signing in with one: for guests; a signed-in browser is sent on or refused.
    "auth.passkey_sign_in_options": Entry(guests(frozenset({OK}))),
    "auth.passkey_sign_in": Entry(guests(frozenset({INVALID}))),
    # --- organisations
    "orgs.detail": Entry(READ, args={"org_id": "org"}, owners=AB),
    "orgs.audit": Entry(READ, args={"org_id": "org"}, owners=AB),
    "orgs.export_messages": Entry(
        READ, args={"org_id": "org"}, owners=AB, get_writes=frozenset({"audit_events"})
    ),
    "orgs.reply_permission": Entry(MANAGE, args={"org_id": "org"}, owners=AB),
    "orgs.two_factor_requirement": Entry(MANAGE, args={"org_id": "org"}, owners=AB),
    "orgs.rename": Entry(MANAGE, args={"org_id": "org"}, owners=AB),
    "orgs.invite": Entry(MANAGE, args={"org_id": "org"}, owners=AB),
    "orgs.revoke_invitation": Entry(
        MANAGE, args={"org_id": "org", "invitation_id": "invitation"}, owners=PAIRS
    ),
    "orgs.member_role": Entry(MANAGE, args={"org_id": "org", "user_id": "member"}, owners=PAIRS),
    # A buyer's erasure: the organisation's owners and admins (an empty form is refused).
    "orgs.erase_buyer": Entry(MANAGE, args={"org_id": "org"}, owners=AB),
    "orgs.erase_buyer_confirm": Entry(MANAGE, args={"org_id": "org"}, owners=AB),
    # Leaving: the organisation's own people (an owner with no other owner is refused).
    "orgs.leave": Entry(own_organisation, args={"org_id": "org"}, owners=AB),
    # --- channels
    "channels.index": Entry(logged_in()),
    # Owners add channels; a member is refused even the form.
    "channels.new": Entry(roles_only("owner", ok=ALLOWED)),
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
        roles_only("owner", "member", "admin", ok=frozenset({REDIRECT})),
        query={"state": "channel"},
        owners=AB,
        formats={"state": "{}.forged-state-not-issued-here"},
    ),
    # --- inbox and threads
    "inbox.index": Entry(logged_in()),
    "inbox.live": Entry(logged_in()),
    # Bulk actions: agents and admins; the thread ids are scoped in the view (tests/portal).
    "inbox.bulk": Entry(roles_only("agent", "admin", ok=ALLOWED)),
    "inbox.thread_detail": Entry(READ, args={"thread_id": "thread"}, owners=AB),
    "inbox.thread_live": Entry(READ, args={"thread_id": "thread"}, owners=AB),
    "inbox.message_html": Entry(READ, args=MESSAGE, owners=PAIRS),
    "inbox.message_original": Entry(READ, args=MESSAGE, owners=PAIRS),
    "inbox.attachment": Entry(
        READ, args={"thread_id": "thread", "attachment_id": "attachment"}, owners=PAIRS
    ),
    "inbox.change_status": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    "inbox.assign": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    "inbox.snooze": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    "inbox.add_tag": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    "inbox.remove_tag": Entry(WORK, args={"thread_id": "thread", "tag_id": "tag"}, owners=PAIRS),
    "inbox.add_note": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    "inbox.no_response_needed": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    # The order panel: a refresh only marks the order due for the worker (everyone who
    # sees the thread may ask); a review request is sent on the seller's behalf by
    # whoever works the thread.
    "inbox.refresh_order": Entry(tenant("read", ALLOWED), args={"thread_id": "thread"}, owners=AB),
    "inbox.request_review": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    # Sellers reply only when their organisation allows it (off in the world).
    "inbox.reply": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    # The heartbeat: everyone who sees the thread is shown to the others there.
    "inbox.presence": Entry(tenant("read", ALLOWED), args={"thread_id": "thread"}, owners=AB),
    "inbox.save_draft": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
    "inbox.discard_draft": Entry(WORK, args={"thread_id": "thread"}, owners=AB),
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
    "admin.settings_retention": Entry(ADMIN_POST),
    "admin.users": Entry(ADMIN_GET),
    "admin.user_new": Entry(admin_only(frozenset({OK, INVALID}))),
    "admin.user_detail": Entry(ADMIN_GET, args={"user_id": "user"}, owners=AB),
    "admin.user_temporary_password": Entry(ADMIN_GET, args={"user_id": "user"}, owners=AB),
    "admin.user_deactivate": Entry(ADMIN_POST, args={"user_id": "user"}, owners=AB),
    "admin.user_reactivate": Entry(ADMIN_POST, args={"user_id": "user"}, owners=AB),
    "admin.user_role": Entry(ADMIN_POST, args={"user_id": "user"}, owners=AB),
    "admin.user_reset_password": Entry(ADMIN_POST, args={"user_id": "user"}, owners=AB),
    "admin.user_end_sessions": Entry(ADMIN_POST, args={"user_id": "user"}, owners=AB),
    "admin.invitations": Entry(admin_only(frozenset({OK, INVALID}))),
    "admin.revoke_invitation": Entry(
        admin_only(frozenset({REDIRECT, INVALID})),
        args={"invitation_id": "invitation"},
        owners=("G",),
    ),
    "admin.user_reset_two_factor": Entry(ADMIN_POST, args={"user_id": "user"}, owners=AB),
    "admin.user_assign": Entry(ADMIN_POST, args={"user_id": "agent"}, owners=AB),
    "admin.user_unassign": Entry(ADMIN_POST, args={"user_id": "agent", "org_id": "org"}, owners=AB),
    "admin.organisations": Entry(ADMIN_GET),
    "admin.organisation_reply_permission": Entry(ADMIN_POST, args={"org_id": "org"}, owners=AB),
    # An empty POST closes nothing (the confirmation box is required: 422).
    "admin.organisation_close": Entry(
        admin_only(frozenset({OK, INVALID})), args={"org_id": "org"}, owners=AB
    ),
    "admin.organisation_reopen": Entry(ADMIN_POST, args={"org_id": "org"}, owners=AB),
    "admin.mailboxes": Entry(ADMIN_GET),
    "admin.mailbox_new": Entry(admin_only(frozenset({OK, INVALID}))),
    "admin.mailbox_new_http": Entry(admin_only(frozenset({OK, INVALID}))),
    # A POST with no fields keeps the mailbox's values: saved unchanged, redirected.
    "admin.mailbox_edit": Entry(admin_only(ALLOWED), args={"mailbox_id": "mailbox"}, owners=("G",)),
    "admin.mailbox_set_enabled": Entry(ADMIN_POST, args={"mailbox_id": "mailbox"}, owners=("G",)),
    "admin.mailbox_test": Entry(ADMIN_POST, args={"mailbox_id": "mailbox"}, owners=("G",)),
    "admin.health": Entry(ADMIN_GET),
    # "Connect …" (OAuth2): without a configured client it says so and redirects back; a
    # forged state on the callback names a mailbox but changes nothing.
    "admin.mailbox_oauth_connect": Entry(ADMIN_POST, args={"mailbox_id": "mailbox"}, owners=("G",)),
    # A POST with no fields leaves the mailbox sending nothing (unchanged): redirected.
    "admin.mailbox_sending": Entry(
        admin_only(ALLOWED), args={"mailbox_id": "mailbox"}, owners=("G",)
    ),
    "admin.mailbox_oauth_callback": Entry(
        admin_only(frozenset({REDIRECT})),
        query={"state": "mailbox"},
        owners=("G",),
        formats={"state": "{}.forged-state-not-issued-here"},
    ),
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


def url_map_app():
    """An app to read the URL map of (no database is opened)."""
    return create_app(app_config_for("sqlite://", Path(tempfile.gettempdir())))


def _cases() -> tuple[list[Case], set[str]]:
    """One case per endpoint, method and <any()> word; and every endpoint of the map."""
    app = url_map_app()
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


# --- one cell: what a role must get, what it got, and the URL it asks for ------------------


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
    """The response as one of the outcomes above."""
    code = response.status_code
    if code in (301, 302, 303, 307, 308):
        location = urlsplit(response.headers["Location"])
        if location.path == "/login" and "next" in parse_qs(location.query):
            return LOGIN
        return REDIRECT
    if code in (400, 422):
        return INVALID
    return str(code)


def build_url(matrix: Matrix, case: Case, entry: Entry, owners: str) -> str:
    """The case's URL, its parameters filled with the world's objects of `owners`."""
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
