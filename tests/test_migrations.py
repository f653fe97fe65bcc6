"""Migrations: one head, models match them (alembic check), and they go down and up cleanly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from koan.db import Base
from koan.migrate import alembic_config, downgrade_connection, upgrade_connection
from tests.conftest import Backend


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
