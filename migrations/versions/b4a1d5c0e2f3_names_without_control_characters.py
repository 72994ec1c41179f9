"""names stored before control characters were refused lose them

Revision ID: b4a1d5c0e2f3
Revises: 5e55101a7c01
Create Date: 2026-12-04 18:00:00

The forms now refuse a name holding a line break, NUL or a bidirectional control
(portal.text). A name stored before that stays broken without this: a business name
with CR/LF is the From name of every reply, so none of that organisation's replies
could ever be sent, and nothing in the portal renames an organisation. Each such
character becomes a space (runs of spaces collapse); a name left empty, or now equal
to another one its column keeps unique, gets the row's id after it.

The rule is written out here, not imported: a migration must keep doing what it did
when it was written, whatever portal.text becomes. There is no downgrade to do: the
old characters are not kept.
"""

import re

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b4a1d5c0e2f3"
down_revision = "5e55101a7c01"
branch_labels = None
depends_on = None

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

#: (table, name column, the columns its uniqueness is scoped by, or None when not unique)
NAME_COLUMNS = (
    ("organisations", "name", ()),
    ("users", "name", None),
    ("mailboxes", "name", ()),
    ("tags", "name", ("organisation_id",)),
    ("canned_replies", "title", ("organisation_id",)),
)


def _clean(name: str) -> str:
    return " ".join(_UNSAFE.sub(" ", name).split())


def upgrade():
    conn = op.get_bind()
    for table, column, scope in NAME_COLUMNS:
        scope_columns = scope or ()
        # Table and column names come from NAME_COLUMNS above, never from data.
        selected = ", ".join(("id", f"{column} AS name", *scope_columns))
        rows = conn.execute(sa.text(f"SELECT {selected} FROM {table}")).mappings().all()
        taken = {(tuple(r[c] for c in scope_columns), r["name"]) for r in rows}
        for row in rows:
            if not row["name"] or not _UNSAFE.search(row["name"]):
                continue
            key = tuple(row[c] for c in scope_columns)
            cleaned = _clean(row["name"])
            if scope is not None and (not cleaned or (key, cleaned) in taken):
                cleaned = f"{cleaned} ({row['id']})".strip()
            elif not cleaned and table != "users":
                cleaned = f"({row['id']})"
            taken.add((key, cleaned))
            conn.execute(
                sa.text(f"UPDATE {table} SET {column} = :name WHERE id = :id"),
                {"name": cleaned, "id": row["id"]},
            )


def downgrade():
    pass
