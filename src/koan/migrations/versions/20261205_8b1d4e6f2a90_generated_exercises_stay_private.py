"""generated exercises stay private to the learner who asked for them until an admin approves
them: exercises.owner_id and exercises.approved_at

Revision ID: 8b1d4e6f2a90
Revises: 345628aeff0d
Create Date: 2026-12-05 17:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import koan.db

revision: str = "8b1d4e6f2a90"
down_revision: str | None = "345628aeff0d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exercises") as batch:
        batch.add_column(sa.Column("owner_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("approved_at", koan.db.UTCDateTime(), nullable=True))
        batch.create_foreign_key(
            "fk_exercises_owner_id_users", "users", ["owner_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_exercises_owner_id", ["owner_id"])
    # Generated exercises made before this were shared with everyone; they now wait for an
    # admin's approval like new ones (their requester is not recorded, so none keeps them).


def downgrade() -> None:
    with op.batch_alter_table("exercises") as batch:
        batch.drop_index("ix_exercises_owner_id")
        batch.drop_constraint("fk_exercises_owner_id_users", type_="foreignkey")
        batch.drop_column("approved_at")
        batch.drop_column("owner_id")
