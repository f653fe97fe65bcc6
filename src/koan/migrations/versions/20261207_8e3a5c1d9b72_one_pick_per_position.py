"""a learner's adaptive picks for a class assignment are made once: one item per position

Two requests showing a learner their assignments at once each made the picks; duplicates are
removed (the first of each position kept) before the index that stops them is made.

Revision ID: 8e3a5c1d9b72
Revises: 4b8e2d7c1f36
Create Date: 2026-12-07 03:20:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e3a5c1d9b72"
down_revision: str | None = "4b8e2d7c1f36"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM class_assignment_items WHERE user_id IS NOT NULL AND CAST(id AS TEXT) NOT IN"
        " (SELECT MIN(CAST(id AS TEXT)) FROM class_assignment_items WHERE user_id IS NOT NULL"
        " GROUP BY class_assignment_id, user_id, position)"
    )
    op.create_index(
        "uq_class_assignment_items_pick",
        "class_assignment_items",
        ["class_assignment_id", "user_id", "position"],
        unique=True,
        postgresql_where=sa.text("user_id IS NOT NULL"),
        sqlite_where=sa.text("user_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_class_assignment_items_pick", table_name="class_assignment_items")
