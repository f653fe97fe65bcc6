"""Fixtures for the tutor chat tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import Exercise
from tests.chat.helpers import HoldingServer, create_evens_exercise
from tests.fixtures.live import live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py


@pytest.fixture
async def evens(session: AsyncSession) -> Exercise:
    return await create_evens_exercise(session)


@pytest.fixture(scope="session")
def holding_server_session() -> Iterator[HoldingServer]:
    server = HoldingServer()
    server.start()
    yield server
    server.release.set()
    server.stop()


@pytest.fixture
def holding_server(holding_server_session: HoldingServer) -> Iterator[HoldingServer]:
    """A fake provider whose HeldReply streams stall until `release` is set."""
    holding_server_session.reset()
    yield holding_server_session
    holding_server_session.release.set()
    holding_server_session.reset()
