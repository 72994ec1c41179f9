"""Orders keep the buyer's name and delivery address, encrypted

Revision ID: 9e4b7c1d3a58
Revises: 5d8a1f6c2e47
Create Date: 2026-12-06 00:50:00

Issue 23: order PII (only fetched with SPAPI_INCLUDE_PII) is stored encrypted under
TOKEN_KEY and purged with the rest of the order's details.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "9e4b7c1d3a58"
down_revision = "5d8a1f6c2e47"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("pii_encrypted", sa.LargeBinary(), nullable=True))


def downgrade():
    op.drop_column("orders", "pii_encrypted")
