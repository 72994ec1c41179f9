"""HTTP ingress mailboxes: path token hash, signing key, last delivery; replay memory

Revision ID: c8e2f4a6b1d3
Revises: c5d8e2f4a7b1
Create Date: 2026-12-06 03:30:00

Issue 24 (HTTP ingress): providers post mail to /inbound/<token>. The mailbox keeps
the token's SHA-256 (the token is shown once), its signing key encrypted with
TOKEN_KEY and the time of its last delivery; inbound_replays remembers the signatures
taken within the freshness window, in the database so every web worker refuses a replay.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c8e2f4a6b1d3"
down_revision = "c5d8e2f4a7b1"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE (not batch mode): nullable columns need no table rebuild.
    op.add_column("mailboxes", sa.Column("ingress_token_hash", sa.String(length=64)))
    op.add_column("mailboxes", sa.Column("signing_key_encrypted", sa.LargeBinary()))
    op.add_column("mailboxes", sa.Column("last_delivery_at", sa.DateTime()))
    op.create_index(
        op.f("ix_mailboxes_ingress_token_hash"), "mailboxes", ["ingress_token_hash"], unique=True
    )
    op.create_table(
        "inbound_replays",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_inbound_replays_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_replays")),
        sa.UniqueConstraint("mailbox_id", "key", name=op.f("uq_inbound_replays_mailbox_id_key")),
    )
    op.create_index(op.f("ix_inbound_replays_seen_at"), "inbound_replays", ["seen_at"])


def downgrade():
    op.drop_index(op.f("ix_inbound_replays_seen_at"), table_name="inbound_replays")
    op.drop_table("inbound_replays")
    op.drop_index(op.f("ix_mailboxes_ingress_token_hash"), table_name="mailboxes")
    op.drop_column("mailboxes", "last_delivery_at")
    op.drop_column("mailboxes", "signing_key_encrypted")
    op.drop_column("mailboxes", "ingress_token_hash")
