"""Bounded concurrency: as many runs as slots, a bounded queue, GraderBusy beyond it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from koan.errors import GraderBusy

T = TypeVar("T")


class SlotPool(Generic[T]):
    """Hands out slots one job at a time; refuses at once when the queue is full."""

    def __init__(self, slots: Sequence[T], *, queue_size: int, retry_after_s: int = 2) -> None:
        self._free: asyncio.Queue[T] = asyncio.Queue()
        for slot in slots:
            self._free.put_nowait(slot)
        self._queue_size = queue_size
        self._waiting = 0
        self._retry_after_s = retry_after_s

    def queue_depth(self) -> int:
        """Jobs waiting for a free slot."""
        return self._waiting

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[T]:
        """A free slot for the duration of the block; GraderBusy if too many already wait."""
        if self._free.empty() and self._waiting >= self._queue_size:
            raise GraderBusy(
                "All graders are busy and the queue is full; try again shortly.",
                retry_after=self._retry_after_s,
            )
        self._waiting += 1
        try:
            slot = await self._free.get()
        finally:
            self._waiting -= 1
        try:
            yield slot
        finally:
            self._free.put_nowait(slot)
