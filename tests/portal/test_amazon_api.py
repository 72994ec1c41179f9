"""The SP-API client against the stand-in over real HTTP: access tokens, getOrder, rate
limits, and every failure as a typed result."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from portal.amazon_api import (
    ATTEMPTS,
    UNAVAILABLE_RETRY,
    AmazonApi,
    ApiFailure,
    FailureKind,
    Seller,
    api_settings,
)
from portal.amazon_orders import AmazonOrder

pytestmark = pytest.mark.spapi

REFRESH_TOKEN = "Atzr|IwEBIstandin-refresh-token-of-the-channel-0123456789abcdefWXYZ"
ORDER = "202-1234567-8901234"  # Amazon's example answer (tests/data/spapi)
SELLER = "A3STANDINSELLER"


class Clock:
    """A monotonic clock the test moves, and the sleeps the client asked for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_api(app, spapi, clock):
    spapi.accept_refresh_token(REFRESH_TOKEN)

    def factory(**config) -> AmazonApi:
        settings = api_settings({**app.config, **config})
        return AmazonApi(settings, clock=clock, sleep=clock.sleep, backoff=0.5)

    return factory


def get(api: AmazonApi, order_id: str = ORDER, seller: str = SELLER, region: str = "EU"):
    return api.get_order(Seller(region, seller, REFRESH_TOKEN), order_id)


def test_an_order_with_one_access_token_for_many_calls(make_api, spapi):
    api = make_api()
    order = get(api)
    assert isinstance(order, AmazonOrder)
    assert order.order_id == ORDER and order.items[0].asin == "B08DFPV54V"
    assert order.packages[0].tracking_number == "RR123456789GB"
    assert isinstance(get(api), AmazonOrder)
    assert spapi.calls == {"lwa_refresh": 1, "getOrder": 2}
    assert all(r["token_ok"] for r in spapi.requests)
    # Without SPAPI_INCLUDE_PII the buyer's and recipient's data are not even asked for.
    assert spapi.requests[0]["included"] == {"FULFILLMENT", "PACKAGES", "PROCEEDS"}
    assert order.buyer_name is None


def test_buyer_and_recipient_only_when_the_operator_allows_it(make_api, spapi):
    order = get(make_api(SPAPI_INCLUDE_PII=True))
    assert spapi.requests[0]["included"] == {
        "FULFILLMENT",
        "PACKAGES",
        "PROCEEDS",
        "BUYER",
        "RECIPIENT",
    }
    assert order.buyer_name == "James Wilson"


def test_the_access_token_is_renewed_shortly_before_it_expires(make_api, spapi, clock):
    api = make_api()
    get(api)
    clock.now += 3600 - 200  # still more than the margin left
    get(api)
    assert spapi.calls["lwa_refresh"] == 1
    clock.now += 100  # now within the margin
    get(api)
    assert spapi.calls["lwa_refresh"] == 2
    assert all(r["token_ok"] for r in spapi.requests)


def test_a_refused_cached_access_token_is_replaced_once(make_api, spapi):
    api = make_api()
    get(api)
    spapi.expire_access_tokens()  # Amazon ended it early
    assert isinstance(get(api), AmazonOrder)
    assert spapi.calls == {"lwa_refresh": 2, "getOrder": 3}
    assert [r["token_ok"] for r in spapi.requests] == [True, False, True]


def test_403_means_the_authorisation_is_revoked(make_api, spapi):
    api = make_api()
    spapi.faults = ["403", "403"]
    result = get(api)
    assert isinstance(result, ApiFailure)
    assert result.kind == FailureKind.AUTHORISATION_REVOKED and result.status == 403
    assert result.retry_after is None
    assert "Authorise with Amazon" in result.message
    assert spapi.calls == {"lwa_refresh": 2, "getOrder": 2}  # one retry with a fresh token


def test_a_revoked_refresh_token_is_an_authorisation_revoked(make_api, spapi):
    api = make_api()
    spapi.revoke_refresh_token(REFRESH_TOKEN)
    result = get(api)
    assert result.kind == FailureKind.AUTHORISATION_REVOKED
    assert spapi.calls == {"lwa_refresh": 1}  # Amazon's API is not even asked


