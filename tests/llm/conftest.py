"""Fixtures for the LLM layer: a real loopback provider server and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.llm_server import FakeClock, FakeLLMServer


@pytest.fixture(scope="session")
def llm_server_session() -> Iterator[FakeLLMServer]:
    """One server per test session (per xdist worker); tests share it through `llm_server`."""
    server = FakeLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def llm_server(llm_server_session: FakeLLMServer) -> Iterator[FakeLLMServer]:
    """The fake provider with an empty script and no recorded requests."""
    llm_server_session.reset()
    yield llm_server_session
    llm_server_session.reset()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock whose sleeps return at once and are recorded."""
    return FakeClock()
