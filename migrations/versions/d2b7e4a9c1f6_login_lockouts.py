"""Per-account login lockouts (login_lockouts)

Revision ID: d2b7e4a9c1f6
Revises: a9d3f6b2c8e4
Create Date: 2026-12-05 12:40:00

Issue 23: after five failed logins for an e-mail address, its logins wait a growing
delay, kept in the database so that every gunicorn worker applies it. Keyed by a hash of
the address, for addresses with and without an account alike.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d2b7e4a9c1f6"
down_revision = "a9d3f6b2c8e4"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "login_lockouts",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_lockouts")),
    )
    op.create_index(
        op.f("ix_login_lockouts_last_failure_at"), "login_lockouts", ["last_failure_at"]
    )


def downgrade():
    op.drop_index(op.f("ix_login_lockouts_last_failure_at"), table_name="login_lockouts")
    op.drop_table("login_lockouts")
