"""Organisation roles (owner, member) and invitations

Revision ID: 2d26a41d9151
Revises: c5e1f7a3b9d2
Create Date: 2026-12-05 16:29:57

Issue 23: a seller user is an owner or a member of their organisation; every seller
user there was is an owner (they managed everything until now). Invitations hold the
hash of a link's token, who is invited as what, and when it was accepted or revoked.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "2d26a41d9151"
down_revision = "c5e1f7a3b9d2"
branch_labels = None
depends_on = None


def _org_role():
    return sa.Enum(
        "owner", "member", name="orgrole", native_enum=False, create_constraint=True, length=16
    )


def upgrade():
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "agent",
                "seller",
                name="role",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("org_role", _org_role(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invited_by_id"],
            ["users.id"],
            name=op.f("fk_invitations_invited_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_invitations_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
    )
    op.create_index(op.f("ix_invitations_email"), "invitations", ["email"])
    op.create_index(op.f("ix_invitations_organisation_id"), "invitations", ["organisation_id"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("org_role", _org_role(), nullable=True))
    op.execute("UPDATE users SET org_role = 'owner' WHERE role = 'seller'")


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        # The enum's CHECK names the column: it goes first, or SQLite's copy of the table
        # would keep a check on a column it no longer has.
        batch_op.drop_constraint("orgrole", type_="check")
        batch_op.drop_column("org_role")
    op.drop_index(op.f("ix_invitations_organisation_id"), table_name="invitations")
    op.drop_index(op.f("ix_invitations_email"), table_name="invitations")
    op.drop_table("invitations")
