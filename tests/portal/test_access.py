"""Roles and tenancy: who sees which organisation's pages."""

from __future__ import annotations

import pytest

from portal.models import Role


@pytest.fixture
def two_orgs(make_org, make_channel):
    alpha, beta = make_org("Alpha Ltd"), make_org("Beta GmbH")
    make_channel("UK", organisation=alpha)
    make_channel("DE", organisation=beta)
    return alpha, beta


def org_urls(org):
    """Every URL that shows one organisation's objects (grows with each feature)."""
    urls = [f"/orgs/{org.id}", f"/orgs/{org.id}/export.jsonl"]
    urls += [f"/channels/{channel.id}" for channel in org.channels]
    return urls


def test_seller_sees_own_org_and_404_for_another(client, login_as, two_orgs):
    alpha, beta = two_orgs
    login_as(Role.SELLER, organisation=alpha)
    for url in org_urls(alpha):
        assert client.get(url).status_code == 200, url
    for url in org_urls(beta):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Beta GmbH" not in response.get_data(as_text=True)
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "Alpha Ltd" in dashboard and "Beta GmbH" not in dashboard


def test_agent_sees_only_assigned_orgs(client, login_as, two_orgs):
    alpha, beta = two_orgs
    login_as(Role.AGENT, assigned=[beta])
    for url in org_urls(beta):
        assert client.get(url).status_code == 200, url
    for url in org_urls(alpha):
        assert client.get(url).status_code == 404, url
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "Beta GmbH" in dashboard and "Alpha Ltd" not in dashboard


def test_unassigned_agent_sees_nothing(client, login_as, two_orgs):
    login_as(Role.AGENT)
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "not assigned to any organisation" in dashboard
    for org in two_orgs:
        assert client.get(f"/orgs/{org.id}").status_code == 404


def test_admin_sees_all(client, login_as, two_orgs):
    login_as(Role.ADMIN)
    for org in two_orgs:
        for url in org_urls(org):
            assert client.get(url).status_code == 200, url
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "Alpha Ltd" in dashboard and "Beta GmbH" in dashboard


def test_nonexistent_object_is_404_like_a_forbidden_one(client, login_as):
    login_as(Role.SELLER)
    assert client.get("/orgs/999999").status_code == 404


@pytest.mark.parametrize("url", ["/dashboard", "/orgs/1", "/account/password"])
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_role_required_answers_403(app, client, login_as):
    from portal.security import role_required

    @app.route("/admin-only")
    @role_required(Role.ADMIN)
    def admin_only():
        return "secret admin page"

    login_as(Role.SELLER)
    assert client.get("/admin-only").status_code == 403
