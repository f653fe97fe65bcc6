"""A unit of work commits at its end or at a named checkpoint, never anywhere else."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from koan.db import UncheckedCommit, checkpoint, transactional
from koan.errors import Conflict
from koan.models import User


def _user() -> User:
    return User(email=f"uow-{uuid.uuid4().hex}@example.com", password_hash="x", name="Uow")


def _session(connection: AsyncConnection) -> AsyncSession:
    return AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


async def _commit_directly(connection: AsyncConnection, user: User) -> None:
    async with _session(connection) as session, transactional(session):
        session.add(user)
        await session.commit()


async def _refuse_after_a_checkpoint(
    connection: AsyncConnection, kept: User, dropped: User
) -> None:
    async with _session(connection) as session, transactional(session):
        session.add(kept)
        await checkpoint(session)
        session.add(dropped)
        await session.flush()
        raise Conflict("refused after the checkpoint")


async def _count(connection: AsyncConnection, email: str) -> int:
    return int(
        await connection.scalar(select(func.count()).select_from(User).where(User.email == email))
        or 0
    )


async def test_a_direct_commit_inside_a_unit_of_work_is_refused(
    connection: AsyncConnection,
) -> None:
    user = _user()
    email = user.email
    with pytest.raises(UncheckedCommit, match="checkpoint"):
        await _commit_directly(connection, user)
    assert await _count(connection, email) == 0


async def test_a_named_checkpoint_keeps_the_work_done_so_far(connection: AsyncConnection) -> None:
    kept, dropped = _user(), _user()
    kept_email, dropped_email = kept.email, dropped.email
    with pytest.raises(Conflict):
        await _refuse_after_a_checkpoint(connection, kept, dropped)
    assert await _count(connection, kept_email) == 1
    assert await _count(connection, dropped_email) == 0


async def test_the_unit_of_work_commits_at_its_end(connection: AsyncConnection) -> None:
    user = _user()
    async with _session(connection) as session, transactional(session):
        session.add(user)
    assert await _count(connection, user.email) == 1


async def test_a_session_outside_a_unit_of_work_commits_as_usual(
    connection: AsyncConnection,
) -> None:
    user = _user()
    async with _session(connection) as session:
        session.add(user)
        await session.commit()
    assert await _count(connection, user.email) == 1


async def test_a_savepoint_inside_a_unit_of_work_is_not_a_commit(
    connection: AsyncConnection,
) -> None:
    user = _user()
    email = user.email
    async with _session(connection) as session, transactional(session), session.begin_nested():
        session.add(user)
    assert await _count(connection, email) == 1
