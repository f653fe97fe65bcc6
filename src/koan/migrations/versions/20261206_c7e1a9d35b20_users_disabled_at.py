"""an administrator can disable an account: users.disabled_at

Revision ID: c7e1a9d35b20
Revises: 8b1d4e6f2a93
Create Date: 2026-12-06 00:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import koan.db

revision: str = "c7e1a9d35b20"
down_revision: str | None = "8b1d4e6f2a93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("disabled_at", koan.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")
