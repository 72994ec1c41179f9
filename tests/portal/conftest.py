"""Fixtures of the page tests (the app-wide ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from portal.models import Role


@pytest.fixture
def admin(login_as):
    """An admin, the test client logged in as them."""
    return login_as(Role.ADMIN)
