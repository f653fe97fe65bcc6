"""A PostgreSQL connection prepares each of Koan's statements once, however many it sends."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from koan.db import create_engine
from tests.conftest import DATABASE_URL, Backend

pytestmark = [
    pytest.mark.skipif(not DATABASE_URL, reason="needs PostgreSQL (set KOAN_TEST_DATABASE_URL)"),
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]

# More distinct statements than the driver keeps by default (100); Koan sends several hundred.
STATEMENTS = 300


async def _prepared(engine_url: str, rounds: int) -> int:
    """How many statements the server prepared for one connection over `rounds` passes."""
    engine = create_engine(engine_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            for _ in range(rounds):
                for n in range(STATEMENTS):
                    await conn.execute(text(f"SELECT {n} AS n WHERE :x = 1"), {"x": 1})
            return int(await conn.scalar(text("SELECT count(*) FROM pg_prepared_statements")) or 0)
    finally:
        await engine.dispose()


async def test_every_statement_stays_prepared_on_its_connection(backend: Backend) -> None:
    # A second pass over the same statements prepares none of them again.
    once = await _prepared(backend.database_url, rounds=1)
    twice = await _prepared(backend.database_url, rounds=2)
    assert once >= STATEMENTS
    assert twice == once


async def test_the_last_connection_used_is_handed_out_next(backend: Backend) -> None:
    engine = create_engine(backend.database_url)
    try:
        first, second = await engine.connect(), await engine.connect()
        first_pid = await first.scalar(text("SELECT pg_backend_pid()"))
        second_pid = await second.scalar(text("SELECT pg_backend_pid()"))
        await second.close()
        await first.close()  # back to the pool last: its statements are the warm ones
        async with engine.connect() as again:
            assert await again.scalar(text("SELECT pg_backend_pid()")) == first_pid
        assert first_pid != second_pid
    finally:
        await engine.dispose()
