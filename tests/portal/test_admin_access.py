"""Every admin URL is for admins only: 403 for sellers and agents, login for anonymous users.

The routes come from the app's URL map (every endpoint of the `admin` blueprint), so a
page added later is covered without touching this file.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import pytest
from flask import url_for
from sqlalchemy import func, select
from werkzeug.routing import AnyConverter, IntegerConverter

from portal import create_app
from portal.extensions import db
from portal.models import (
    AuditEvent,
    Channel,
    ChannelStatus,
    Direction,
    Mailbox,
    Message,
    Role,
    User,
)
from portal.services import admin_channels as admin_channel_service
from portal.services import channels as channel_service
from portal.services import invitations as invitation_service
from portal.sqltypes import utcnow
from tests.helpers import app_config_for, csrf_token_from

GOOD_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"


def _admin_routes() -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(endpoint, method, fixed values) of every admin URL; the URL map needs no database.

    A parameter that takes one of a few words (`<any(a, b):action>`) gives one case per word.
    """
    app = create_app(app_config_for("sqlite://", Path(tempfile.gettempdir())))
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin."):
            continue
        words = [
            [(argument, word) for word in sorted(converter.items)]
            for argument, converter in sorted(rule._converters.items())
            if isinstance(converter, AnyConverter)
        ]
        for fixed in itertools.product(*words):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes.append((rule.endpoint, method, fixed))
    return sorted(routes)


ADMIN_ROUTES = _admin_routes()


def test_the_admin_console_routes_are_all_found():
    endpoints = {endpoint for endpoint, _, _ in ADMIN_ROUTES}
    for expected in (
        "admin.index",
        "admin.channels",
        "admin.channel_detail",
        "admin.channel_verify",
        "admin.channel_address",
        "admin.settings",
        "admin.users",
        "admin.user_new",
        "admin.user_role",
        "admin.organisations",
        "admin.audit",
    ):
        assert expected in endpoints
    assert ("admin.settings", "POST", ()) in ADMIN_ROUTES


@pytest.fixture
def world(app, make_org, make_user, make_channel, make_thread):
    """One row of everything an admin URL can name, so every URL is built with real ids."""
    org = make_org("Kite & Co")
    channel = make_channel("UK", organisation=org)
    seller = make_user(Role.SELLER, organisation=org)
    agent = make_user(Role.AGENT, assigned=[org])
    admin = make_user(Role.ADMIN)
    channel_service.submit_mws_token(
        channel, seller_id="A1B2C3D4E5F6G7", token=GOOD_TOKEN, actor=seller
    )
    admin_channel_service.change_helpdesk_address(
        channel, new_address=None, inbound_domain="helpdesk.test", actor=admin
    )
    thread = make_thread(channel)
    invitation_service.invite("new.agent@example.com", role=Role.AGENT, actor=admin, now=utcnow())
    mailbox = Mailbox(name="Main", source_url="maildir:/tmp/nowhere")
    db.session.add(mailbox)
    db.session.add(
        Message(
            mailbox=mailbox,
            direction=Direction.IN,
            message_id="<unrouted@example.com>",
            content_hash="unrouted",
            to_addresses="nobody@helpdesk.test",
        )
    )
    db.session.commit()
    return {"org": org, "channel": channel, "seller": seller, "agent": agent, "thread": thread}


# A URL parameter names a table by its stem: `channel_id` -> channels, `org_id` -> organisations.
_STEMS = {"org": "organisations", "organisation": "organisations", "event": "audit_events"}


def _real_id(argument: str) -> int:
    stem = argument.removesuffix("_id")
    tables = db.metadata.tables
    for name in (_STEMS.get(stem), f"{stem}s", f"{stem}es", stem):
        if name in tables:
            found = db.session.scalar(select(func.min(tables[name].c.id)))
            assert found is not None, f"the `world` fixture makes no row of {name}"
            return found
    raise AssertionError(f"no table for URL parameter {argument!r}: teach _real_id about it")


def _url(app, endpoint: str, fixed: dict[str, str]) -> str:
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    values = {
        argument: _real_id(argument)
        if isinstance(rule._converters[argument], IntegerConverter)
        else "x"
        for argument in rule.arguments
    }
    values.update(fixed)
    with app.test_request_context():
        return url_for(endpoint, **values)


def _request(client, method: str, url: str, token_page: str):
    token = csrf_token_from(client.get(token_page).get_data(as_text=True))
    if method == "GET":
        return client.get(url)
    # A valid CSRF token, so the answer comes from the access check and not from CSRF.
    return client.open(url, method=method, data={"csrf_token": token})


def _snapshot():
    channel = db.session.scalar(select(Channel))
    db.session.refresh(channel)
    return (
        channel.status,
        channel.helpdesk_address,
        channel.credential is not None,
        db.session.scalar(select(func.count()).select_from(User)),
        sorted((u.email, u.role, u.is_active) for u in db.session.scalars(select(User))),
    )


def _case_id(case) -> str:
    endpoint, method, fixed = case
    return "-".join([endpoint, method, *(word for _, word in fixed)])


@pytest.mark.parametrize(
    ("endpoint", "method", "fixed"), ADMIN_ROUTES, ids=map(_case_id, ADMIN_ROUTES)
)
def test_admin_route_is_for_admins_only(app, client, auth, world, endpoint, method, fixed):
    url = _url(app, endpoint, dict(fixed))
    before = _snapshot()
    for role in ("seller", "agent"):
        auth.login(world[role].email)
        events = db.session.scalar(select(func.count()).select_from(AuditEvent))
        response = _request(client, method, url, "/dashboard")
        assert response.status_code == 403, f"{role} {method} {url}"
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == events
        auth.logout()

    response = _request(client, method, url, "/login")
    assert response.status_code == 302, f"anonymous {method} {url}"
    assert response.headers["Location"].startswith("/login?next=")
    db.session.expire_all()
    assert _snapshot() == before
    assert world["channel"].status == ChannelStatus.PENDING_VERIFICATION
