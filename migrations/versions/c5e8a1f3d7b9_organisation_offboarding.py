"""organisations.closed_at, erase_after, data_erased_at: offboarding

Revision ID: c5e8a1f3d7b9
Revises: b7d2e9f4a6c1
Create Date: 2026-12-06 03:40:00

Issue 23: an admin closes an organisation (channels disabled, Amazon authorisations
deleted, users signed out and disabled); its buyer data is erased by the worker once
OFFBOARDING_GRACE_DAYS have passed (services/offboarding.py).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c5e8a1f3d7b9"
down_revision = "b7d2e9f4a6c1"
branch_labels = None
depends_on = None

COLUMNS = ("closed_at", "erase_after", "data_erased_at")


def upgrade():
    # Plain ALTER TABLE (no batch mode: on SQLite that recreates the table).
    for name in COLUMNS:
        op.add_column("organisations", sa.Column(name, sa.DateTime(), nullable=True))


def downgrade():
    for name in reversed(COLUMNS):
        op.drop_column("organisations", name)
