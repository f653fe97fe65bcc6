"""Alembic environment: async engines, and a connection handed in by tests or `koan db`."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import koan.models  # noqa: F401  (registers every table on Base.metadata)
from koan.config import Settings
from koan.db import Base, create_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        # Also when the database cannot be opened: the driver's threads end with the loop.
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("database_url") or Settings().effective_database_url
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    context.configure(url=Settings().effective_database_url, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
