"""What one database step costs Koan's process in the installed SQLAlchemy and asyncpg, in
instructions.

    .venv/bin/python bench/sqlalchemy_statement_cost.py
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test] [--steps 300]

Each step below runs under valgrind's callgrind (which counts the instructions a process
executes, not seconds, so the figure does not move with the machine's load) twice: once after
100 warm-up steps, once after 100 + `--steps`. The difference, divided by `--steps`, is one
step's cost without the start-up. The steps are the shapes Koan's requests are made of, on an
`AsyncSession` over asyncpg with uvloop, as `koan serve` runs them:

- `orm-read`: a session, one ORM entity read by its key with a statement built once, COMMIT;
- `core-read`: a session, one Core read of plain rows (three columns), COMMIT;
- `orm-write`: a session, an entity read, one attribute changed, flushed as an UPDATE, COMMIT;
- `autocommit-read`: `core-read` on a connection in autocommit (no BEGIN, no COMMIT sent).

Only the client's instructions count; PostgreSQL's are its own. The table is a private one
(`koan_bench_sa_<pid>`), dropped at the end.

To compare versions, install each into a scratch environment and run this file with its
interpreter (the environment needs sqlalchemy, asyncpg, greenlet and uvloop):

    python3 -m venv --without-pip /tmp/sa20
    .venv/bin/uv pip install --python /tmp/sa20/bin/python 'sqlalchemy[asyncio]==2.0.59' \\
        asyncpg==0.32.0 uvloop
    /tmp/sa20/bin/python bench/sqlalchemy_statement_cost.py
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

from sqlalchemy.orm import Mapped

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import callgrind_instructions  # noqa: E402

WARMUP = 100
STEPS = ("orm-read", "core-read", "orm-write", "autocommit-read")


def client(url: str, step: str, count: int, table: str) -> None:
    import uvloop
    from sqlalchemy import String, bindparam, select
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.orm import DeclarativeBase, mapped_column

    class Base(DeclarativeBase):
        pass

    class Row(Base):
        __tablename__ = table
        id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(100))
        email: Mapped[str] = mapped_column(String(200))
        visits: Mapped[int] = mapped_column(default=0)

    by_id = select(Row).where(Row.id == bindparam("id"))
    plain = select(Row.id, Row.name, Row.visits).where(Row.id == bindparam("id"))
    key = uuid.UUID(int=7)

    async def run() -> None:
        engine = create_async_engine(url, pool_size=2)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with sessions() as session:
            session.add(Row(id=key, name="Ada", email="ada@example.com"))
            await session.commit()
        autocommit = async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        for _ in range(count):
            async with (autocommit if step == "autocommit-read" else sessions)() as session:
                if step == "orm-read":
                    (await session.execute(by_id, {"id": key})).scalar_one()
                elif step in ("core-read", "autocommit-read"):
                    (await session.execute(plain, {"id": key})).one()
                else:
                    row = (await session.execute(by_id, {"id": key})).scalar_one()
                    row.visits += 1
                await session.commit()
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
        await engine.dispose()

    uvloop.run(run())


def instructions(url: str, step: str, count: int) -> int:
    table = f"koan_bench_sa_{os.getpid()}"
    argv = [sys.executable, __file__, "--database-url", url, "--client", step, str(count), table]
    return callgrind_instructions(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--only", choices=STEPS, action="append", help="one step (repeatable)")
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client is not None:
        step, count, table = args.client
        client(args.database_url, step, int(count), table)
        return
    import asyncpg
    import sqlalchemy

    print(f"SQLAlchemy {sqlalchemy.__version__}, asyncpg {asyncpg.__version__}")
    for step in args.only or STEPS:
        base = instructions(args.database_url, step, WARMUP)
        more = instructions(args.database_url, step, WARMUP + args.steps)
        print(f"  {step}: {(more - base) / args.steps:,.0f} instructions per step")


if __name__ == "__main__":
    main()