def test_429_answers_retry_later_with_a_growing_backoff_and_no_loop(make_api, spapi, clock):
    api = make_api()
    spapi.faults = ["429"]
    first = get(api)
    assert first.kind == FailureKind.RATE_LIMITED and first.status == 429
    assert first.retry_after >= 2
    assert spapi.calls["getOrder"] == 1 and clock.sleeps == []
    # Right after, the seller's bucket is empty: no call goes out at all.
    assert get(api).kind == FailureKind.RATE_LIMITED
    assert spapi.calls["getOrder"] == 1
    clock.now += first.retry_after
    spapi.faults = ["429"]
    second = get(api)
    assert second.status == 429 and second.retry_after == 2 * first.retry_after
    clock.now += second.retry_after
    assert isinstance(get(api), AmazonOrder)
    spapi.faults = ["429"]
    clock.now += 10
    assert get(api).retry_after == first.retry_after  # a success ended the series


def test_the_token_bucket_allows_the_burst_then_the_rate(make_api, spapi, clock):
    api = make_api()
    spapi.rate_limit = "not a number"  # an unreadable header keeps Amazon's published plan
    results = [get(api) for _ in range(31)]
    assert all(isinstance(r, AmazonOrder) for r in results[:30])
    assert results[30].kind == FailureKind.RATE_LIMITED
    assert results[30].retry_after == pytest.approx(2.0)  # 0.5 requests per second
    assert spapi.calls["getOrder"] == 30
    # Another seller, and another operation's region, have buckets of their own.
    assert isinstance(get(api, seller="A2OTHERSELLER"), AmazonOrder)
    assert isinstance(get(api, region="NA"), AmazonOrder)
    clock.now += 2
    assert isinstance(get(api), AmazonOrder)
    assert get(api).kind == FailureKind.RATE_LIMITED
    assert spapi.calls["getOrder"] == 33


def test_the_rate_amazon_says_it_applies_is_honoured(make_api, spapi, clock):
    api = make_api()
    spapi.rate_limit = "5.0"
    for _ in range(30):
        get(api)
    assert get(api).retry_after == pytest.approx(0.2)
    clock.now += 0.2
    assert isinstance(get(api), AmazonOrder)


@pytest.mark.parametrize("fault", ["500", "503", "timeout"])
def test_failures_on_amazons_side_are_retried_with_backoff(make_api, spapi, clock, fault):
    api = make_api(LWA_TIMEOUT=0.3)
    spapi.slow_seconds = 1.5
    spapi.faults = [fault, fault]
    assert isinstance(get(api), AmazonOrder)
    assert clock.sleeps == [0.5, 1.0]
    assert spapi.calls["getOrder"] == 3


@pytest.mark.parametrize(
    ("fault", "reason"), [("503", "HTTP 503"), ("timeout", "no answer in time")]
)
def test_failures_that_last_answer_retry_later(make_api, spapi, clock, fault, reason):
    api = make_api(LWA_TIMEOUT=0.3)
    spapi.slow_seconds = 1.5
    spapi.faults = [fault] * ATTEMPTS
    result = get(api)
    assert result.kind == FailureKind.UNAVAILABLE
    assert result.retry_after == UNAVAILABLE_RETRY
    assert reason in result.message
    assert spapi.calls["getOrder"] == ATTEMPTS


def test_the_login_service_failing_is_retried_too(make_api, spapi, clock):
    api = make_api()
    spapi.fail_token_with = [503]
    assert isinstance(get(api), AmazonOrder)
    assert spapi.calls == {"lwa_refresh": 2, "getOrder": 1}
    assert clock.sleeps == [0.5]


@pytest.mark.parametrize("fault", ["malformed", "not_an_order"])
def test_an_unreadable_answer_is_a_clear_error(make_api, spapi, fault):
    spapi.faults = [fault]
    result = get(make_api())
    assert result.kind == FailureKind.MALFORMED and result.retry_after is None
    assert f"Amazon's answer about order {ORDER} could not be read" in result.message


def test_an_unknown_order_is_not_found(make_api, spapi):
    result = get(make_api(), order_id="203-0000000-0000000")
    assert result.kind == FailureKind.NOT_FOUND and result.status == 404
    assert "203-0000000-0000000" in result.message


def test_a_region_without_an_endpoint_makes_no_call(make_api, spapi):
    result = get(make_api(SPAPI_ENDPOINT_FE=""), region="FE")
    assert result.kind == FailureKind.NOT_CONFIGURED
    assert sum(spapi.calls.values()) == 0


