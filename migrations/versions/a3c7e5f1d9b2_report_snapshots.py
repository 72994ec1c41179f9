"""report_snapshots: report figures computed ahead

Revision ID: a3c7e5f1d9b2
Revises: f2b6d9a4c8e1
Create Date: 2026-12-07 03:30:00

Issue 22 (Speed): reading a period's messages per request cannot come within 5× of a
bare page at 500,000 messages, so each report's figures are kept once computed, shown
with their time while fresh, and recomputed ahead by the worker for the reports read
lately (portal/services/report_snapshots.py).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a3c7e5f1d9b2"
down_revision = "f2b6d9a4c8e1"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "report_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.Column("compute_seconds", sa.Float(), nullable=False),
        sa.Column("read_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_snapshots")),
        sa.UniqueConstraint("key", name=op.f("uq_report_snapshots_key")),
    )
    op.create_index(
        op.f("ix_report_snapshots_read_at"), "report_snapshots", ["read_at"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_report_snapshots_read_at"), table_name="report_snapshots")
    op.drop_table("report_snapshots")
