"""Database engine, sessions, and the declarative base shared by every model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Column, DateTime, MetaData, Table, event
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlalchemy.types import TypeDecorator

from koan.db import sqlite
from koan.errors import KoanError

log = structlog.get_logger(__name__)

# Stable constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


def utcnow() -> datetime:
    return datetime.now(UTC)


PREPARED_STATEMENTS_KEPT = 2000


def insert_unless_present(table: Table, *key: Column[Any]) -> dict[str, Any]:
    """An INSERT of `table` that skips a row whose `key` (a unique index) is taken, by the
    name of each database's dialect: built once, as the dialects write it differently."""
    return {
        "postgresql": postgresql_dialect.insert(table).on_conflict_do_nothing(
            index_elements=list(key)
        ),
        "sqlite": sqlite_dialect.insert(table).on_conflict_do_nothing(index_elements=list(key)),
    }


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets foreign keys and real SAVEPOINT support."""
    # A failed statement's values (a learner's code, a password's hash, an address) stay out
    # of its error's text, which the log of a failed request carries with its traceback.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, module=sqlite.ONE_TRIP_DBAPI, connect_args={"timeout": 30}, **kwargs
        )
        sqlite.configure(engine)
        return engine
    # Kept connections sized for a class's peak (a burst of submissions, each request holding
    # one while it records its verdict): a connection opened beyond them costs PostgreSQL a
    # backend process to fork and tear down, which under load cost more than the queries.
    # The app passes its settings (KOAN_DATABASE_POOL_SIZE and friends); these are the defaults.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    # The connection used last is handed out first: its prepared statements are warm, and
    # connections kept beyond the usual load stay idle instead of taking turns.
    kwargs.setdefault("pool_use_lifo", True)
    if make_url(url).get_driver_name() == "asyncpg":
        # Each connection keeps its prepared statements: room for every statement Koan sends
        # (several hundred), so none is prepared again (a round trip, and a parse and plan on
        # the server) because others pushed it out of a smaller cache.
        kwargs["connect_args"] = {
            "prepared_statement_cache_size": PREPARED_STATEMENTS_KEPT,
            **kwargs.get("connect_args", {}),
        }
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping") and engine.dialect.driver == "asyncpg":
        _drop_closed_connections(engine)
    return engine


def _drop_closed_connections(engine: AsyncEngine) -> None:
    """Hand out no pooled connection the server has closed (a restart, a failover, an idle
    timeout), without a round trip: asyncpg marks a connection closed as soon as the event
    loop reads the server's goodbye. SQLAlchemy's `pool_pre_ping` would instead spend three
    round trips on every checkout (BEGIN, a query, ROLLBACK)."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            # The pool discards this connection and hands out a fresh one.
            raise DisconnectionError("the database server closed this connection")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


# A unit of work (a request, a CLI command, a streamed reply's store) commits once, at its end,
# or at a checkpoint a service names; a commit anywhere else raises `UncheckedCommit`.
_GUARDED = "koan.unit_of_work"
_COMMITTING = "koan.committing"
_AFTER_COMMIT = "koan.after_commit"

AfterCommit = Callable[[AsyncSession], Awaitable[None]]


class UncheckedCommit(RuntimeError):
    """A commit inside a unit of work that is neither its end nor a named checkpoint."""


@event.listens_for(Session, "before_commit")
def _only_named_commits(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT released inside the unit of work commits nothing yet
    if session.info.get(_GUARDED) and not session.info.get(_COMMITTING):
        raise UncheckedCommit(
            "Commit through the unit of work (koan.db.transactional, e.g. the request's "
            "session dependency) or a service's named koan.db.checkpoint, not directly."
        )


def after_commit(session: AsyncSession | Session, work: AfterCommit) -> None:
    """Run `work` once the unit of work has committed, in a short transaction of its own.

    For a write to a row many learners share (an exercise's rating): done inside the unit of
    work, its lock would be held until the unit commits and queue every other learner behind it.
    Forgotten if the transaction (or SAVEPOINT) that asked for it rolls back; if `work` fails,
    or the process dies in between, it is lost, so use it only for what may be lost. Session
    events, which see only the synchronous session, pass that."""
    sync = session if isinstance(session, Session) else session.sync_session
    asked_in = sync.get_nested_transaction() or sync.get_transaction()
    sync.info.setdefault(_AFTER_COMMIT, []).append((asked_in, work))


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


_MEMO = "koan.memo"


def memo(session: AsyncSession) -> dict[Any, Any]:
    """A place for a repository to keep rows it has loaded during this session, so one request
    reads them once; emptied whenever the session (or a SAVEPOINT in it) rolls back."""
    found: dict[Any, Any] = session.info.setdefault(_MEMO, {})
    return found


def refresh_loaded(
    session: AsyncSession, model: type[Any], key: Any, values: dict[str, Any]
) -> None:
    """After a Core statement wrote `values` to a row: the copy of that row this session holds,
    if it holds one, takes them as loaded (not as changes to flush), so ORM readers later in the
    session see what the database holds."""
    held = session.sync_session.identity_map.get(identity_key(model, key))
    if held is not None:
        for name, value in values.items():
            set_committed_value(held, name, value)


_LOCKED = "koan.locked"


def locked_rows(session: AsyncSession) -> dict[Any, Any]:
    """Rows this transaction has locked (SELECT ... FOR UPDATE), so a repository locks each
    once: the lock lasts until the transaction ends, and so does this. Emptied on commit and
    on any rollback (a SAVEPOINT's rollback releases the locks taken inside it)."""
    found: dict[Any, Any] = session.info.setdefault(_LOCKED, {})
    return found


@event.listens_for(Session, "after_commit")
def _locks_end_with_the_transaction(session: Session) -> None:
    session.info.pop(_LOCKED, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back_work(session: Session, previous_transaction: SessionTransaction) -> None:
    session.info.pop(_MEMO, None)
    session.info.pop(_LOCKED, None)
    pending = session.info.get(_AFTER_COMMIT)
    if pending:
        pending[:] = [(t, w) for t, w in pending if not _within(t, previous_transaction)]


async def _commit(session: AsyncSession) -> None:
    session.info[_COMMITTING] = True
    try:
        await session.commit()
        for _, work in session.info.pop(_AFTER_COMMIT, []):
            # A session of its own, so a failure's rollback expires nothing the unit still holds.
            async with AsyncSession(
                bind=session.bind, join_transaction_mode="create_savepoint"
            ) as follow_up:
                try:
                    await work(follow_up)
                    await follow_up.commit()
                except Exception:
                    log.exception("db.after_commit_failed", work=getattr(work, "__name__", "?"))
    finally:
        session.info.pop(_COMMITTING, None)


async def checkpoint(session: AsyncSession) -> None:
    """Commit what the unit of work has done so far, at a point a service names and explains
    (e.g. a submission stored before it is graded, so a crash cannot lose the learner's code)."""
    await _commit(session)


@asynccontextmanager
async def transactional(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit when the block finishes cleanly; roll back on error, unless the error says the
    work done so far must stand (e.g. a session revoked while refusing a replayed token).
    Inside the block, only `checkpoint` may commit."""
    session.info[_GUARDED] = True
    try:
        yield session
    except KoanError as exc:
        await (_commit(session) if exc.keep_changes else session.rollback())
        raise
    except BaseException:
        await session.rollback()
        raise
    else:
        await _commit(session)
