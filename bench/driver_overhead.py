"""What one SQL round trip costs Koan's process, by the layer it goes through.

    .venv/bin/python bench/driver_overhead.py [--database-url postgresql://...] [--statements 5000]
        [--rounds 3]

A private database (`koan_bench_driver_<pid>`, migrated, dropped at the end) on the given
PostgreSQL server, one account in it, uvloop as in `koan serve`. The same one-row read of a
user is sent, one after another on one connection inside one transaction, through each layer:

- asyncpg alone (`Connection.fetch` on the pooled connection's driver connection);
- SQLAlchemy with the SQL as text (`AsyncConnection.exec_driver_sql`);
- SQLAlchemy Core (`select(users.c.id, users.c.name)`), compiled once and cached;
- the ORM, a whole `User` (`AsyncSession.execute(select(User))`, the identity map emptied
  between reads, as each request starts with an empty one);
- the ORM through `AsyncSession.get` (the same, by primary key).

Reported: the process's CPU per statement (`time.process_time()`), the median of `--rounds`.
Then one request's worth of transaction: a session from the factory, one Core read, COMMIT.
Every read of a request pays its layer's share; the difference between the first row and the
others is what SQLAlchemy's asyncio layer adds to every round trip.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402
from tests.scale.servers import create_database, drop_database  # noqa: E402

from koan.db import create_engine, create_session_factory  # noqa: E402
from koan.models import User  # noqa: E402


async def per_statement(read: Callable[[], Awaitable[object]], count: int) -> float:
    """Microseconds of this process's CPU per call of `read`, after a warm-up."""
    for _ in range(200):
        await read()
    started = time.process_time()
    for _ in range(count):
        await read()
    return (time.process_time() - started) / count * 1e6


async def one_round(
    factory: async_sessionmaker[AsyncSession], user_id: uuid.UUID, count: int
) -> dict[str, float]:
    """CPU µs per read through each layer, on one connection inside one transaction."""
    users = User.__table__
    core = select(users.c.id, users.c.name).where(users.c.id == user_id)
    orm = select(User).where(User.id == user_id)
    sql = "SELECT id, name FROM users WHERE id = $1"
    found: dict[str, float] = {}
    async with factory() as session, session.begin():
        conn = await session.connection()
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None

        async def orm_read() -> object:
            row = (await session.execute(orm)).scalar_one()
            session.expunge_all()
            return row

        async def orm_get() -> object:
            row = await session.get(User, user_id)
            session.expunge_all()
            return row

        layers: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("asyncpg alone", lambda: raw.fetch(sql, user_id)),
            ("SQLAlchemy, SQL as text", lambda: conn.exec_driver_sql(sql, (user_id,))),
            ("SQLAlchemy Core", lambda: conn.execute(core)),
            ("ORM, select(User)", orm_read),
            ("ORM, session.get", orm_get),
        ]
        for label, read in layers:
            found[label] = await per_statement(read, count)

    async def transaction() -> object:
        async with factory() as session:
            row = (await session.execute(core)).one()
            await session.commit()
            return row

    found["a session, one Core read, COMMIT"] = await per_statement(transaction, count // 5)
    return found


async def bench(args: argparse.Namespace) -> list[tuple[str, float]]:
    name = f"koan_bench_driver_{os.getpid()}"
    url = await create_database(args.database_url, name)
    engine = create_engine(url)
    factory = create_session_factory(engine)
    rows: dict[str, list[float]] = {}
    try:
        async with factory() as session:
            user = User(
                email=f"driver-{uuid.uuid4().hex}@example.org", name="Driver", password_hash="-"
            )
            session.add(user)
            await session.commit()
        for _ in range(args.rounds):
            for label, value in (await one_round(factory, user.id, args.statements)).items():
                rows.setdefault(label, []).append(value)
    finally:
        await engine.dispose()
        await drop_database(args.database_url, name)
    return [(label, statistics.median(values)) for label, values in rows.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server to create the private database on",
    )  # fmt: skip
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = uvloop.run(bench(args))
    print("| layer | CPU µs per round trip |\n|---|---:|")  # noqa: T201
    for label, value in results:
        print(f"| {label} | {value:.1f} |")  # noqa: T201
    print(f"\n_{machine()}_")  # noqa: T201


if __name__ == "__main__":
    main()
