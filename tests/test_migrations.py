"""`flask db upgrade` on an empty database gives exactly the models' schema."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from portal import create_app
from portal.extensions import db
from tests.conftest import _test_config


def _assert_no_drift(url: str, tmp_path) -> None:
    app = create_app(_test_config(url, tmp_path))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata
            )
        db.engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_sqlite_upgrade_matches_models(tmp_path):
    _assert_no_drift(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path)


@pytest.mark.postgres
def test_postgres_upgrade_matches_models(postgres_server, tmp_path):
    name = f"drift_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(name)
    _assert_no_drift(postgres_server.url(name), tmp_path)
