"""Orders keep whether Amazon offers the review request (orders.review_request_offered_at)

Revision ID: a9d3f6b2c8e4
Revises: e7c2a9d4b5f1
Create Date: 2026-12-05 12:15:00

Issue 20: the thread page shows "Request a review" only when Amazon offers it, and a page
never asks Amazon; the worker asks when it fetches a delivered order and keeps the answer
here. Existing orders start without an offer (the next fetch in the window asks).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a9d3f6b2c8e4"
down_revision = "e7c2a9d4b5f1"
branch_labels = None
depends_on = None


def upgrade():
    # Not in batch mode: SQLite adds (and, from 3.35, drops) a plain nullable column
    # itself, and recreating the table is not needed.
    op.add_column("orders", sa.Column("review_request_offered_at", sa.DateTime(), nullable=True))


def downgrade():
    op.drop_column("orders", "review_request_offered_at")
