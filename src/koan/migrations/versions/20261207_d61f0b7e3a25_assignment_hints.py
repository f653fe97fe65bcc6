"""the hints the tutor's model tailored for a learner are kept: assignment_hints

Revision ID: d61f0b7e3a25
Revises: a3d9e6f1c248
Create Date: 2026-12-07 21:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import koan.db

revision: str = "d61f0b7e3a25"
down_revision: str | None = "a3d9e6f1c248"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assignment_hints",
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("rung", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", koan.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_assignment_hints_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("assignment_id", "rung", name=op.f("pk_assignment_hints")),
    )


def downgrade() -> None:
    op.drop_table("assignment_hints")
