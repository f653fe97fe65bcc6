"""class invitations are mailed after the request: class_invites.mail_status and mailed_at

Revision ID: 5e2b8c4f7a11
Revises: c7a41e9d2b58
Create Date: 2026-12-06 03:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import koan.db

revision: str = "5e2b8c4f7a11"
down_revision: str | None = "c7a41e9d2b58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Invitations made before were mailed within their request: theirs went out (or were
    # logged as failed, which was not recorded), so they count as sent.
    with op.batch_alter_table("class_invites") as batch:
        batch.add_column(
            sa.Column("mail_status", sa.String(16), nullable=False, server_default="sent")
        )
        batch.add_column(sa.Column("mailed_at", koan.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("class_invites") as batch:
        batch.alter_column("mail_status", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("class_invites") as batch:
        batch.drop_column("mailed_at")
        batch.drop_column("mail_status")
