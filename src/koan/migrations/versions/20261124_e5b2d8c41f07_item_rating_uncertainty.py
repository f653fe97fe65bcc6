"""item rating uncertainty

Revision ID: e5b2d8c41f07
Revises: c4a7f1e2b9d0
Create Date: 2026-11-24 02:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5b2d8c41f07"
down_revision: str | None = "c4a7f1e2b9d0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exercises", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rating_uncertainty", sa.Float(), nullable=False, server_default="0.7")
        )


def downgrade() -> None:
    with op.batch_alter_table("exercises", schema=None) as batch_op:
        batch_op.drop_column("rating_uncertainty")
