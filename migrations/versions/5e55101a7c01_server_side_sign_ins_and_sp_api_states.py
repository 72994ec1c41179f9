"""server-side sign-ins (user_sessions) and SP-API states (spapi_states)

Revision ID: 5e55101a7c01
Revises: 7a7e11a17e02
Create Date: 2026-12-04 16:51:20

A row per login, named by the session and remember-me cookies through a random token
(only its SHA-256 stored), so logging out ends that sign-in on the server. Sessions made
before this revision named the user and a key of their password instead: they match no
row, and everyone logs in once more after the upgrade.

An "Authorise with Amazon" state was kept in the signed session cookie, which a replayed
old cookie brought back; it is now a row of the sign-in that started it, deleted when used.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "5e55101a7c01"
down_revision = "7a7e11a17e02"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=False),
        sa.Column("is_remembered", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_sessions_expires_at"), ["expires_at"])
        batch_op.create_index(batch_op.f("ix_user_sessions_user_id"), ["user_id"])

    op.create_table(
        "spapi_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_session_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_spapi_states_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_session_id"],
            ["user_sessions.id"],
            name=op.f("fk_spapi_states_user_session_id_user_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spapi_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_spapi_states_state_hash")),
    )
    with op.batch_alter_table("spapi_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spapi_states_user_session_id"), ["user_session_id"])


def downgrade():
    with op.batch_alter_table("spapi_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spapi_states_user_session_id"))
    op.drop_table("spapi_states")
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_user_sessions_expires_at"))
    op.drop_table("user_sessions")
