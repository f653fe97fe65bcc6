"""SQLite statements run in one trip to aiosqlite's thread, and read as they always did."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from koan.db import create_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


async def test_rows_counts_and_ids_read_as_from_a_cursor(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        inserted = await conn.execute(text("INSERT INTO notes (body) VALUES ('a')"))
        assert (inserted.rowcount, inserted.lastrowid) == (1, 1)
        await conn.execute(
            text("INSERT INTO notes (body) VALUES (:body)"), [{"body": "b"}, {"body": "c"}]
        )
        rows = await conn.execute(text("SELECT id, body FROM notes ORDER BY id"))
        assert list(rows.keys()) == ["id", "body"]
        assert rows.all() == [(1, "a"), (2, "b"), (3, "c")]
        updated = await conn.execute(text("UPDATE notes SET body = body || '!' WHERE id > 1"))
        assert updated.rowcount == 2
        returned = await conn.execute(
            text("UPDATE notes SET body = 'z' WHERE id = :id RETURNING id, body"), {"id": 3}
        )
        assert returned.one() == (3, "z")
        nothing = await conn.execute(text("SELECT id FROM notes WHERE id = 99"))
        assert nothing.first() is None


async def test_each_statement_is_one_trip_to_the_thread(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    execute = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await execute(self, fn, *args, **kwargs)

    async with engine.connect() as conn:
        await conn.execute(text("SELECT 0"))  # the transaction has begun
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
        rows = await conn.execute(text("SELECT 1 UNION ALL SELECT 2"))
        assert rows.scalars().all() == [1, 2]
        # SQLAlchemy's own adapter makes four: open a cursor, execute, fetch, close.
        assert trips == ["_run"]


async def test_errors_come_through_as_sqlalchemy_errors(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO notes (body) VALUES ('same')"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO notes (body) VALUES ('same')"))
    with pytest.raises(OperationalError, match="no such table"):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT * FROM missing"))
    async with engine.connect() as conn:  # the connection is still good afterwards
        assert (await conn.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 1
