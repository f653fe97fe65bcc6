"""Helpers for consuming provider streams in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

from koan.llm.types import StreamChunk, StreamItem


async def drain(items: AsyncIterator[StreamItem], received: list[str]) -> list[StreamItem]:
    """Consume a stream, appending each text delta to `received` as it arrives."""
    seen: list[StreamItem] = []
    async for item in items:
        seen.append(item)
        if isinstance(item, StreamChunk):
            received.append(item.delta)
    return seen
