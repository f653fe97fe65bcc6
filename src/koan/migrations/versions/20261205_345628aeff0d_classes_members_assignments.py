"""classes, memberships, invites and class assignments

Revision ID: 345628aeff0d
Revises: 3f9c2a7d1e64
Create Date: 2026-12-05 17:00:55.289057+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import koan.db

revision: str = "345628aeff0d"
down_revision: str | None = "3f9c2a7d1e64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "classes",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("join_code", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("starts_at", koan.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ends_at", koan.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("tutor_strictness", sa.String(length=16), nullable=True),
        sa.Column("tutor_instructions", sa.Text(), nullable=False),
        sa.Column("tutor_avoid", sa.JSON(), nullable=False),
        sa.Column("tutor_off", sa.Boolean(), nullable=False),
        sa.Column("tutor_off_from", koan.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("tutor_off_until", koan.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("tutor_off_reason", sa.String(length=300), nullable=False),
        sa.Column("learner_daily_budget_usd", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("class_daily_cap_usd", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", koan.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", koan.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_classes_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classes")),
        sa.UniqueConstraint("join_code", name=op.f("uq_classes_join_code")),
    )
    op.create_table(
        "class_assignments",
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("skill", sa.String(length=40), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("opens_at", koan.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", koan.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", koan.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name=op.f("fk_class_assignments_class_id_classes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_class_assignments_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_assignments")),
    )
    with op.batch_alter_table("class_assignments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_class_assignments_class_due", ["class_id", "due_at"], unique=False
        )

    op.create_table(
        "class_invites",
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", koan.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", koan.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name=op.f("fk_class_invites_class_id_classes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["users.id"],
            name=op.f("fk_class_invites_invited_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_invites")),
        sa.UniqueConstraint("class_id", "email", name=op.f("uq_class_invites_class_id_email")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_class_invites_token_hash")),
    )
    op.create_table(
        "class_memberships",
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("joined_at", koan.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name=op.f("fk_class_memberships_class_id_classes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_class_memberships_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("class_id", "user_id", name=op.f("pk_class_memberships")),
    )
    with op.batch_alter_table("class_memberships", schema=None) as batch_op:
        batch_op.create_index("ix_class_memberships_class_role", ["class_id", "role"], unique=False)
        batch_op.create_index("ix_class_memberships_user", ["user_id"], unique=False)

    op.create_table(
        "class_assignment_items",
        sa.Column("class_assignment_id", sa.Uuid(), nullable=False),
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("exercise_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_assignment_id"],
            ["class_assignments.id"],
            name=op.f("fk_class_assignment_items_class_assignment_id_class_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name=op.f("fk_class_assignment_items_class_id_classes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["exercise_id"],
            ["exercises.id"],
            name=op.f("fk_class_assignment_items_exercise_id_exercises"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_class_assignment_items_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_assignment_items")),
    )
    with op.batch_alter_table("class_assignment_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_class_assignment_items_assignment_user",
            ["class_assignment_id", "user_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_class_assignment_items_class_id"), ["class_id"], unique=False
        )
        batch_op.create_index("ix_class_assignment_items_exercise", ["exercise_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("class_assignment_items", schema=None) as batch_op:
        batch_op.drop_index("ix_class_assignment_items_exercise")
        batch_op.drop_index(batch_op.f("ix_class_assignment_items_class_id"))
        batch_op.drop_index("ix_class_assignment_items_assignment_user")

    op.drop_table("class_assignment_items")
    with op.batch_alter_table("class_memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_class_memberships_user")
        batch_op.drop_index("ix_class_memberships_class_role")

    op.drop_table("class_memberships")
    op.drop_table("class_invites")
    with op.batch_alter_table("class_assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_class_assignments_class_due")

    op.drop_table("class_assignments")
    op.drop_table("classes")
