"""Bounded concurrency: as many runs as slots, a fair queue, GraderBusy beyond its capacity.

Waiting jobs are served round-robin by owner (the learner who submitted them), not first come
first served: one learner with many submissions queued delays another learner's next run by at
most one of theirs per free slot. A job without an owner is an owner of its own.

The queue holds as many jobs as the slots can start within `max_wait_s` at the throughput they
have shown (never fewer than `queue_size`, never more than `queue_ceiling`): waiting a little in
a fair queue is better than being refused, but a wait far beyond that helps nobody.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from koan.errors import GraderBusy

T = TypeVar("T")

# Weight of the newest run in the moving average of slot time per job.
SMOOTHING = 0.1


class SlotPool(Generic[T]):
    """Hands out slots one job at a time, fairly between owners; refuses when the queue is full."""

    def __init__(
        self,
        slots: Sequence[T],
        *,
        queue_size: int,
        max_wait_s: float = 0.0,
        queue_ceiling: int | None = None,
        retry_after_s: int = 2,
    ) -> None:
        self._free: list[T] = list(slots)
        self._slots = len(slots)
        self._queue_size = queue_size
        self._max_wait_s = max_wait_s
        self._ceiling = max(queue_size, queue_ceiling if queue_ceiling is not None else queue_size)
        self._retry_after_s = retry_after_s
        self._waiters: dict[Hashable, deque[asyncio.Future[T]]] = {}
        self._turns: deque[Hashable] = deque()  # owners with waiting jobs, next to serve first
        self._waiting = 0
        self._running = 0
        self._job_s: float | None = None  # moving average of slot time per job

    def queue_depth(self) -> int:
        """Jobs waiting for a free slot."""
        return self._waiting

    def running(self) -> int:
        """Jobs holding a slot."""
        return self._running

    def waiting_for(self, owner: Hashable) -> int:
        """Jobs of one owner waiting for a slot."""
        return len(self._waiters.get(owner, ()))

    def throughput(self) -> float | None:
        """Jobs per second the slots have been finishing (None before the first)."""
        if self._job_s is None:
            return None
        return self._slots / max(self._job_s, 1e-3)

    def capacity(self) -> int:
        """How many jobs may wait right now."""
        rate = self.throughput()
        if rate is None:
            return self._queue_size
        sized = math.floor(rate * self._max_wait_s)
        return min(self._ceiling, max(self._queue_size, sized))

    @asynccontextmanager
    async def acquire(
        self, owner: Hashable | None = None, rank: Callable[[T], float] | None = None
    ) -> AsyncIterator[T]:
        """A slot for the duration of the block (of the free ones, the one `rank` rates
        highest); GraderBusy if the queue is full."""
        slot = await self._take(object() if owner is None else owner, rank)
        self._running += 1
        started = time.monotonic()
        try:
            yield slot
        finally:
            self._running -= 1
            self._record(time.monotonic() - started)
            self._release(slot)

    async def _take(self, owner: Hashable, rank: Callable[[T], float] | None = None) -> T:
        if self._free and not self._waiting:
            if rank is None or len(self._free) == 1:
                return self._free.pop()
            best = max(range(len(self._free)), key=lambda index: rank(self._free[index]))
            return self._free.pop(best)
        if self._waiting >= self.capacity():
            rate = self.throughput()
            wait = self._waiting / rate if rate else self._retry_after_s
            raise GraderBusy(
                "All graders are busy and the queue is full; try again shortly.",
                retry_after=max(self._retry_after_s, math.ceil(wait)),
            )
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        queue = self._waiters.get(owner)
        if queue is None:
            queue = self._waiters[owner] = deque()
            self._turns.append(owner)
        queue.append(future)
        self._waiting += 1
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(future.result())  # handed a slot just as it gave up
            else:
                self._forget(owner, future)
            raise

    def _forget(self, owner: Hashable, future: asyncio.Future[T]) -> None:
        queue = self._waiters.get(owner)
        if queue is None or future not in queue:
            return
        queue.remove(future)
        self._waiting -= 1
        if not queue:
            del self._waiters[owner]
            self._turns.remove(owner)

    def _release(self, slot: T) -> None:
        """Give the slot to the next owner in turn, or back to the free list."""
        while self._turns:
            owner = self._turns.popleft()
            queue = self._waiters[owner]
            future = queue.popleft()
            self._waiting -= 1
            if queue:
                self._turns.append(owner)  # back of the line: everyone else goes first
            else:
                del self._waiters[owner]
            if not future.done():
                future.set_result(slot)
                return
        self._free.append(slot)

    def _record(self, seconds: float) -> None:
        if self._job_s is None:
            self._job_s = seconds
        else:
            self._job_s += SMOOTHING * (seconds - self._job_s)
