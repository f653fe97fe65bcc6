"""Helpers for consuming provider streams in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from koan.llm.base import LLMProvider
from koan.llm.errors import ProviderError
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


async def assert_error_event_ends_the_stream_after_partial_text(
    provider: LLMProvider, server: FakeLLMServer, request: CompletionRequest
) -> None:
    """An `error` event after two text chunks: those two arrive, then a retryable
    `server_error` that carries the provider's message."""
    server.script(Reply(text="one two three", error_after_chunks=2, error_message="Overloaded"))
    received: list[str] = []
    with pytest.raises(ProviderError) as caught:
        await drain(provider.stream(request), received)
    assert received == ["one ", "two "]
    assert caught.value.kind == "server_error"
    assert caught.value.retryable
    assert "Overloaded" in str(caught.value)
