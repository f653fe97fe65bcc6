"""Migrations: one head, models match them (alembic check), and they go down and up cleanly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from koan.db import Base, UTCDateTime
from koan.migrate import alembic_config, downgrade_connection, upgrade_connection
from koan.models import Conversation, ConversationMessage, ShownCode
from koan.resources import Resources
from tests.conftest import Backend
from tests.fixtures.factories import create_exercise, create_user


def test_a_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, script.get_heads()


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_the_migrations(backend: Backend) -> None:
    async with backend.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


async def test_downgrade_to_base_and_upgrade_again(backend: Backend) -> None:
    from sqlalchemy import inspect

    # Inside a transaction that is rolled back, so the shared schema is untouched.
    async with backend.engine.connect() as conn:
        transaction = await conn.begin()
        await conn.run_sync(downgrade_connection, "base")
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
        await conn.run_sync(upgrade_connection)
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert {"users", "exercises", "submissions"} <= set(tables)
        await transaction.rollback()


def _user_without_profile(connection: Connection) -> uuid.UUID:
    users = sa.table(
        "users",
        *(sa.column(name) for name in ("email", "name", "password_hash", "role", "timezone")),
        sa.column("preferences", sa.JSON()),
        sa.column("created_at", UTCDateTime(timezone=True)),
        sa.column("updated_at", UTCDateTime(timezone=True)),
        sa.column("id", sa.Uuid()),
    )
    user_id = uuid.uuid4()
    now = datetime.now(UTC)
    connection.execute(
        users.insert().values(
            id=user_id, email=f"old-{user_id.hex}@example.com", name="Old Account",
            password_hash="x", role="learner", timezone="UTC", preferences={},
            created_at=now, updated_at=now,
        )
    )  # fmt: skip
    return user_id


async def test_accounts_made_before_profiles_came_with_them_get_an_empty_one(
    backend: Backend,
) -> None:
    async with backend.engine.connect() as conn:
        transaction = await conn.begin()
        await conn.run_sync(downgrade_connection, "e5b2d8c41f07")
        user_id = await conn.run_sync(_user_without_profile)
        await conn.run_sync(upgrade_connection)
        profiles = sa.table(
            "learner_profiles",
            sa.column("user_id", sa.Uuid()),
            sa.column("onboarding_completed", sa.Boolean()),
            sa.column("goals"),
        )
        query = sa.select(profiles.c.onboarding_completed, profiles.c.goals).where(
            profiles.c.user_id == user_id
        )
        row = (await conn.execute(query)).one()
        await transaction.rollback()
    assert tuple(row) == (False, "")


async def test_replies_kept_before_the_ledger_still_count_after_it(
    connection: AsyncConnection, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    exercise = await create_exercise(session)
    about = Conversation(user_id=user.id, exercise_id=exercise.id, title="t")
    general = Conversation(user_id=user.id, title="g")
    session.add_all([about, general])
    await session.flush()
    code = "Try this:\n\n```python\nfor n in numbers:\n    if n % 2 == 0:\n```"
    for conversation, seq, role, content, model in (
        (about, 1, "user", "```python\nprint('mine')\n```", None),
        (about, 2, "assistant", code, "gpt"),
        (about, 3, "assistant", "What does `n % 2` give for 3?", "koan-offline"),
        (about, 4, "assistant", "Which numbers should reach the addition?", "gpt"),
        (general, 1, "assistant", code, "gpt"),
    ):
        session.add(ConversationMessage(
            conversation_id=conversation.id, seq=seq, role=role, content=content, model=model,
        ))  # fmt: skip
    await session.flush()
    await connection.run_sync(downgrade_connection, "6f2b9e4a7c13")

    await connection.run_sync(upgrade_connection)

    rows = (await session.execute(select(ShownCode))).scalars().all()
    assert [(r.user_id, r.exercise_id, r.conversation_id) for r in rows] == [
        (user.id, exercise.id, about.id)
    ]
    assert "if n % 2 == 0:" in rows[0].code
    assert "Try this" not in rows[0].code
