"""A write to a row every learner shares (an exercise's rating), made after the grading's commit,
holds its lock only while PostgreSQL runs the statement: not until the worker's event loop
comes back to the request to send a COMMIT, which under a class's burst is after a step of
every other request the worker serves, while every other worker's write to the row waits."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from koan.db import after_commit, transactional
from koan.models import Exercise
from tests.conftest import DATABASE_URL, Backend
from tests.fixtures.factories import create_exercise
from tests.fixtures.live import LiveApp


@pytest.mark.skipif(not DATABASE_URL, reason="PostgreSQL only (CI sets KOAN_TEST_DATABASE_URL)")
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_shared_row_is_not_locked_while_its_writer_waits_for_its_turn(
    live: LiveApp, backend: Backend
) -> None:
    res = live.res
    async with res.session_factory() as session, transactional(session):
        exercise = await create_exercise(session)
        live.exercises.append(exercise.id)
    step = update(Exercise).where(Exercise.id == exercise.id).values(rating=Exercise.rating + 1)
    stepped, resumed = asyncio.Event(), asyncio.Event()

    async def step_then_wait(follow_up: AsyncSession) -> None:
        await follow_up.execute(step)
        stepped.set()
        await resumed.wait()  # the worker serves other requests before this one's next step

    async def graded() -> None:
        async with res.session_factory() as session, transactional(session):
            await session.get(Exercise, exercise.id)
            after_commit(session, step_then_wait)

    grading = asyncio.create_task(graded())
    try:
        await asyncio.wait_for(stepped.wait(), timeout=30)
        # Another worker's step to the same row goes through at once (a wait on the first
        # one's lock would end in LockNotAvailable).
        async with backend.engine.connect() as other:
            await other.execute(text("SET LOCAL lock_timeout = '2s'"))
            await other.execute(step)
            await other.commit()
    finally:
        resumed.set()
        await grading
    async with res.session_factory() as session:
        rating = await session.scalar(select(Exercise.rating).where(Exercise.id == exercise.id))
    assert rating == exercise.rating + 2
