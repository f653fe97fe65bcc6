"""SQLite through aiosqlite: the connection settings, and statements run in one trip each.

aiosqlite runs every call on a thread of its own per connection, and SQLAlchemy's adapter
makes four such calls for each statement (open a cursor, execute, fetch, close), each a
thread hop that under load also waits its turn for the interpreter. `ONE_TRIP_DBAPI` runs
all four in one (the CPU saved per statement is in docs/benchmarks.md). Server-side cursors
(streamed results) keep SQLAlchemy's own adapter.
"""

from __future__ import annotations

import collections
import sqlite3
import statistics
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import EMPTY_DICT, await_

Row = tuple[Any, ...]
Outcome = tuple[Any, int, int | None, list[Row]]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    """On the connection's thread: execute, read every row, close. Returns the description,
    rowcount, lastrowid and rows that SQLAlchemy reads from the cursor afterwards."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement is executed, fetched and closed in one call to the thread;
    what SQLAlchemy then asks of it is answered from memory."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")
    # Nothing is left open on the thread for SQLAlchemy to close.
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    async def _in_thread(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            outcome: Outcome = await connection._execute(  # type: ignore[no-untyped-call]
                _run, connection._conn, operation, parameters, many
            )
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._in_thread(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._in_thread(operation, seq_of_parameters, many=True)

    def close(self) -> None:
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor  # type: ignore[assignment]


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite as SQLAlchemy's async SQLite dialect sees it, with `OneTripCursor`s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        connection = aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy's adapter does: never block exit
        return OneTripConnection(self, await_(connection))  # type: ignore[arg-type]


ONE_TRIP_DBAPI = OneTripDBAPI(aiosqlite, sqlite3)


class Median:
    """The aggregate median(x) of the values that are not NULL: the middle one, or the mean
    of the two middle ones (NULL when there are none), as PostgreSQL's percentile_cont(0.5)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> float | None:
        return float(statistics.median(self.values)) if self.values else None


def configure(engine: AsyncEngine) -> None:
    """Connection settings, and transactions that begin as the application needs."""

    # pysqlite's own transaction handling breaks SAVEPOINT; take it over (SQLAlchemy recipe).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL survives application crashes (not power loss) and saves an fsync
        # per commit; a submission commits twice.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        # SQLite has no median; PostgreSQL's is percentile_cont (koan.db.stats.median).
        dbapi_connection.run_async(
            lambda aio: aio._execute(aio._conn.create_aggregate, "median", 1, Median)
        )

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes fails at once with "database is locked" when another writer got in between,
        # while IMMEDIATE waits its turn (busy_timeout). Probes that only read opt out.
        if conn.get_execution_options().get("read_only"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
