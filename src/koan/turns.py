"""Requests take turns at the worker's CPU: a few at a time, the others in order of arrival.

One event loop serves every request of a worker. When many arrive at once (a class asking the
tutor in the same second), the loop moves all of them forward together, a step each, so every
one of them ends late, at about the time the last one does. With turns, at most `slots`
requests are being worked on at once and the rest wait in the order they came, so the first
ones answer as soon as their own work is done.

A request takes its turn once its body has arrived (a client sending it slowly holds none), and
holds it only while it keeps the CPU busy: it gives it back when its response starts, when it
goes to wait on something slow or done off the event loop (`give_back()`: the grading sandbox,
a model provider, a password hash, a slowed login), and at the latest after `lease_s`, so that
a request held up by anything else (a lock, a slow query) never holds up the others for long.
A request never takes a turn again. The health probes and /metrics take none: they answer
whatever the queue.

A response that goes on working after it has started (a reply streamed as the model writes it)
steps aside while requests wait for a turn (`step_aside()`): the questions of a class asking
at once reach their first token before the replies already flowing are finished. It does so
for at most `lease_s` over the whole response, so a reply never stalls for long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Paths that never wait for a turn: a load balancer's probe must not time out behind a queue.
UNGATED_PREFIXES = ("/health/", "/metrics")


class _Gate:
    """A worker's turns, and how many requests are waiting for one."""

    __slots__ = ("_free", "_emptied", "waiting")

    def __init__(self, slots: int) -> None:
        self._free = asyncio.Semaphore(slots)
        self.waiting = 0
        self._emptied: asyncio.Future[None] | None = None  # done when nobody waits any more

    async def acquire(self) -> None:
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
            emptied = self._emptied
            if not self.waiting and emptied is not None:
                self._emptied = None
                if not emptied.done():
                    emptied.set_result(None)

    def release(self) -> None:
        self._free.release()

    async def until_nobody_waits(self, timeout_s: float) -> None:
        if not self.waiting:
            return
        if self._emptied is None:
            self._emptied = asyncio.get_running_loop().create_future()
        await asyncio.wait((self._emptied,), timeout=timeout_s)


class Turn:
    """One request's turn: given back once, whichever comes first (response, wait, lease).
    Once given back, what is left of `aside_s` is how long the request may still step aside."""

    __slots__ = ("_gate", "_held", "_lease", "aside_s")

    def __init__(self, gate: _Gate, lease_s: float) -> None:
        self._gate = gate
        self._held = True
        self._lease = asyncio.get_running_loop().call_later(lease_s, self.give_back)
        self.aside_s = lease_s

    def give_back(self) -> None:
        if self._held:
            self._held = False
            self._lease.cancel()
            self._gate.release()

    async def step_aside(self) -> None:
        if self._held or not self._gate.waiting or self.aside_s <= 0:
            return
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            await self._gate.until_nobody_waits(self.aside_s)
        finally:
            self.aside_s -= loop.time() - began


_current: ContextVar[Turn | None] = ContextVar("koan_turn", default=None)


def give_back() -> None:
    """The current request is about to wait on something slow: let the next one have its turn.

    A no-op outside a request, for a request that took no turn, or one given back already."""
    turn = _current.get()
    if turn is not None:
        turn.give_back()


async def step_aside() -> None:
    """The current request, whose response has started, lets the requests waiting for a turn
    go first: it waits until none does, for at most its lease over the whole response.

    Returns at once when nobody waits, outside a request, for a request that took no turn,
    or one that still holds its turn (it would hold up the very requests it waits for)."""
    turn = _current.get()
    if turn is not None:
        await turn.step_aside()


class Turns:
    """ASGI middleware: at most `slots` HTTP requests of this worker hold a turn at once."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        slots: int,
        lease_s: float,
        max_body_bytes: int,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("turns need at least one slot")
        self.app = app
        self.slots = slots
        self.lease_s = lease_s
        # A body is read whole before its request takes a turn (a client sending it slowly
        # must not hold one), up to this many bytes: past them, the body limit answers 413.
        self.max_body_bytes = max_body_bytes
        self.on_wait = on_wait  # told each request's wait for its turn, in seconds
        self._gate: _Gate | None = None

    def _turns(self) -> _Gate:
        # Made on the first request, inside the worker's event loop.
        if self._gate is None:
            self._gate = _Gate(self.slots)
        return self._gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(UNGATED_PREFIXES):
            await self.app(scope, receive, send)
            return
        receive = await self._body_first(receive)
        gate = self._turns()
        asked = time.perf_counter()
        await gate.acquire()
        if self.on_wait is not None:
            self.on_wait(time.perf_counter() - asked)
        turn = Turn(gate, self.lease_s)
        token = _current.set(turn)

        async def send_and_give_back(message: Message) -> None:
            if message["type"] == "http.response.start":
                turn.give_back()
            await send(message)

        try:
            await self.app(scope, receive, send_and_give_back)
        finally:
            turn.give_back()
            _current.reset(token)

    async def _body_first(self, receive: Receive) -> Receive:
        """Read the request's body (up to max_body_bytes) now; the app gets it from memory."""
        read: list[Message] = []
        size = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break  # the client left
            size += len(message.get("body", b""))
            if not message.get("more_body", False) or size > self.max_body_bytes:
                break
        pending = iter(read)

        async def replay() -> Message:
            message = next(pending, None)
            return message if message is not None else await receive()

        return replay
