"""/healthz: JSON for a load balancer; 200 only when the database answers and a poll is fresh."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ingest.pipeline import poll_all
from portal import create_app
from portal.extensions import db
from portal.models import Mailbox
from portal.sqltypes import utcnow
from tests.helpers import app_config_for


def _mailbox(name: str, *, polled_seconds_ago: float | None, enabled: bool = True) -> Mailbox:
    mailbox = Mailbox(
        name=name,
        source_url=f"imap://buyers@imap.example.com:993/{name}",
        is_enabled=enabled,
        last_success_at=(
            utcnow() - timedelta(seconds=polled_seconds_ago)
            if polled_seconds_ago is not None
            else None
        ),
    )
    db.session.add(mailbox)
    db.session.commit()
    return mailbox


def test_before_any_poll_it_is_unhealthy_and_says_why(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.is_json
    assert response.json["status"] == "error"
    assert response.json["database"] == "ok"
    assert response.json["reason"] == "no successful poll yet"
    assert response.headers["Cache-Control"] == "no-store"


def test_after_a_poll_it_is_healthy_without_logging_in(app, client, maildir):
    assert poll_all().errors == 0  # creates and polls the configured Maildir mailbox
    response = client.get("/healthz")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["status"] == "ok" and body["database"] == "ok"
    assert 0 <= body["last_poll_age_seconds"] < 5
    assert body["max_poll_age_seconds"] == 3 * app.config["POLL_SECONDS"]
    assert body["mailboxes"] == 1 and body["stale_mailboxes"] == 0
    assert "reason" not in body


@pytest.mark.parametrize(
    ("age", "status"),
    [(10, 200), (3 * 60 - 5, 200), (3 * 60 + 5, 503), (86_400, 503)],
)
def test_the_last_successful_poll_must_be_younger_than_three_poll_intervals(
    app, client, age, status
):
    app.config["POLL_SECONDS"] = 60
    _mailbox("inbox", polled_seconds_ago=age)
    response = client.get("/healthz")
    assert response.status_code == status, response.json
    if status == 503:
        assert response.json["reason"].startswith("last successful poll")
        assert response.json["last_poll_age_seconds"] >= age


def test_the_newest_poll_counts_and_stale_mailboxes_are_reported(app, client):
    app.config["POLL_SECONDS"] = 60
    _mailbox("fresh", polled_seconds_ago=30)
    _mailbox("wrong-password", polled_seconds_ago=None)
    _mailbox("old", polled_seconds_ago=10_000)
    _mailbox("disabled", polled_seconds_ago=None, enabled=False)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["mailboxes"] == 3
    assert response.json["stale_mailboxes"] == 2


def test_it_gives_away_no_names_hosts_or_errors(client):
    mailbox = _mailbox("Secret Seller EU", polled_seconds_ago=1)
    mailbox.last_error = "LoginError: imap.example.com refused buyers@example.com"
    db.session.commit()
    text = client.get("/healthz").get_data(as_text=True)
    for secret in ("Secret Seller", "imap.example.com", "buyers@", "LoginError"):
        assert secret not in text


def test_an_unreachable_database_is_503(tmp_path):
    # A SQLite file in a folder that does not exist: every connection fails.
    url = f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}"
    app = create_app(app_config_for(url, tmp_path))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["database"] == "unreachable"
    assert response.json["reason"] == "database unreachable"


def test_it_is_exempt_from_csrf_and_the_login_rate_limit(app, client):
    # HEAD as a load balancer may send it, and many checks in a row are never limited.
    for _ in range(30):
        assert client.head("/healthz").status_code == 503
    from portal.extensions import csrf

    assert "portal.main.views.healthz" in csrf._exempt_views


def test_an_http_mailbox_is_posted_to_and_never_counts_as_a_stalled_poll(app, client):
    # Never polled, so never a last_success_at: a quiet HTTP mailbox is not a stall.
    app.config["POLL_SECONDS"] = 60
    _mailbox("fresh", polled_seconds_ago=30)
    db.session.add(Mailbox(name="posted", source_url="http-ingress://?provider=mailgun"))
    db.session.commit()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["mailboxes"] == 1 and response.json["stale_mailboxes"] == 0
