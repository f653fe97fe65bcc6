"""Helpers shared by the tutor tests: an exercise worth leaking, attempts, SSE parsing."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from koan.models import Assignment, Exercise, LLMCall, Submission, User
from koan.resources import Resources
from tests.fixtures.factories import create_exercise
from tests.fixtures.llm_server import Api, FakeLLMServer, Reply

EVENS_SOLUTION = """\
def sum_of_evens(numbers):
    total = 0
    for n in numbers:
        if n % 2 == 0:
            total += n
    return total
"""
EVENS_STARTER = """\
def sum_of_evens(numbers):
    total = 0
    for n in numbers:
        total += n
    return total
"""
EVENS_TESTS = """\
from solution import sum_of_evens

def test_mixed():
    assert sum_of_evens([1, 2, 3, 4]) == 6, "2 + 4 is 6"

def test_none_even():
    assert sum_of_evens([1, 3]) == 0, "no even numbers sum to 0"
"""
EVENS_HINTS = [
    "The loop visits every number; only some of them should be added.",
    "A number is even when n % 2 == 0.",
    "Put the `total += n` line inside `if n % 2 == 0:`.",
]
# The reference solution with renamed variables: the guard must still recognise it.
LEAKING_REPLY = """\
Sure, here is the whole thing:

```python
def sum_of_evens(values):
    acc = 0
    for v in values:
        if v % 2 == 0:
            acc += v
    return acc
```
"""
FAILING_TEST = {
    "name": "test_mixed",
    "status": "failed",
    "message": "AssertionError: 2 + 4 is 6\nassert 10 == 6",
}


EVENS_STATEMENT = "Write `sum_of_evens(numbers)`: the sum of the even numbers."


async def create_evens_exercise(session: AsyncSession) -> Exercise:
    return await create_exercise(
        session,
        title="Sum of evens",
        statement=EVENS_STATEMENT,
        solution=EVENS_SOLUTION,
        starter_code=EVENS_STARTER,
        tests=EVENS_TESTS,
        hints=EVENS_HINTS,
        skills=["loops"],
    )


async def record_attempt(
    session: AsyncSession,
    res: Resources,
    user: User,
    exercise: Exercise,
    code: str = EVENS_STARTER,
    tests: list[dict[str, Any]] | None = None,
    hints_used: int = 0,
) -> Submission:
    """A graded attempt stored directly (as the grader would have), without running it."""
    now = res.clock.now()
    assignment = Assignment(
        user_id=user.id,
        exercise_id=exercise.id,
        kind="practice",
        status="in_progress",
        assigned_at=now,
        hints_used=hints_used,
        attempts=1,
    )
    session.add(assignment)
    await session.flush()
    results = tests if tests is not None else [FAILING_TEST]
    submission = Submission(
        user_id=user.id,
        exercise_id=exercise.id,
        assignment_id=assignment.id,
        code=code,
        status="failed" if any(t["status"] != "passed" for t in results) else "passed",
        passed=sum(t["status"] == "passed" for t in results),
        total=len(results),
        tests=results,
        created_at=now,
        graded_at=now,
    )
    session.add(submission)
    await session.flush()
    return submission


def parse_sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a text/event-stream body."""
    events: list[tuple[str, dict[str, Any]]] = []
    for block in body.split("\n\n"):
        name, data = "message", None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
        if data is not None:
            events.append((name, data))
    return events


def streamed_text(events: list[tuple[str, dict[str, Any]]]) -> tuple[str, str]:
    """(what the token events sent, the reply as the learner ends up seeing it: a `replace`
    event takes the place of everything sent before it)."""
    sent = "".join(str(data["delta"]) for name, data in events if name == "token")
    shown = ""
    for name, data in events:
        if name == "token":
            shown += str(data["delta"])
        elif name == "replace":
            shown = str(data["text"])
    return sent, shown


