"""A unit of work commits at its end or at a named checkpoint, never anywhere else."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from koan.db import AfterCommit, UncheckedCommit, after_commit, checkpoint, memo, transactional
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


# -- work after the commit ----------------------------------------------------------------


def _renamer(email: str, name: str, seen: list[int]) -> AfterCommit:
    """After-commit work that renames the user `email`, noting how many such users it saw."""

    async def rename(session: AsyncSession) -> None:
        found = await session.scalar(
            select(func.count()).select_from(User).where(User.email == email)
        )
        seen.append(int(found or 0))
        await session.execute(update(User).where(User.email == email).values(name=name))

    return rename


async def _ask_then_fail(session: AsyncSession, work: AfterCommit) -> None:
    async with session.begin_nested():
        after_commit(session, work)
        raise RuntimeError("the step's savepoint fails")


async def _ask_then_refuse(connection: AsyncConnection, user: User, work: AfterCommit) -> None:
    async with _session(connection) as session, transactional(session):
        session.add(user)
        await session.flush()
        async with session.begin_nested():
            after_commit(session, work)
        raise Conflict("refused")


async def _name(connection: AsyncConnection, email: str) -> str | None:
    return await connection.scalar(select(User.name).where(User.email == email))


async def test_after_commit_work_runs_once_the_unit_has_committed(
    connection: AsyncConnection,
) -> None:
    user = _user()
    seen: list[int] = []
    async with _session(connection) as session, transactional(session):
        session.add(user)
        await session.flush()
        after_commit(session, _renamer(user.email, "Renamed", seen))
        assert seen == []  # not before the commit
    # It ran after the commit (it saw the committed row) and its own write was committed.
    assert seen == [1]
    assert await _name(connection, user.email) == "Renamed"


async def test_after_commit_work_is_forgotten_when_its_savepoint_rolls_back(
    connection: AsyncConnection,
) -> None:
    user = _user()
    seen: list[int] = []
    async with _session(connection) as session, transactional(session):
        session.add(user)
        await session.flush()
        with pytest.raises(RuntimeError):
            await _ask_then_fail(session, _renamer(user.email, "Dropped", seen))
        after_commit(session, _renamer(user.email, "Kept", seen))
    assert seen == [1]
    assert await _name(connection, user.email) == "Kept"


async def test_after_commit_work_is_forgotten_when_the_unit_rolls_back(
    connection: AsyncConnection,
) -> None:
    user = _user()
    seen: list[int] = []
    with pytest.raises(Conflict):
        await _ask_then_refuse(connection, user, _renamer(user.email, "Dropped", seen))
    assert seen == []
    assert await _count(connection, user.email) == 0


async def test_failed_after_commit_work_leaves_the_committed_unit_alone(
    connection: AsyncConnection,
) -> None:
    user = _user()
    email = user.email

    async def fails(session: AsyncSession) -> None:
        await session.execute(update(User).where(User.email == email).values(name="Half"))
        raise RuntimeError("the follow-up fails")

    async with _session(connection) as session, transactional(session):
        session.add(user)
        await session.flush()
        after_commit(session, fails)
    assert await _count(connection, email) == 1
    assert await _name(connection, email) == "Uow"
    assert user.name == "Uow"  # what the unit holds is still loaded


async def _remember_then_fail(session: AsyncSession) -> None:
    async with session.begin_nested():
        memo(session)["key"] = "inside"
        raise RuntimeError("the savepoint fails")


async def test_the_memo_keeps_rows_until_the_session_rolls_back(
    connection: AsyncConnection,
) -> None:
    async with _session(connection) as session, transactional(session):
        memo(session)["key"] = "kept"
        await session.flush()
        async with session.begin_nested():
            pass
        assert memo(session) == {"key": "kept"}  # a released SAVEPOINT keeps it
        with pytest.raises(RuntimeError):
            await _remember_then_fail(session)
        assert memo(session) == {}
