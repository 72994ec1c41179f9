"""The canned reply pages and the render endpoint the composer uses: forms, roles, tenancy."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, CannedReply, Role, Thread
from portal.services import canned as canned_service
from tests.helpers import csrf_token_from, store_order


@pytest.fixture
def alpha(make_org):
    return make_org("Alpha Ltd")


@pytest.fixture
def beta(make_org):
    return make_org("Beta GmbH")


@pytest.fixture
def make_reply():
    def factory(organisation=None, title="Late parcel", body="Dear {buyer_name}, sorry."):
        reply = canned_service.create_canned_reply(
            organisation=organisation, title=title, body=body, actor=None
        )
        db.session.commit()
        return reply

    return factory


@pytest.fixture
def make_org_thread(make_channel, make_thread):
    """A thread in a new UK channel of `organisation`: make_thread, given an organisation."""

    def factory(organisation, **fields) -> Thread:
        return make_thread(make_channel("UK", organisation=organisation), **fields)

    return factory


def post_form(client, page_url, action, data):
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **data})


def stored() -> list[CannedReply]:
    return list(db.session.scalars(select(CannedReply).order_by(CannedReply.id)))


# --- creating ------------------------------------------------------------------------


def test_seller_creates_a_reply_for_their_own_organisation(client, login_as, alpha, beta):
    seller = login_as(Role.SELLER, organisation=alpha)
    page = client.get("/canned-replies/new").get_data(as_text=True)
    assert "Title" in page and "Organisation" in page and "Text" in page
    for placeholder in (
        "{buyer_name}",
        "{order_id}",
        "{marketplace}",
        "{agent_name}",
        "{seller_name}",
    ):
        assert placeholder in page
    assert f'value="{alpha.id}"' in page
    assert f'value="{beta.id}"' not in page and "All organisations (global)" not in page

    response = post_form(
        client,
        "/canned-replies/new",
        "/canned-replies/new",
        {
            "title": "Late parcel",
            "organisation": str(alpha.id),
            "body": "Dear {buyer_name}, sorry.",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/canned-replies"
    (reply,) = stored()
    assert (reply.organisation_id, reply.title) == (alpha.id, "Late parcel")
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "canned_reply.created"))
    assert event.actor_id == seller.id and event.target_id == reply.id
    listing = client.get("/canned-replies").get_data(as_text=True)
    assert "Late parcel" in listing and "Dear {buyer_name}, sorry." in listing


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("Dear {buyer}, sorry.", "Unknown placeholder {buyer}"),
        ("{buyer_name.__class__}", "cannot have attributes"),
        ("{order_id!r}", "cannot have attributes, indexes, conversions or formats"),
        ("{0}", "placeholders need a name"),
        ("Price {5 EUR", "Write {{ or }} for a literal brace"),
    ],
)
def test_bad_placeholders_are_shown_beside_the_text_field(client, login_as, alpha, body, says):
    login_as(Role.SELLER, organisation=alpha)
    response = post_form(
        client,
        "/canned-replies/new",
        "/canned-replies/new",
        {"title": "Oops", "organisation": str(alpha.id), "body": body},
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="body-error"' in page
    error = page.split('id="body-error">', 1)[1].split("</p>", 1)[0]
    assert says.replace('"', "&#34;") in error or says in error
    assert 'aria-describedby="body-help body-error"' in page  # its help, then its error
    assert stored() == []


def test_duplicate_title_is_shown_beside_the_title(client, login_as, alpha, make_reply):
    make_reply(alpha, title="Late parcel")
    login_as(Role.SELLER, organisation=alpha)
    response = post_form(
        client,
        "/canned-replies/new",
        "/canned-replies/new",
        {"title": "late parcel", "organisation": str(alpha.id), "body": "Hi"},
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="title-error"' in page and "already a canned reply called" in page
    assert len(stored()) == 1


def test_admin_creates_a_global_reply(client, login_as, alpha, beta):
    login_as(Role.ADMIN)
    page = client.get("/canned-replies/new").get_data(as_text=True)
    assert "All organisations (global)" in page
    assert f'value="{alpha.id}"' in page and f'value="{beta.id}"' in page
    response = post_form(
        client,
        "/canned-replies/new",
        "/canned-replies/new",
        {"title": "Thanks", "organisation": "global", "body": "Thank you, {buyer_name}."},
    )
    assert response.status_code == 302
    (reply,) = stored()
    assert reply.organisation_id is None
    assert "All organisations" in client.get("/canned-replies").get_data(as_text=True)


def test_saving_warns_about_amazons_rules(client, login_as, alpha):
    login_as(Role.SELLER, organisation=alpha)
    response = post_form(
        client,
        "/canned-replies/new",
        "/canned-replies/new",
        {
            "title": "Promo",
            "organisation": str(alpha.id),
            "body": "Get a coupon on www.mystore.com",
        },
    )
    assert response.status_code == 302
    page = client.get("/canned-replies").get_data(as_text=True)
    assert "flash-warning" in page
    assert "links to websites outside Amazon" in page and "marketing" in page


# --- agents ----------------------------------------------------------------------------


def test_agent_manages_only_assigned_organisations(client, login_as, alpha, beta, make_reply):
    mine, theirs, shared = make_reply(beta), make_reply(alpha), make_reply(None, title="Global")
    login_as(Role.AGENT, assigned=[beta])
    page = client.get("/canned-replies/new").get_data(as_text=True)
    assert f'value="{beta.id}"' in page
    assert f'value="{alpha.id}"' not in page and "All organisations (global)" not in page

    # A forged choice of another organisation is refused beside the field.
    response = post_form(
        client,
        "/canned-replies/new",
        "/canned-replies/new",
        {"title": "Sneaky", "organisation": str(alpha.id), "body": "Hi"},
    )
    assert response.status_code == 200
    assert 'id="organisation-error"' in response.get_data(as_text=True)
    response = post_form(
        client,
        "/canned-replies/new",
        "/canned-replies/new",
        {"title": "Sneaky", "organisation": "global", "body": "Hi"},
    )
    assert 'id="organisation-error"' in response.get_data(as_text=True)
    assert len(stored()) == 3

    listing = client.get("/canned-replies").get_data(as_text=True)
    assert f"/canned-replies/{mine.id}/edit" in listing
    assert f"/canned-replies/{shared.id}/edit" not in listing  # visible, not editable
    assert f"canned-{theirs.id}" not in listing

    assert client.get(f"/canned-replies/{mine.id}/edit").status_code == 200
    assert client.get(f"/canned-replies/{theirs.id}/edit").status_code == 404
    assert client.get(f"/canned-replies/{shared.id}/edit").status_code == 403


def test_unassigned_agent_cannot_create(client, login_as):
    login_as(Role.AGENT)
    assert client.get("/canned-replies/new").status_code == 403
    page = client.get("/canned-replies").get_data(as_text=True)
    assert "New canned reply" not in page


# --- editing and deleting -----------------------------------------------------------------


def test_seller_edits_and_deletes_own_reply(client, login_as, alpha, make_reply):
    reply = make_reply(alpha)
    login_as(Role.SELLER, organisation=alpha)
    url = f"/canned-replies/{reply.id}/edit"
    page = client.get(url).get_data(as_text=True)
    assert "Late parcel" in page and "Alpha Ltd" in page
    assert 'name="organisation"' not in page  # a reply stays with its organisation

    response = post_form(client, url, url, {"title": "Late delivery", "body": "Sorry {buyer}"})
    assert response.status_code == 200
    assert 'id="body-error"' in response.get_data(as_text=True)

    response = post_form(client, url, url, {"title": "Late delivery", "body": "Sorry!"})
    assert response.status_code == 302
    db.session.refresh(reply)
    assert (reply.title, reply.body) == ("Late delivery", "Sorry!")

    response = post_form(client, url, f"/canned-replies/{reply.id}/delete", {})
    assert response.status_code == 302
    assert stored() == []
    kinds = [e.kind for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert kinds[-2:] == ["canned_reply.updated", "canned_reply.deleted"]


def test_seller_of_another_organisation_gets_404(client, login_as, alpha, beta, make_reply):
    theirs = make_reply(alpha, title="Alpha secret")
    login_as(Role.SELLER, organisation=beta)
    assert client.get(f"/canned-replies/{theirs.id}/edit").status_code == 404
    # With a valid CSRF token the POSTs get past the form check and still find nothing.
    for action in (f"/canned-replies/{theirs.id}/edit", f"/canned-replies/{theirs.id}/delete"):
        response = post_form(client, "/canned-replies/new", action, {"title": "x", "body": "y"})
        assert response.status_code == 404, action
    assert "Alpha secret" not in client.get("/canned-replies").get_data(as_text=True)
    assert stored()[0].title == "Alpha secret"
    assert client.get(f"/canned-replies/{theirs.id + 1000}/edit").status_code == 404


def test_seller_sees_global_replies_but_cannot_change_them(client, login_as, alpha, make_reply):
    shared = make_reply(None, title="Global thanks")
    login_as(Role.SELLER, organisation=alpha)
    assert "Global thanks" in client.get("/canned-replies").get_data(as_text=True)
    assert client.get(f"/canned-replies/{shared.id}/edit").status_code == 403
    response = post_form(client, "/canned-replies/new", f"/canned-replies/{shared.id}/delete", {})
    assert response.status_code == 403
    assert len(stored()) == 1


def test_csrf_is_refused(client, login_as, alpha, make_reply):
    reply = make_reply(alpha)
    login_as(Role.SELLER, organisation=alpha)
    response = client.post(
        "/canned-replies/new",
        data={"title": "No token", "organisation": str(alpha.id), "body": "Hi"},
    )
    assert response.status_code == 400
    assert "Form expired" in response.get_data(as_text=True)
    response = client.post(
        f"/canned-replies/{reply.id}/edit", data={"title": "No token", "body": "Hi"}
    )
    assert response.status_code == 400
    assert client.post(f"/canned-replies/{reply.id}/delete").status_code == 400
    response = client.post(f"/canned-replies/{reply.id}/delete", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert [r.title for r in stored()] == ["Late parcel"]


def test_anonymous_users_are_sent_to_log_in(client, make_reply):
    reply = make_reply()
    for url in ("/canned-replies", "/canned-replies/new", f"/canned-replies/{reply.id}/render"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_nav_links_to_canned_replies(client, login_as, alpha):
    login_as(Role.SELLER, organisation=alpha)
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'href="/canned-replies">Canned replies</a>' in page


# --- the render endpoint --------------------------------------------------------------------


def render_url(reply, thread):
    return f"/canned-replies/{reply.id}/render?thread_id={thread.id}"


BODY = "Dear {buyer_name}, order {order_id} on {marketplace}. {agent_name}, {seller_name}"


def test_render_fills_in_the_thread(client, login_as, alpha, make_reply, make_org_thread):
    reply = make_reply(alpha, body=BODY)
    thread = make_org_thread(alpha, buyer_name="Jane", order_id="203-1234567-7654321")
    agent = login_as(Role.AGENT, assigned=[alpha])
    agent.name = "Sam"
    db.session.commit()
    response = client.get(render_url(reply, thread))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json == {
        "text": "Dear Jane, order 203-1234567-7654321 on Amazon UK. Sam, Alpha Ltd",
        "warnings": [],
        "unfilled": [],
    }


def test_render_a_global_reply_with_missing_values(
    client, login_as, alpha, make_reply, make_org_thread
):
    reply = make_reply(None, body="Hi {buyer_name}, {order_id}! Visit shop.example.com")
    thread = make_org_thread(alpha, buyer_name="", order_id=None)
    login_as(Role.SELLER, organisation=alpha)
    data = client.get(render_url(reply, thread)).json
    assert data["text"] == "Hi , ! Visit shop.example.com"
    assert [w["code"] for w in data["warnings"]] == ["outside_link"]
    assert data["warnings"][0]["excerpt"] == "shop.example.com"


def test_render_fills_the_orders_placeholders_and_names_those_without_a_value(
    client, login_as, alpha, make_reply, make_org_thread
):
    reply = make_reply(alpha, body="{item_title}: {order_status}, {carrier} {tracking_number}")
    thread = make_org_thread(alpha, order_id="203-1234567-7654321")
    login_as(Role.AGENT, assigned=[alpha])
    data = client.get(render_url(reply, thread)).json
    # No order stored yet: every one stays in the text, named for the composer.
    assert data["text"] == "{item_title}: {order_status}, {carrier} {tracking_number}"
    assert data["unfilled"] == ["item_title", "order_status", "carrier", "tracking_number"]
    store_order(thread.channel, thread.order_id, items=[{"title": "Kneeler"}])
    data = client.get(render_url(reply, thread)).json
    assert data["text"] == "Kneeler: shipped, Royal Mail RR123456789GB"
    assert data["unfilled"] == []


def test_the_form_documents_the_order_placeholders(client, login_as, alpha):
    login_as(Role.SELLER, organisation=alpha)
    page = client.get("/canned-replies/new").get_data(as_text=True)
    for name in ("item_title", "order_status", "delivery_window", "carrier", "tracking_number"):
        assert f"{{{name}}}" in page
    assert "stays in the text and must be replaced before the reply can be sent" in page


def test_render_needs_both_reply_and_thread_visible(
    client, login_as, alpha, beta, make_reply, make_org_thread
):
    alpha_reply, beta_reply = make_reply(alpha), make_reply(beta)
    alpha_thread, beta_thread = make_org_thread(alpha), make_org_thread(beta)
    login_as(Role.SELLER, organisation=beta)
    assert client.get(render_url(beta_reply, beta_thread)).status_code == 200
    for reply, thread in (
        (alpha_reply, beta_thread),  # another seller's reply
        (beta_reply, alpha_thread),  # another seller's thread
        (alpha_reply, alpha_thread),
    ):
        response = client.get(render_url(reply, thread))
        assert response.status_code == 404
        assert response.json == {"error": "Not found."}
    assert client.get(f"/canned-replies/{beta_reply.id}/render?thread_id=99999").status_code == 404
    response = client.get(f"/canned-replies/{beta_reply.id}/render")
    assert response.status_code == 400 and "thread_id" in response.json["error"]
    response = client.get(f"/canned-replies/{beta_reply.id}/render?thread_id=abc")
    assert response.status_code == 400


def test_render_never_uses_one_sellers_reply_on_anothers_thread(
    client, login_as, alpha, beta, make_reply, make_org_thread
):
    # An admin (or an agent of both) sees both, but the pairing is still refused.
    alpha_reply, beta_thread = make_reply(alpha), make_org_thread(beta)
    login_as(Role.ADMIN)
    assert client.get(render_url(alpha_reply, beta_thread)).status_code == 404


def test_render_agent_limited_to_assigned(
    client, login_as, alpha, beta, make_reply, make_org_thread
):
    shared = make_reply(None)
    alpha_thread, beta_thread = make_org_thread(alpha), make_org_thread(beta)
    login_as(Role.AGENT, assigned=[beta])
    assert client.get(render_url(shared, beta_thread)).status_code == 200
    assert client.get(render_url(shared, alpha_thread)).status_code == 404
