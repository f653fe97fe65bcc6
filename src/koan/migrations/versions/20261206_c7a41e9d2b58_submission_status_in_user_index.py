"""submissions: the status in ix_submissions_user_exercise_created (PostgreSQL)

A class's dashboards read each learner's submissions through this index and need only their
exercise, time and status: with the status in the index (INCLUDE), PostgreSQL answers from
the index alone instead of visiting a table page per submission. SQLite has no INCLUDE and
keeps the index as it was.

Revision ID: c7a41e9d2b58
Revises: c7e1a9d35b20
Create Date: 2026-12-06 09:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c7a41e9d2b58"
down_revision: str | None = "c7e1a9d35b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_submissions_user_exercise_created"
COLUMNS = ["user_id", "exercise_id", "created_at"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="submissions")
    op.create_index(INDEX, "submissions", COLUMNS, postgresql_include=["status"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="submissions")
    op.create_index(INDEX, "submissions", COLUMNS)