def test_wrong_application_credentials_are_ours_to_fix(make_api, spapi):
    spapi.client_secret = "another secret"
    result = get(make_api())
    assert result.kind == FailureKind.REJECTED and "contact support" in result.message


def test_no_token_or_secret_is_ever_logged_or_shown(make_api, spapi, caplog):
    caplog.set_level(logging.DEBUG)
    api = make_api()
    results = [get(api)]
    spapi.faults = ["403", "403", "429"]
    results += [get(api), get(api)]
    access_tokens = list(spapi.access_tokens)
    assert len(access_tokens) == 2  # the first, and the fresh one after a 403
    spapi.revoke_refresh_token(REFRESH_TOKEN)
    results.append(get(api))
    assert {r.kind for r in results[1:]} == {
        FailureKind.AUTHORISATION_REVOKED,
        FailureKind.RATE_LIMITED,
    }
    shown = caplog.text + repr(api.settings) + "".join(repr(r) for r in results)
    shown += repr(Seller("EU", SELLER, REFRESH_TOKEN))
    secrets = [REFRESH_TOKEN, api.settings.client_secret, *access_tokens]
    assert all(secret not in shown for secret in secrets)
    assert "Atza|" not in shown and "Atzr|" not in shown


def test_settings_need_the_lwa_client(app, spapi):
    assert api_settings({**app.config, "LWA_CLIENT_SECRET": ""}) is None
    settings = api_settings(app.config)
    assert dataclasses.asdict(settings)["endpoints"]["EU"] == spapi.base_url


def test_the_retry_after_a_403_counts_against_the_bucket(make_api, spapi):
    api = make_api()
    for _ in range(29):
        get(api)
    spapi.faults = ["403"]
    result = get(api)  # the 30th request is refused; no token is left for a retry
    assert result.kind == FailureKind.RATE_LIMITED and result.status is None
    assert spapi.calls["getOrder"] == 30


# --- the review request (Solicitations API v1) ----------------------------------------------

UK = "A1F83G8C2ARO7P"
EUROPE = Seller("EU", SELLER, REFRESH_TOKEN)


def offered(api, order_id=ORDER):
    return api.review_request_offered(EUROPE, order_id, marketplace_id=UK)


def request_review(api, order_id=ORDER):
    return api.request_review(EUROPE, order_id, marketplace_id=UK)


def test_a_review_request_is_offered_then_sent_once(make_api, spapi):
    api = make_api()
    assert offered(api) is True
    assert request_review(api) is None
    assert offered(api) is False  # Amazon offers it once per order
    again = request_review(api)
    assert again.kind == FailureKind.REJECTED and again.status == 400
    assert again.message == (
        "Amazon did not send the review request (A solicitation for this order is not available)."
    )
    assert spapi.calls == {
        "lwa_refresh": 1,
        "getSolicitationActionsForOrder": 2,
        "createProductReviewAndSellerFeedbackSolicitation": 2,
    }
    assert all(r["marketplace"] == UK and r["token_ok"] for r in spapi.requests)


def test_no_review_request_outside_its_window_or_for_an_unknown_order(make_api, spapi):
    api = make_api()
    spapi.review_window.clear()
    assert offered(api) is False
    assert offered(api, "203-0000000-0000000").kind == FailureKind.NOT_FOUND


def test_sending_a_review_request_is_never_retried_by_itself(make_api, spapi, clock):
    api = make_api()
    spapi.faults = ["503"]
    result = request_review(api)
    assert result.kind == FailureKind.UNAVAILABLE
    assert spapi.calls["createProductReviewAndSellerFeedbackSolicitation"] == 1
    assert clock.sleeps == [] and spapi.reviewed == set()


def test_solicitations_have_their_own_rate_limit(make_api, spapi, clock):
    api = make_api()
    spapi.rate_limit = "-"  # unreadable: the published plan (1 per second, burst 5) holds
    assert [offered(api) for _ in range(5)] == [True] * 5
    paced = offered(api)
    assert paced.kind == FailureKind.RATE_LIMITED and paced.retry_after == pytest.approx(1.0)
    assert isinstance(get(api), AmazonOrder)  # getOrder's bucket is another one
    assert spapi.calls["getSolicitationActionsForOrder"] == 5


def test_a_refused_authorisation_refuses_the_review_request_too(make_api, spapi):
    spapi.faults = ["403", "403"]
    assert offered(make_api()).kind == FailureKind.AUTHORISATION_REVOKED
