"""Helpers for consuming provider streams in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

from koan.llm.base import LLMProvider
from koan.llm.types import CompletionRequest, StreamChunk, StreamItem
from tests.fixtures.llm_server import FakeLLMServer, Reply


async def drain(items: AsyncIterator[StreamItem], received: list[str]) -> list[StreamItem]:
    """Consume a stream, appending each text delta to `received` as it arrives."""
    seen: list[StreamItem] = []
    async for item in items:
        seen.append(item)
        if isinstance(item, StreamChunk):
            received.append(item.delta)
    return seen


async def assert_streams_share_one_connection(
    provider: LLMProvider, server: FakeLLMServer, request: CompletionRequest
) -> None:
    """Three streams in a row arrive from one client address: each body is read to its end,
    so its connection goes back to the pool (no new TCP or TLS handshake per message)."""
    server.script(Reply(text="One?"), Reply(text="Two?"), Reply(text="Three?"))
    for _ in range(3):
        await drain(provider.stream(request), [])
    assert len(server.requests) == 3
    assert len({recorded.client for recorded in server.requests}) == 1
