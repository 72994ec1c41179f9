"""Fixtures of the page tests (the app-wide ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from portal.models import Role


@pytest.fixture
def admin(login_as):
    """An admin, the test client logged in as them."""
    return login_as(Role.ADMIN)


@pytest.fixture
def buyer_thread(make_org, make_channel, make_thread):
    """Jane's thread on Kite & Co's UK channel, for the composer's tests."""
    channel = make_channel(
        "UK", organisation=make_org("Kite & Co"), address="uk-kite@helpdesk.test"
    )
    return make_thread(channel, buyer_name="Jane", buyer_address="jane123@marketplace.amazon.co.uk")
