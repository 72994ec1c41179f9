"""/reports and /dashboard with figures kept (REPORTS_FRESH_SECONDS on): what a page
shows, when it changes, and whose figures a page may show."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import ReportSnapshot, Role
from portal.sqltypes import utcnow
from tests.helpers import add_sent_reply, csrf_token_from


@pytest.fixture(autouse=True)
def snapshots_on(app):
    app.config["REPORTS_FRESH_SECONDS"] = 600


@pytest.fixture
def two_sellers(make_org, make_channel, make_thread):
    """Alpha: UK, one message answered after 90 min; Beta: DE, three open messages."""
    now = utcnow()
    alpha, beta = make_org("Alpha Ltd"), make_org("Beta GmbH")
    uk = make_channel("UK", organisation=alpha)
    de = make_channel("DE", organisation=beta)
    answered = make_thread(uk, received_at=now - timedelta(hours=3))
    add_sent_reply(answered, at=now - timedelta(hours=1, minutes=30))
    make_thread(de, texts=("a", "b", "c"), received_at=now - timedelta(hours=1))
    db.session.commit()
    return alpha, beta, uk, de


def total_row(client, query: str = "") -> dict[str, str]:
    response = client.get("/reports.csv" + query)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))[-1]


def test_a_page_shows_kept_figures_until_refreshed(client, login_as, two_sellers, make_thread):
    alpha, beta, uk, de = two_sellers
    login_as(Role.SELLER, organisation=alpha)
    page = client.get("/reports?period=30").get_data(as_text=True)
    assert 'id="report-as-of"' in page and "Figures as of" in page
    assert total_row(client, "?period=30")["messages"] == "1"

    # A new message: the kept figures stay (page and CSV agree) until refreshed.
    make_thread(uk, received_at=utcnow() - timedelta(minutes=5))
    db.session.commit()
    assert total_row(client, "?period=30")["messages"] == "1"
    assert db.session.query(ReportSnapshot).count() == 1

    # Refreshed within a minute of their computing: refused with a sentence.
    page = client.get("/reports?period=30").get_data(as_text=True)
    refresh = {"csrf_token": csrf_token_from(page)}
    followed = client.post("/reports/refresh?period=30", data=refresh, follow_redirects=True)
    assert "computed less than a minute ago" in followed.get_data(as_text=True)
    assert total_row(client, "?period=30")["messages"] == "1"

    # Later (still fresh): computed again, and the page shows it.
    db.session.query(ReportSnapshot).one().computed_at -= timedelta(minutes=2)
    db.session.commit()
    response = client.post("/reports/refresh?period=30", data=refresh)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/reports?period=30")
    assert total_row(client, "?period=30")["messages"] == "2"


def test_refresh_needs_the_csrf_token(client, login_as, two_sellers):
    alpha, *_ = two_sellers
    login_as(Role.SELLER, organisation=alpha)
    assert client.post("/reports/refresh?period=30").status_code == 400
    assert db.session.query(ReportSnapshot).count() == 0


def test_stale_figures_are_computed_again(client, login_as, two_sellers, make_thread):
    alpha, beta, uk, de = two_sellers
    login_as(Role.SELLER, organisation=alpha)
    assert total_row(client)["messages"] == "1"
    make_thread(uk, received_at=utcnow() - timedelta(minutes=5))
    snapshot = db.session.query(ReportSnapshot).one()
    snapshot.computed_at -= timedelta(seconds=601)
    db.session.commit()
    assert total_row(client)["messages"] == "2"


def test_each_scope_gets_its_own_figures(client, login_as, auth, two_sellers, make_user):
    """Kept figures are found by organisations and filters: a seller, another seller
    and an agent of both never see each other's."""
    alpha, beta, uk, de = two_sellers
    login_as(Role.SELLER, organisation=alpha)
    assert total_row(client)["messages"] == "1"
    auth.logout()

    login_as(Role.SELLER, organisation=beta)
    page = client.get("/reports").get_data(as_text=True)
    assert "Alpha" not in page and '<th scope="row">UK</th>' not in page
    assert total_row(client)["messages"] == "3"
    auth.logout()

    login_as(Role.AGENT, assigned=[alpha, beta])
    assert total_row(client)["messages"] == "4"
    assert total_row(client, f"?organisation={alpha.id}")["messages"] == "1"
    kinds = [snapshot.params["kind"] for snapshot in db.session.query(ReportSnapshot)]
    assert kinds.count("report") == 3  # (logging out passes by the sellers' dashboards)


def test_dashboard_rates_are_kept_with_their_time(client, login_as, two_sellers, make_thread):
    alpha, beta, uk, de = two_sellers
    login_as(Role.SELLER, organisation=beta)
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'id="rates-as-of"' in page
    assert "(0 of 3)" in page
    make_thread(de, received_at=utcnow() - timedelta(minutes=5))
    db.session.commit()
    assert "(0 of 3)" in client.get("/dashboard").get_data(as_text=True)
    (snapshot,) = db.session.query(ReportSnapshot).all()
    assert snapshot.params == {"kind": "rates", "organisation_id": beta.id}


def test_without_snapshots_nothing_is_kept(app, client, login_as, two_sellers):
    app.config["REPORTS_FRESH_SECONDS"] = 0
    alpha, *_ = two_sellers
    login_as(Role.SELLER, organisation=alpha)
    page = client.get("/reports").get_data(as_text=True)
    assert "Figures as of" not in page
    assert 'id="rates-as-of"' not in client.get("/dashboard").get_data(as_text=True)
    assert db.session.query(ReportSnapshot).count() == 0
