"""A learner, their API headers and an exercise, shared by the exercise tests."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import Exercise
from tests.fixtures.factories import create_exercise
from tests.fixtures.live import live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py

WRONG = "def add(a, b):\n    return a - b\n"


@pytest.fixture
async def exercise(session: AsyncSession) -> Exercise:
    return await create_exercise(session)


async def submit(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise, code: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/exercises/{exercise.id}/submissions", headers=headers, json={"code": code}
    )
