"""Canned replies: safe placeholders, rendering, audited changes and who sees which."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, CannedReply, Role
from portal.services import canned as canned_service
from portal.services.canned import (
    CannedReplyError,
    context_for_thread,
    order_values,
    render_canned,
    unfilled_placeholders,
    validate_template,
)
from tests.helpers import store_order

NO_VALUES = dict.fromkeys(canned_service.PLACEHOLDERS)


# --- templates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "Dear {buyer_name}, about order {order_id} on {marketplace}. {agent_name}, {seller_name}",
        "No placeholders at all.",
        "Literal braces: {{buyer_name}} and }} and {{",
        "{order_id}{order_id}",
        "Hallo {buyer_name}, ihre Bestellung… 🙂",
    ],
)
def test_valid_templates(body):
    validate_template(body)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("Hi {buyer}", "Unknown placeholder {buyer}"),
        ("Hi {Buyer_Name}", "Unknown placeholder {Buyer_Name}"),
        ("Hi { buyer_name }", "Unknown placeholder { buyer_name }"),
        ("{__import__}", "Unknown placeholder {__import__}"),
        # Attribute access and indexing would reach into Python objects with str.format.
        ("{buyer_name.__class__}", "cannot have attributes"),
        ("{buyer_name.__class__.__mro__}", "cannot have attributes"),
        ("{order_id[0]}", "cannot have attributes"),
        ("{buyer_name.__init__.__globals__}", "write just {buyer_name}"),
        # Conversions and format specs.
        ("{order_id!r}", "{order_id!r}: a placeholder cannot have"),
        ("{order_id!s}", "conversions"),
        ("{order_id!a}", "conversions"),
        ("{order_id:>10}", "{order_id:>10}: a placeholder cannot have"),
        ("{order_id:{buyer_name}}", "formats"),
        ("{buyer_name!r:^30}", "write just {buyer_name}"),
        # Positional and empty fields.
        ("{0}", "placeholders need a name"),
        ("{}", "placeholders need a name"),
        ("{0.__class__}", "placeholders need a name"),
        ("{!r}", "placeholders need a name"),
        ("{:>5}", "placeholders need a name"),
        # Malformed braces.
        ("Hi {buyer_name", 'A "{" is never closed'),
        ("Hi buyer_name}", 'A "}" has no matching "{"'),
        ("}{", 'A "}" has no matching "{"'),
        ("{buyer_name!}", "braces do not match"),
        ("Price {5 EUR", "Write {{ or }} for a literal brace"),
    ],
)
def test_invalid_templates_are_rejected_with_the_reason(body, says):
    with pytest.raises(CannedReplyError) as raised:
        validate_template(body)
    assert says in str(raised.value)


def test_every_problem_is_listed_once():
    with pytest.raises(CannedReplyError) as raised:
        validate_template("{buyer} {order} {buyer} {order_id!r}")
    problems = raised.value.problems
    assert len(problems) == 3
    assert "{buyer}" in problems[0] and "{order}" in problems[1]
    # Each says what to write instead.
    assert "Use one of {buyer_name}, {order_id}" in problems[0]
    assert "write just {order_id}" in problems[2]


# --- rendering ---------------------------------------------------------------------


def test_render_fills_in_every_placeholder():
    text = render_canned(
        "Dear {buyer_name}, order {order_id} ({marketplace}). {agent_name} of {seller_name}",
        buyer_name="Jane",
        order_id="123-1234567-1234567",
        marketplace="Amazon UK",
        agent_name="Sam",
        seller_name="Kite & Co",
    )
    assert text == "Dear Jane, order 123-1234567-1234567 (Amazon UK). Sam of Kite & Co"


def test_missing_values_render_as_nothing_never_none():
    text = render_canned("Dear {buyer_name}, order {order_id}.", **NO_VALUES)
    assert text == "Dear , order ."
    assert "None" not in text


def test_literal_braces_and_values_are_never_formatted_again():
    text = render_canned(
        "{{buyer_name}} is {buyer_name}; set {{}}",
        **{**NO_VALUES, "buyer_name": "{order_id.__class__} {0}"},
    )
    assert text == "{buyer_name} is {order_id.__class__} {0}; set {}"


@pytest.mark.parametrize("body", ["{buyer_name.__class__}", "{0}", "{order_id!r}", "oops }"])
def test_render_refuses_an_unsafe_template(body):
    with pytest.raises(CannedReplyError):
        render_canned(body, **NO_VALUES)


def test_context_for_thread(make_org, make_channel, make_thread, make_user):
    organisation = make_org("Kite & Co")
    thread = make_thread(
        make_channel("DE", organisation=organisation),
        buyer_name="Jane Doe",
        order_id="302-1234567-7654321",
    )
    agent = make_user(Role.AGENT, assigned=[organisation])
    agent.name = "Sam Agent"
    assert context_for_thread(thread, agent) == {
        "buyer_name": "Jane Doe",
        "order_id": "302-1234567-7654321",
        "marketplace": "Amazon Germany",
        "agent_name": "Sam Agent",
        "seller_name": "Kite & Co",
        # No order stored for the thread: nothing to fill the order's placeholders with.
        "item_title": None,
        "order_status": None,
        "delivery_window": None,
        "carrier": None,
        "tracking_number": None,
    }


def test_context_without_order_or_agent_name(make_thread, make_user):
    thread = make_thread(buyer_name="", order_id=None)
    agent = make_user(Role.AGENT, email="nameless@example.com")
    context = context_for_thread(thread, agent)
    assert context["order_id"] == "" and context["buyer_name"] == ""
    # display_name would be the e-mail address, which Amazon forbids in replies.
    assert context["agent_name"] == ""
    assert render_canned("{order_id}|{agent_name}", **context) == "|"


# --- the order's placeholders --------------------------------------------------------

ORDER_BODY = (
    "Your {item_title} is {order_status}, due {delivery_window}, "
    "with {carrier} ({tracking_number})."
)


def test_order_placeholders_are_filled_from_the_stored_order(make_thread):
    thread = make_thread(order_id="203-1111111-2222222")
    store_order(
        thread.channel,
        "203-1111111-2222222",
        deliver_by_earliest_at=datetime(2026, 3, 3, 8, 0, tzinfo=UTC),
        deliver_by_latest_at=datetime(2026, 3, 5, 22, 59, tzinfo=UTC),
    )
    text = render_canned(ORDER_BODY, **context_for_thread(thread, None))
    assert text == (
        "Your Garden Kneeler Pad, Green and Silicone Baking Mats (2-pack) is shipped, "
        "due 3–5 March 2026, with Royal Mail (RR123456789GB)."
    )
    assert unfilled_placeholders(text) == []


def test_another_channels_order_of_the_same_id_is_not_used(make_thread, make_channel):
    thread = make_thread(order_id="203-1111111-2222222")
    store_order(make_channel("DE"), "203-1111111-2222222")
    assert context_for_thread(thread, None)["item_title"] is None


def test_without_a_value_the_placeholder_stays_and_is_found(make_thread):
    # No order stored for the thread at all (and a thread without an order ID).
    for order_id in ("203-1111111-2222222", None):
        thread = make_thread(order_id=order_id)
        text = render_canned("Hi {buyer_name}: " + ORDER_BODY, **context_for_thread(thread, None))
        assert text == "Hi Jane: " + ORDER_BODY
        assert unfilled_placeholders(text) == [
            "item_title",
            "order_status",
            "delivery_window",
            "carrier",
            "tracking_number",
        ]


def test_a_purged_order_keeps_only_its_status(make_thread):
    thread = make_thread(order_id="203-1111111-2222222")
    # What purge_order_data leaves: the order ID and its status.
    store_order(thread.channel, "203-1111111-2222222", items=[], packages=[], programs=[])
    text = render_canned(ORDER_BODY, **context_for_thread(thread, None))
    assert text == (
        "Your {item_title} is shipped, due {delivery_window}, with {carrier} ({tracking_number})."
    )
    assert unfilled_placeholders(text) == [
        "item_title",
        "delivery_window",
        "carrier",
        "tracking_number",
    ]


@pytest.mark.parametrize(
    ("earliest", "latest", "shown"),
    [
        ((2026, 3, 5), (2026, 3, 5), "5 March 2026"),
        (None, (2026, 3, 5), "5 March 2026"),
        ((2026, 3, 3), (2026, 3, 5), "3–5 March 2026"),
        ((2026, 2, 27), (2026, 3, 2), "27 February – 2 March 2026"),
        ((2026, 12, 30), (2027, 1, 4), "30 December 2026 – 4 January 2027"),
        (None, None, None),
    ],
)
def test_the_delivery_window_as_dates(make_thread, earliest, latest, shown):
    thread = make_thread(order_id="203-1111111-2222222")
    order = store_order(
        thread.channel,
        "203-1111111-2222222",
        deliver_by_earliest_at=datetime(*earliest, 12, tzinfo=UTC) if earliest else None,
        deliver_by_latest_at=datetime(*latest, 12, tzinfo=UTC) if latest else None,
    )
    assert order_values(order)["delivery_window"] == shown


def test_items_packages_and_statuses_read_sensibly(make_thread):
    thread = make_thread(order_id="203-1111111-2222222")
    order = store_order(
        thread.channel,
        "203-1111111-2222222",
        fulfillment_status="UNSHIPPED",
        items=[{"title": "A"}, {"title": "B"}, {"title": "A"}, {"title": ""}, {"title": "C"}],
        packages=[],
    )
    values = order_values(order)
    assert values["item_title"] == "A, B and C"
    assert values["order_status"] == "not yet shipped"
    assert values["carrier"] is None and values["tracking_number"] is None  # no package yet
    order.packages = [
        {"carrier": "DHL", "tracking_number": "1", "status": "DELIVERED"},
        {"carrier": "DHL", "tracking_number": "2", "status": "DELIVERED"},
    ]
    order.fulfillment_status = "SHIPPED"
    values = order_values(order)
    assert (values["carrier"], values["tracking_number"]) == ("DHL", "1, 2")
    assert values["order_status"] == "delivered"  # every package arrived
    order.fulfillment_status, order.packages = "SOME_NEW_STATUS", []
    assert order_values(order)["order_status"] == "some new status"
    assert order_values(None) == dict.fromkeys(canned_service.ORDER_PLACEHOLDERS)


def test_only_known_placeholders_count_as_unfilled():
    assert unfilled_placeholders("{carrier} {carrier} {buyer_name} {unknown} {{x}}") == [
        "carrier",
        "buyer_name",
    ]
    assert unfilled_placeholders("") == [] and unfilled_placeholders(None) == []


# --- changes -----------------------------------------------------------------------


def events(kind: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.kind == kind)))


def test_create_update_delete_are_audited(make_org, make_user):
    organisation = make_org("Kite & Co")
    seller = make_user(Role.SELLER, organisation=organisation)
    reply = canned_service.create_canned_reply(
        organisation=organisation, title="  Late parcel ", body="Sorry {buyer_name}", actor=seller
    )
    db.session.commit()
    assert reply.title == "Late parcel" and reply.organisation_id == organisation.id
    assert reply.created_by_id == seller.id
    (created,) = events("canned_reply.created")
    assert created.actor_id == seller.id and created.organisation_id == organisation.id
    assert created.target_type == "cannedreply" and created.target_id == reply.id
    assert created.details == {"title": "Late parcel"}

    canned_service.update_canned_reply(
        reply, title="Late delivery", body="Sorry {buyer_name}!", actor=seller
    )
    db.session.commit()
    (updated,) = events("canned_reply.updated")
    assert updated.details == {
        "changed": ["title", "body"],
        "title": "Late delivery",
        "old_title": "Late parcel",
    }
    # Saving without a change records nothing.
    canned_service.update_canned_reply(
        reply, title="Late delivery", body="Sorry {buyer_name}!", actor=seller
    )
    assert len(events("canned_reply.updated")) == 1

    reply_id = reply.id
    canned_service.delete_canned_reply(reply, actor=seller)
    db.session.commit()
    assert db.session.get(CannedReply, reply_id) is None
    (deleted,) = events("canned_reply.deleted")
    assert deleted.target_id == reply_id and deleted.details == {"title": "Late delivery"}


def test_global_reply_by_an_admin(make_user):
    admin = make_user(Role.ADMIN)
    reply = canned_service.create_canned_reply(
        organisation=None, title="Thanks", body="Thank you, {buyer_name}.", actor=admin
    )
    assert reply.organisation_id is None
    assert events("canned_reply.created")[0].organisation_id is None


@pytest.mark.parametrize(
    ("title", "body", "field", "says"),
    [
        ("", "Hi", "title", "Give the canned reply a title"),
        ("   ", "Hi", "title", "Give the canned reply a title"),
        ("x" * 121, "Hi", "title", "at most 120"),
        ("Hello", "", "body", "Write the text"),
        ("Hello", "x" * 10_001, "body", "at most 10000"),
        ("Hello", "Hi {buyer}", "body", "Unknown placeholder {buyer}"),
    ],
)
def test_create_refuses_bad_input(make_org, title, body, field, says):
    with pytest.raises(CannedReplyError) as raised:
        canned_service.create_canned_reply(
            organisation=make_org(), title=title, body=body, actor=None
        )
    assert says in " ".join(raised.value.field_problems[field])
    assert db.session.scalar(select(CannedReply)) is None


def test_titles_are_unique_per_organisation_and_among_globals(make_org):
    alpha, beta = make_org("Alpha"), make_org("Beta")
    canned_service.create_canned_reply(organisation=alpha, title="Refund", body="x", actor=None)
    canned_service.create_canned_reply(organisation=None, title="Refund", body="x", actor=None)
    # The same title in another organisation is fine.
    canned_service.create_canned_reply(organisation=beta, title="Refund", body="x", actor=None)
    db.session.commit()

    with pytest.raises(CannedReplyError) as raised:
        canned_service.create_canned_reply(
            organisation=alpha, title="refund ", body="x", actor=None
        )
    assert raised.value.field_problems == {
        "title": [
            'There is already a canned reply called "refund" for this organisation. '
            "Choose another title."
        ]
    }
    # NULL organisation ids never collide in a unique constraint: the service checks.
    with pytest.raises(CannedReplyError, match="among the global replies"):
        canned_service.create_canned_reply(organisation=None, title="REFUND", body="x", actor=None)


def test_update_keeps_titles_unique_but_may_keep_its_own(make_org):
    org = make_org()
    first = canned_service.create_canned_reply(organisation=org, title="One", body="x", actor=None)
    canned_service.create_canned_reply(organisation=org, title="Two", body="x", actor=None)
    canned_service.update_canned_reply(first, title="one", body="changed", actor=None)
    assert first.title == "one"
    with pytest.raises(CannedReplyError, match="already a canned reply called"):
        canned_service.update_canned_reply(first, title="two", body="x", actor=None)
    with pytest.raises(CannedReplyError, match="Unknown placeholder"):
        canned_service.update_canned_reply(first, title="one", body="{nope}", actor=None)


# --- who sees and manages which ------------------------------------------------------


@pytest.fixture
def replies(make_org):
    alpha, beta, gamma = make_org("Alpha"), make_org("Beta"), make_org("Gamma")
    made = {}
    for key, org in (("global", None), ("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        made[key] = canned_service.create_canned_reply(
            organisation=org, title=f"{key} reply", body="x", actor=None
        )
    db.session.commit()
    return made, (alpha, beta, gamma)


def titles(found: list[CannedReply]) -> list[str]:
    return [r.title for r in found]


def test_list_for_each_role(make_user, replies):
    made, (alpha, beta, gamma) = replies
    seller = make_user(Role.SELLER, organisation=alpha)
    agent = make_user(Role.AGENT, assigned=[beta, gamma])
    admin = make_user(Role.ADMIN)
    loner = make_user(Role.AGENT)

    assert titles(canned_service.list_canned_replies_for(seller)) == ["global reply", "alpha reply"]
    assert titles(canned_service.list_canned_replies_for(agent)) == [
        "global reply",
        "beta reply",
        "gamma reply",
    ]
    assert titles(canned_service.list_canned_replies_for(admin)) == [
        "global reply",
        "alpha reply",
        "beta reply",
        "gamma reply",
    ]
    assert titles(canned_service.list_canned_replies_for(loner)) == ["global reply"]

    # For one organisation's thread: its own replies and the global ones only.
    assert titles(canned_service.list_canned_replies_for(admin, organisation_id=beta.id)) == [
        "global reply",
        "beta reply",
    ]
    # Asking for an organisation one may not see shows nothing of it.
    assert titles(canned_service.list_canned_replies_for(seller, organisation_id=beta.id)) == [
        "global reply"
    ]


def test_visibility_and_management(make_user, replies):
    made, (alpha, beta, gamma) = replies
    seller = make_user(Role.SELLER, organisation=alpha)
    agent = make_user(Role.AGENT, assigned=[beta])
    admin = make_user(Role.ADMIN)

    def visible(user, key):
        return canned_service.get_visible_canned_reply(made[key].id, user) is not None

    assert visible(seller, "alpha") and visible(seller, "global")
    assert not visible(seller, "beta") and not visible(agent, "alpha")
    assert all(visible(admin, key) for key in made)
    assert canned_service.get_visible_canned_reply(10_000, admin) is None

    can = canned_service.can_manage_canned_replies
    assert can(seller, alpha.id) and not can(seller, beta.id) and not can(seller, None)
    assert can(agent, beta.id) and not can(agent, alpha.id) and not can(agent, None)
    assert can(admin, None) and can(admin, gamma.id)

    assert [o.name for o in canned_service.manageable_organisations(seller)] == ["Alpha"]
    assert [o.name for o in canned_service.manageable_organisations(agent)] == ["Beta"]
    assert [o.name for o in canned_service.manageable_organisations(admin)] == [
        "Alpha",
        "Beta",
        "Gamma",
    ]
    assert canned_service.organisation_names(list(made.values())) == {
        alpha.id: "Alpha",
        beta.id: "Beta",
        gamma.id: "Gamma",
    }
