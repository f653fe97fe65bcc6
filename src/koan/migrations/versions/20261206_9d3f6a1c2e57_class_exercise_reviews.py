"""a class's instructor approves or rejects exercises the model wrote for its learners:
class_exercise_reviews

Revision ID: 9d3f6a1c2e57
Revises: 5e2b8c4f7a11
Create Date: 2026-12-06 03:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import koan.db

revision: str = "9d3f6a1c2e57"
down_revision: str | None = "5e2b8c4f7a11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "class_exercise_reviews",
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("exercise_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", koan.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"], ["classes.id"],
            name=op.f("fk_class_exercise_reviews_class_id_classes"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["exercise_id"], ["exercises.id"],
            name=op.f("fk_class_exercise_reviews_exercise_id_exercises"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"],
            name=op.f("fk_class_exercise_reviews_decided_by_users"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("class_id", "exercise_id", name=op.f("pk_class_exercise_reviews")),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("class_exercise_reviews")
