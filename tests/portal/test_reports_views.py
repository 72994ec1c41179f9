"""/reports and /reports.csv: the service's numbers, scoped to what the user may see."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import Role
from portal.sqltypes import utcnow
from tests.helpers import add_sent_reply


@pytest.fixture
def two_sellers(make_org, make_channel, make_thread):
    """Alpha: UK, one message answered after 90 min and one open 30 h (overdue);
    Beta: DE, three open messages received an hour ago."""
    now = utcnow()
    alpha, beta = make_org("Alpha Ltd"), make_org("Beta GmbH")
    uk = make_channel("UK", organisation=alpha)
    de = make_channel("DE", organisation=beta)
    answered = make_thread(uk, received_at=now - timedelta(hours=3))
    add_sent_reply(answered, at=now - timedelta(hours=1, minutes=30))
    make_thread(uk, received_at=now - timedelta(hours=30))
    make_thread(de, texts=("a", "b", "c"), received_at=now - timedelta(hours=1))
    db.session.commit()
    return alpha, beta


def csv_rows(client, query: str = "") -> list[dict[str, str]]:
    response = client.get("/reports.csv" + query)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_seller_sees_only_their_organisation(client, login_as, two_sellers):
    alpha, beta = two_sellers
    login_as(Role.SELLER, organisation=alpha)

    page = client.get("/reports").get_data(as_text=True)

    assert "count for Amazon only once also marked in Seller Central" in page
    assert 'id="chart-messages"' in page and "<svg" in page and "Show as table" in page
    # (Not a bare "DE": the page's random CSRF token may hold those letters.)
    assert "Beta" not in page and '<th scope="row">DE</th>' not in page
    rows = csv_rows(client)
    assert [r["scope"] for r in rows] == ["UK", "total"]
    assert rows[-1] == {
        "scope": "total",
        "messages": "2",
        "answered_24h": "1",
        "answered_24h_pct": "50.0",
        "late": "0",
        "open": "1",
        "open_overdue": "1",
        "median_response_minutes": "90.0",
        "p90_response_minutes": "90.0",
        # Both threads began in the period; the answered one after 90 minutes.
        "threads": "2",
        "first_response_median_minutes": "90.0",
        "first_response_p90_minutes": "90.0",
        "closed": "0",
        "close_median_minutes": "",
        "close_p90_minutes": "",
    }
    # The page shows the same numbers as the CSV.
    for value in ("50.0", "90.0"):
        assert f'<td class="num">{value}</td>' in page
    # With one organisation there is no filter: another's id changes nothing.
    assert [r["scope"] for r in csv_rows(client, f"?organisation={beta.id}")] == ["UK", "total"]


def test_admin_sees_all_and_filters_by_organisation(client, login_as, two_sellers):
    alpha, beta = two_sellers
    login_as(Role.ADMIN)

    everything = csv_rows(client, "?period=7")
    assert [r["scope"] for r in everything] == ["Alpha Ltd UK", "Beta GmbH DE", "total"]
    assert everything[-1]["messages"] == "5"
    assert everything[-1]["open"] == "4"

    beta_only = csv_rows(client, f"?period=7&organisation={beta.id}")
    assert [r["scope"] for r in beta_only] == ["DE", "total"]
    assert beta_only[-1]["messages"] == "3"
    assert beta_only[-1]["answered_24h_pct"] == "0.0"
    page = client.get(f"/reports?organisation={beta.id}").get_data(as_text=True)
    assert "Alpha Ltd" in page  # in the filter's choices only
    assert "Alpha Ltd UK" not in page


def test_agent_sees_assigned_organisations(client, login_as, two_sellers):
    alpha, beta = two_sellers
    login_as(Role.AGENT, assigned=[beta])
    rows = csv_rows(client, "?period=90")
    assert [r["scope"] for r in rows] == ["DE", "total"]
    assert rows[-1]["messages"] == "3"


def test_an_organisation_out_of_sight_is_refused(client, login_as, two_sellers, make_org):
    alpha, beta = two_sellers
    login_as(Role.AGENT, assigned=[beta, make_org("Gamma")])
    response = client.get(f"/reports?organisation={alpha.id}")
    assert response.status_code == 400
    assert "Not a valid choice" in response.get_data(as_text=True)
    assert "Alpha" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?period=custom", "Give the first day of the period."),
        ("?period=custom&start=2026-11-10", "Give the last day of the period."),
        ("?period=custom&start=2026-11-10&end=2026-11-01", "The last day comes before the first."),
        ("?period=custom&start=2020-01-01&end=2026-11-01", "Choose at most 366 days."),
        ("?period=custom&start=nonsense&end=2026-11-01", "Not a valid date value."),
        ("?period=12", "Not a valid choice."),
    ],
)
def test_bad_periods_are_explained_next_to_the_field(client, login_as, query, message):
    login_as(Role.SELLER)
    response = client.get("/reports" + query)
    assert response.status_code == 400
    assert 'class="error"' in response.get_data(as_text=True)
    assert message in response.get_data(as_text=True)
    assert client.get("/reports.csv" + query).status_code == 400


def test_custom_period_counts_whole_days(client, login_as, two_sellers):
    alpha, beta = two_sellers
    login_as(Role.SELLER, organisation=alpha)
    today = utcnow().date()
    rows = csv_rows(client, f"?period=custom&start={today - timedelta(days=2)}&end={today}")
    assert rows[-1]["messages"] == "2"
    old = today - timedelta(days=30)
    rows = csv_rows(client, f"?period=custom&start={old}&end={old}")
    assert rows[-1]["messages"] == "0"
