"""The `database://` rate-limit storage: counts shared through the database, fixed windows
that expire and are cleaned up, atomic under concurrent writers; and which storage the
configuration picks."""

from __future__ import annotations

import threading
import types

import pytest
from cryptography.fernet import Fernet
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import select

from portal import create_app, ratelimit
from portal.config import SHARED_RATELIMIT_STORAGE, config_from_env
from portal.extensions import db, limiter
from portal.models import RateLimitCounter
from portal.ratelimit import DatabaseStorage
from tests.helpers import PASSWORD, AuthActions, FreshContextClient


@pytest.fixture
def app_config(app_config):
    app_config["RATELIMIT_STORAGE_URI"] = "database://"
    return app_config


@pytest.fixture
def clock(monkeypatch):
    """The storage's clock, moved by hand."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


def _rows() -> dict[str, tuple[int, float]]:
    return {
        row.key: (row.hits, row.expires_at)
        for row in db.session.scalars(select(RateLimitCounter)).all()
    }


def test_the_app_counts_in_the_database(app):
    assert isinstance(limiter.storage, DatabaseStorage)


def test_a_window_counts_then_expires_and_restarts(app, clock):
    storage = DatabaseStorage()
    assert storage.get("k") == 0
    assert storage.get_expiry("k") == clock[0]
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.incr("k", 60, amount=2) == 5
    assert storage.get("k") == 5
    assert storage.get_expiry("k") == clock[0] + 60  # from the first hit, not the last
    clock[0] += 59.5
    assert storage.incr("k", 60) == 6
    clock[0] += 0.5  # the window has ended: it counts as nothing, and a hit starts anew
    assert storage.get("k") == 0
    assert storage.incr("k", 60) == 1
    assert storage.get_expiry("k") == clock[0] + 60
    assert storage.get("other") == 0


def test_the_limits_fixed_window_strategy_works_on_it(app, clock):
    limiter_ = FixedWindowRateLimiter(DatabaseStorage())
    item = parse("2/minute")
    assert limiter_.hit(item, "203.0.113.9") and limiter_.hit(item, "203.0.113.9")
    assert not limiter_.hit(item, "203.0.113.9")
    assert not limiter_.test(item, "203.0.113.9")
    assert limiter_.hit(item, "198.51.100.7")  # another client has its own count
    stats = limiter_.get_window_stats(item, "203.0.113.9")
    assert stats.remaining == 0 and stats.reset_time == clock[0] + 60
    limiter_.clear(item, "203.0.113.9")
    assert limiter_.hit(item, "203.0.113.9")


def test_clear_reset_and_expired_rows_deleted(app, clock, monkeypatch):
    storage = DatabaseStorage()
    storage.incr("short", 10)
    storage.incr("long", 3600)
    storage.incr("gone", 10)
    storage.clear("gone")
    assert set(_rows()) == {"short", "long"}
    clock[0] += 10
    assert storage.delete_expired() == 1
    assert set(_rows()) == {"long"}

    # Writes clean up on their own, one in CLEANUP_ONE_IN; here every one.
    storage.incr("short", 10)
    clock[0] += 3600
    monkeypatch.setattr(ratelimit, "CLEANUP_ONE_IN", 1)
    storage.incr("new", 10)
    assert set(_rows()) == {"new"}
    assert storage.reset() == 1 and _rows() == {}
    assert storage.check()


def test_long_keys_fit_and_stay_distinct(app):
    # The client's address is in the key; behind TRUSTED_PROXIES without a proxy in
    # front, X-Forwarded-For says what it likes.
    storage = DatabaseStorage()
    first, second = "LIMITER/" + "a" * 5000 + "/1", "LIMITER/" + "a" * 5000 + "/2"
    assert storage.incr(first, 60) == 1
    assert storage.incr(second, 60) == 1
    assert storage.incr(first, 60) == 2
    assert storage.get(second) == 1
    assert all(len(key) <= 200 for key in _rows())


def test_concurrent_writers_lose_no_hit(app):
    # What several gunicorn workers do for one client at once: every hit counted once.
    results: list[int] = []
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            with app.app_context():
                storage = DatabaseStorage()
                for _ in range(25):
                    results.append(storage.incr("busy", 60))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == list(range(1, 101))


def test_two_app_instances_count_a_client_together(app, app_config, client, make_user):
    # Two instances on one database (two workers, two hosts): their counts add up.
    user = make_user()
    first = AuthActions(client)
    # Other addresses each time: the per-account lockout is not what is counted here.
    statuses = [
        first.login(f"guess{n}@example.com", password="wrong password").status_code
        for n in range(5)
    ]
    second_app = create_app(app_config)
    second_app.test_client_class = FreshContextClient
    try:
        second = AuthActions(second_app.test_client())
        statuses += [
            second.login(f"guess{n}@example.com", password="wrong password").status_code
            for n in range(5, 10)
        ]
        assert statuses == [200] * 10
        assert first.login(user.email, password=PASSWORD).status_code == 429
        assert second.login(user.email, password=PASSWORD).status_code == 429
    finally:
        with second_app.app_context():
            db.engine.dispose()
    # The minute's window (refused attempts count too) and the hour's, whose count stops
    # at the minute's refusal.
    assert sorted(db.session.scalars(select(RateLimitCounter.hits))) == [10, 12]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "memory://"),  # `make run`: one process
        ({"WEB_CONCURRENCY": "1"}, "memory://"),
        ({"WEB_CONCURRENCY": "2"}, SHARED_RATELIMIT_STORAGE),  # `make serve`
        ({"SELLERDESK_ENV": "production"}, SHARED_RATELIMIT_STORAGE),
        ({"SELLERDESK_ENV": "production", "RATELIMIT_STORAGE_URI": "redis://r:6379/0"}, None),
        ({"RATELIMIT_STORAGE_URI": "redis://r:6379/0"}, "redis://r:6379/0"),
    ],
)
def test_the_storage_each_configuration_picks(monkeypatch, tmp_path, env, expected):
    for name in ("SELLERDESK_ENV", "WEB_CONCURRENCY", "RATELIMIT_STORAGE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("TOKEN_KEY", Fernet.generate_key().decode())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = config_from_env(str(tmp_path))
    assert config["RATELIMIT_STORAGE_URI"] == (expected or env["RATELIMIT_STORAGE_URI"])


def test_the_shared_storage_is_this_one():
    assert isinstance(storage_from_string(SHARED_RATELIMIT_STORAGE), DatabaseStorage)
