"""Fixtures of the inbox service tests: one seller's channel and an admin, who sees it all."""

from __future__ import annotations

import pytest

from portal.models import Role


@pytest.fixture
def channel(make_org, make_channel):
    return make_channel("UK", organisation=make_org("Alpha Ltd"), address="uk-chan01@helpdesk.test")


@pytest.fixture
def admin(make_user):
    return make_user(Role.ADMIN)
