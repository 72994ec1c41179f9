"""Amazon orders (orders) and the channel's "Amazon authorisation needed" flag

Revision ID: e7c2a9d4b5f1
Revises: b4a1d5c0e2f3
Create Date: 2026-12-05 07:15:00

Issue 20: the order beside a buyer's message, as SP-API's getOrder last described it, one
row per channel and order ID; and a flag beside the channel's status, set when Amazon
refuses the channel's SP-API authorisation. Existing channels start without the flag.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e7c2a9d4b5f1"
down_revision = "b4a1d5c0e2f3"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("marketplace_id", sa.String(length=16), nullable=True),
        sa.Column("fulfillment_status", sa.String(length=32), nullable=True),
        sa.Column("fulfilled_by", sa.String(length=16), nullable=True),
        sa.Column("programs", sa.JSON(), nullable=False),
        sa.Column("purchased_at", sa.DateTime(), nullable=True),
        sa.Column("ship_by_earliest_at", sa.DateTime(), nullable=True),
        sa.Column("ship_by_latest_at", sa.DateTime(), nullable=True),
        sa.Column("deliver_by_earliest_at", sa.DateTime(), nullable=True),
        sa.Column("deliver_by_latest_at", sa.DateTime(), nullable=True),
        sa.Column("total_amount", sa.String(length=32), nullable=True),
        sa.Column("total_currency", sa.String(length=3), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("packages", sa.JSON(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("fetched_at", sa.DateTime(), nullable=True),
        sa.Column("refresh_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("last_error_at", sa.DateTime(), nullable=True),
        sa.Column("review_requested_at", sa.DateTime(), nullable=True),
        sa.Column("purged_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_orders_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("channel_id", "order_id", name=op.f("uq_orders_channel_id_order_id")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_refresh_at"), ["refresh_at"])
    # Not in batch mode (here and in the downgrade): on SQLite that recreates `channels`,
    # and dropping the old table fails while threads and messages refer to it. SQLite
    # adds (and, from 3.35, drops) such a column itself.
    op.add_column(
        "channels",
        sa.Column(
            "is_amazon_authorisation_needed",
            sa.Boolean(),
            nullable=False,
            server_default=sa.false(),
        ),
    )


def downgrade():
    op.drop_column("channels", "is_amazon_authorisation_needed")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_refresh_at"))
    op.drop_table("orders")
