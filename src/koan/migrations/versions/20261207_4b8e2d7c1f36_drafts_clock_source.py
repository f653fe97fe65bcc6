"""a draft remembers which clock timed its save: drafts.written_at, drafts.device

Revision ID: 4b8e2d7c1f36
Revises: 9d3f6a1c2e57
Create Date: 2026-12-07 02:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import koan.db

revision: str = "4b8e2d7c1f36"
down_revision: str | None = "9d3f6a1c2e57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("drafts") as batch:
        batch.add_column(sa.Column("written_at", koan.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("device", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("drafts") as batch:
        batch.drop_column("device")
        batch.drop_column("written_at")
