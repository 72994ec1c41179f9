"""Migration b4a1d5c0e2f3: names stored before control characters were refused."""

from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import insert, select

from portal import create_app
from portal.extensions import db
from portal.models import CannedReply, Organisation, Tag, User
from tests.helpers import app_config_for


def test_names_lose_their_control_characters_and_stay_unique(empty_database_url, tmp_path):
    app = create_app(app_config_for(empty_database_url, tmp_path))
    with app.app_context():
        upgrade(revision="5e55101a7c01")
        # Core inserts: stored as the old forms let them through.
        orgs = Organisation.__table__
        db.session.execute(insert(orgs).values(id=1, name="Evil\r\nBcc: x@evil.test"))
        db.session.execute(insert(orgs).values(id=2, name="Evil Bcc: x@evil.test"))
        db.session.execute(insert(orgs).values(id=3, name="Fine Goods Ltd"))
        db.session.execute(insert(orgs).values(id=4, name="\u202e\x07"))
        db.session.execute(
            insert(User.__table__).values(
                id=1, email="a@example.com", name="Ann\tLee", password_hash="x", role="admin"
            )
        )
        db.session.execute(insert(Tag.__table__).values(id=1, organisation_id=3, name="v\x85ip"))
        db.session.execute(
            insert(CannedReply.__table__).values(
                id=1, organisation_id=3, title="Where\u2028is it", body="Hello"
            )
        )
        db.session.commit()
        db.session.remove()

        upgrade()

        names = dict(db.session.execute(select(Organisation.id, Organisation.name)).all())
        # The name the old one would become is taken: the row's id keeps it unique.
        assert names == {
            1: "Evil Bcc: x@evil.test (1)",
            2: "Evil Bcc: x@evil.test",
            3: "Fine Goods Ltd",
            4: "(4)",
        }
        assert db.session.scalar(select(User.name)) == "Ann Lee"
        assert db.session.scalar(select(Tag.name)) == "v ip"
        assert db.session.scalar(select(CannedReply.title)) == "Where is it"
        db.session.remove()
        downgrade(revision="5e55101a7c01")  # nothing to undo, and nothing breaks
        db.engine.dispose()
