"""learner_progress.achievement_summary: what the achievement rules read, kept per completion

Revision ID: 6f2b9e4a7c13
Revises: 8e3a5c1d9b72
Create Date: 2026-12-07 04:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6f2b9e4a7c13"
down_revision: str | None = "8e3a5c1d9b72"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Left empty: each learner's first award pass builds it from the practice log.
    with op.batch_alter_table("learner_progress") as batch:
        batch.add_column(sa.Column("achievement_summary", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("learner_progress") as batch:
        batch.drop_column("achievement_summary")
