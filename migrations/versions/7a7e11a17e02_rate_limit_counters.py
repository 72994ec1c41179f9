"""rate-limit counters in the database, shared by every web worker

Revision ID: 7a7e11a17e02
Revises: c3d9a5f1e7b2
Create Date: 2026-12-04 17:00:00

The `database://` storage of the login and sign-up rate limits (portal/ratelimit.py):
one row per client, limit and window, deleted once expired.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "7a7e11a17e02"
down_revision = "c3d9a5f1e7b2"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_counters")),
    )


def downgrade():
    op.drop_table("rate_limit_counters")
