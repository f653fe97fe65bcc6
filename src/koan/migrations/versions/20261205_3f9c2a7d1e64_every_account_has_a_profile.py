"""every account has a learner profile: profiles are made with the account, and accounts
made before that get their empty profile here

Revision ID: 3f9c2a7d1e64
Revises: e5b2d8c41f07
Create Date: 2026-12-05 17:00:00+00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import koan.db

revision: str = "3f9c2a7d1e64"
down_revision: str | None = "e5b2d8c41f07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

users = sa.table("users", sa.column("id", sa.Uuid()))
profiles = sa.table(
    "learner_profiles",
    sa.column("user_id", sa.Uuid()),
    sa.column("answers", sa.JSON()),
    sa.column("onboarding_completed", sa.Boolean()),
    sa.column("goals", sa.Text()),
    sa.column("interests", sa.JSON()),
    sa.column("updated_at", koan.db.UTCDateTime(timezone=True)),
)


def upgrade() -> None:
    connection = op.get_bind()
    has_profile = sa.exists().where(profiles.c.user_id == users.c.id)
    missing = connection.execute(sa.select(users.c.id).where(~has_profile)).scalars().all()
    now = datetime.now(UTC)
    for start in range(0, len(missing), BATCH):
        op.bulk_insert(
            profiles,
            [
                {
                    "user_id": user_id,
                    "answers": {},
                    "onboarding_completed": False,
                    "goals": "",
                    "interests": [],
                    "updated_at": now,
                }
                for user_id in missing[start : start + BATCH]
            ],
        )


def downgrade() -> None:
    # Empty profiles are what reading a missing one gives; nothing to undo.
    pass
