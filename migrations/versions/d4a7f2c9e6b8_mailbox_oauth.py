"""OAuth2 mailboxes: the provider, the tokens, and the started "Connect …" states

Revision ID: d4a7f2c9e6b8
Revises: c8e2f4a6b1d3
Create Date: 2026-12-06 03:30:00

Issue 24: a mailbox connected with "Connect Microsoft 365" or "Connect Google" logs in
with XOAUTH2; its refresh and access tokens are kept under TOKEN_KEY. A mailbox may have
an SMTP URL and send the replies of channels (sending_mailboxes).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d4a7f2c9e6b8"
down_revision = "c8e2f4a6b1d3"
branch_labels = None
depends_on = None

# Plain ALTER TABLEs: a batch would copy tables other rows refer to (see 3c9e2b7d4f10).
COLUMNS = [
    sa.Column("oauth_provider", sa.String(length=20), nullable=True),
    sa.Column("oauth_refresh_token_encrypted", sa.LargeBinary(), nullable=True),
    sa.Column("oauth_access_token_encrypted", sa.LargeBinary(), nullable=True),
    sa.Column("oauth_access_expires_at", sa.DateTime(), nullable=True),
    sa.Column("oauth_refused_at", sa.DateTime(), nullable=True),
    sa.Column("smtp_url", sa.String(length=500), nullable=True),
]


def upgrade():
    for column in COLUMNS:
        op.add_column("mailboxes", column)
    # Which mailbox sends a channel's replies: a table of its own, so neither table is
    # altered with a reference (SQLite cannot add one without copying the table).
    op.create_table(
        "sending_mailboxes",
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_sending_mailboxes_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_sending_mailboxes_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_sending_mailboxes")),
    )
    op.create_index(
        op.f("ix_sending_mailboxes_mailbox_id"), "sending_mailboxes", ["mailbox_id"]
    )
    op.create_table(
        "mailbox_oauth_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_session_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_mailbox_oauth_states_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_session_id"],
            ["user_sessions.id"],
            name=op.f("fk_mailbox_oauth_states_user_session_id_user_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailbox_oauth_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_mailbox_oauth_states_state_hash")),
    )
    op.create_index(
        op.f("ix_mailbox_oauth_states_user_session_id"),
        "mailbox_oauth_states",
        ["user_session_id"],
    )


def downgrade():
    op.drop_index(op.f("ix_sending_mailboxes_mailbox_id"), table_name="sending_mailboxes")
    op.drop_table("sending_mailboxes")
    op.drop_index(
        op.f("ix_mailbox_oauth_states_user_session_id"), table_name="mailbox_oauth_states"
    )
    op.drop_table("mailbox_oauth_states")
    for column in reversed(COLUMNS):
        op.drop_column("mailboxes", column.name)