async def new_conversation(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise | None = None
) -> str:
    body = {"exercise_id": str(exercise.id)} if exercise is not None else {}
    r = await client.post("/api/v1/conversations", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def ask(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    conversation_id: str,
    content: str,
    *,
    stream: bool = False,
) -> httpx.Response:
    extra = {"Accept": "text/event-stream"} if stream else {}
    return await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        headers={**headers, **extra},
        json={"content": content},
    )


@dataclass
class HeldReply(Reply):
    hold_after: int = 2  # text chunks streamed before the stream stalls
    hold_again: int | None = None  # text chunks streamed before it stalls a second time


class HoldingServer(FakeLLMServer):
    """The fake provider, plus streamed replies that stall mid-way until released, and whole
    replies held back, written, until released."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = threading.Event()  # a held stream has stalled
        self.release = threading.Event()
        self.last_reply: Reply | None = None

    def reset(self) -> None:
        super().reset()
        self.reached.clear()
        self.release.clear()

    async def _openai_events(
        self, reply: Reply, model: str, include_usage: bool
    ) -> AsyncIterator[bytes]:
        sent = -1  # the first event only announces the assistant role
        async for event in super()._openai_events(reply, model, include_usage):
            yield event
            sent += 1
            if isinstance(reply, HeldReply) and sent in (reply.hold_after, reply.hold_again):
                self.reached.set()
                while not self.release.is_set():  # polls in the server's thread, not the test's
                    await asyncio.sleep(0.01)
                if sent == reply.hold_after and reply.hold_again is not None:
                    self.release.clear()  # released once: it stalls again further on

    async def _handle(self, request: Request, api: Api) -> Response:
        response = await super()._handle(request, api)
        reply = self.last_reply
        if isinstance(reply, HeldReply) and not isinstance(response, StreamingResponse):
            self.reached.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        return response

    def _next(self) -> tuple[Reply, int]:
        reply, generation = super()._next()
        self.last_reply = reply
        return reply, generation

    async def wait_until_held(self) -> None:
        """Return once a held reply has stalled (the test waits on an event, not a timer)."""
        assert await asyncio.to_thread(self.reached.wait, 30), "the held stream never stalled"


def leaks_counted(app: FastAPI) -> float:
    """koan_leak_guard_catches_total as Prometheus would read it from the app."""
    text = app.state.metrics.render()[0].decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "koan_leak_guard_catches_total"
    )


async def leak_flags(session: AsyncSession, user: User) -> list[bool]:
    """Whether each of the learner's model calls, oldest first, was withheld as a leak."""
    rows = await session.execute(
        select(LLMCall.leak_caught).where(LLMCall.user_id == user.id).order_by(LLMCall.created_at)
    )
    return list(rows.scalars())


@dataclass
class EvensChat:
    """A learner talking to the tutor (on the fake model) about the evens exercise: the set-up
    the leak-guard tests share."""

    client: httpx.AsyncClient
    session: AsyncSession
    resources: Resources
    learner: User
    headers: dict[str, str]
    exercise: Exercise
    llm: FakeLLMServer
    tutor: Callable[..., Resources]

    async def prepare(self, *replies: Reply, attempted: bool = True, **settings: Any) -> None:
        """The tutor on (with `settings`), an attempt at the exercise recorded (unless not
        `attempted`), the model's next replies scripted."""
        self.tutor(**settings)
        if attempted:
            await record_attempt(self.session, self.resources, self.learner, self.exercise)
        self.llm.script(*replies)

    async def start(self, *replies: Reply, attempted: bool = True, **settings: Any) -> str:
        """`prepare`, then a new conversation about the exercise: its id."""
        await self.prepare(*replies, attempted=attempted, **settings)
        return await new_conversation(self.client, self.headers, self.exercise)

    async def ask(self, conversation_id: str, text: str, *, stream: bool = False) -> httpx.Response:
        return await ask(self.client, self.headers, conversation_id, text, stream=stream)

    async def leak_flags(self) -> list[bool]:
        """Whether each of the learner's tutor calls had its draft withheld, oldest first."""
        return await leak_flags(self.session, self.learner)
