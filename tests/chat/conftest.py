"""Fixtures for the tutor chat tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import Exercise, User
from koan.resources import Resources
from tests.chat.helpers import EvensChat, HoldingServer, create_evens_exercise
from tests.fixtures.live import live, live_resources
from tests.fixtures.llm_server import FakeLLMServer

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py


@pytest.fixture
async def evens(session: AsyncSession) -> Exercise:
    return await create_evens_exercise(session)


@pytest.fixture
def chat(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    evens: Exercise,
    tutor: Callable[..., Resources],
    llm_server: FakeLLMServer,
) -> EvensChat:
    """A learner talking to the tutor about the evens exercise (see EvensChat)."""
    return EvensChat(client, session, resources, learner, headers, evens, llm_server, tutor)


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
