"""Migration e7c2a9d4b5f1: the orders table, and the flag existing channels start without."""

from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import insert, inspect, select, text

from portal import create_app
from portal.extensions import db
from portal.models import Channel, Organisation
from tests.helpers import app_config_for


def test_existing_channels_start_without_the_flag(empty_database_url, tmp_path):
    app = create_app(app_config_for(empty_database_url, tmp_path))
    with app.app_context():
        upgrade(revision="b4a1d5c0e2f3")
        db.session.execute(insert(Organisation.__table__).values(id=1, name="Acme"))
        # Plain SQL: the model's insert would name the column this migration adds.
        db.session.execute(
            text(
                "INSERT INTO channels (id, organisation_id, marketplace, helpdesk_address, "
                "status, status_reason, is_professional_confirmed, created_at) VALUES "
                "(1, 1, 'IE', 'ie-abcdefgh@helpdesk.test', 'active', '', true, "
                "'2026-12-01 10:00:00')"
            )
        )
        db.session.commit()
        db.session.remove()

        upgrade()

        assert db.session.scalar(select(Channel.is_amazon_authorisation_needed)) is False
        assert "orders" in inspect(db.engine).get_table_names()
        db.session.remove()
        downgrade(revision="b4a1d5c0e2f3")
        assert "orders" not in inspect(db.engine).get_table_names()
        columns = {c["name"] for c in inspect(db.engine).get_columns("channels")}
        assert "is_amazon_authorisation_needed" not in columns
        db.engine.dispose()
