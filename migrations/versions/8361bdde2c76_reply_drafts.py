"""Reply drafts per user and thread (drafts, draft_attachments)

Revision ID: 8361bdde2c76
Revises: 881319e3c9d2
Create Date: 2026-12-05 16:40:00

Issue 21: the reply text and its chosen attachments are kept on the server while the
user types, until sent or discarded.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "8361bdde2c76"
down_revision = "881319e3c9d2"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            name=op.f("fk_drafts_thread_id_threads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_drafts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drafts")),
        sa.UniqueConstraint("user_id", "thread_id", name=op.f("uq_drafts_user_id_thread_id")),
    )
    op.create_index(op.f("ix_drafts_thread_id"), "drafts", ["thread_id"])
    op.create_table(
        "draft_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["draft_id"],
            ["drafts.id"],
            name=op.f("fk_draft_attachments_draft_id_drafts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_attachments")),
    )
    op.create_index(op.f("ix_draft_attachments_draft_id"), "draft_attachments", ["draft_id"])


def downgrade():
    op.drop_index(op.f("ix_draft_attachments_draft_id"), table_name="draft_attachments")
    op.drop_table("draft_attachments")
    op.drop_index(op.f("ix_drafts_thread_id"), table_name="drafts")
    op.drop_table("drafts")
