"""the code the tutor showed a learner about an exercise outlives its conversation: shown_code

Filled from the tutor's replies in conversations about an exercise kept so far (their code and
the sentences holding it, as the guard reads them), so what they showed keeps counting.

Revision ID: a3d9e6f1c248
Revises: 6f2b9e4a7c13
Create Date: 2026-12-07 06:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import koan.db
from koan.llm.patches import shown_code

revision: str = "a3d9e6f1c248"
down_revision: str | None = "6f2b9e4a7c13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Koan's offline tutor writes no code of its own: its replies add nothing up.
OFFLINE_MODEL = "koan-offline"
BATCH = 500


def upgrade() -> None:
    shown = op.create_table(
        "shown_code",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("exercise_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("created_at", koan.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_shown_code_user_id_users"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["exercise_id"], ["exercises.id"],
            name=op.f("fk_shown_code_exercise_id_exercises"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"],
            name=op.f("fk_shown_code_conversation_id_conversations"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shown_code")),
    )  # fmt: skip
    op.create_index("ix_shown_code_user_exercise", "shown_code", ["user_id", "exercise_id", "id"])
    conversations = sa.table(
        "conversations",
        sa.column("id", sa.Uuid()),
        sa.column("user_id", sa.Uuid()),
        sa.column("exercise_id", sa.Uuid()),
    )
    messages = sa.table(
        "chat_messages",
        sa.column("conversation_id", sa.Uuid()),
        sa.column("seq", sa.Integer()),
        sa.column("role", sa.String()),
        sa.column("model", sa.String()),
        sa.column("content", sa.Text()),
        sa.column("created_at", koan.db.UTCDateTime(timezone=True)),
    )
    replies = (
        sa.select(
            conversations.c.user_id, conversations.c.exercise_id, conversations.c.id,
            messages.c.content, messages.c.created_at,
        )
        .join(conversations, conversations.c.id == messages.c.conversation_id)
        .where(
            conversations.c.exercise_id.is_not(None),
            messages.c.role == "assistant",
            sa.or_(messages.c.model.is_(None), messages.c.model != OFFLINE_MODEL),
        )
        .order_by(messages.c.created_at, messages.c.conversation_id, messages.c.seq)
    )  # fmt: skip
    bind = op.get_bind()
    rows = [
        {"user_id": user_id, "exercise_id": exercise_id, "conversation_id": conversation_id,
         "code": code, "created_at": created_at}
        for user_id, exercise_id, conversation_id, content, created_at
        in bind.execute(replies)
        if (code := shown_code(content))
    ]  # fmt: skip
    for start in range(0, len(rows), BATCH):
        bind.execute(sa.insert(shown), rows[start : start + BATCH])


def downgrade() -> None:
    op.drop_index("ix_shown_code_user_exercise", table_name="shown_code")
    op.drop_table("shown_code")
