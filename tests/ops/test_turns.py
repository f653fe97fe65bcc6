"""Requests take turns at the worker's CPU: in order of arrival, a few at a time, and never
held up by a request that waits on the sandbox, a model, or anything else for long."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import cast

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from koan import turns
from koan.app import MAX_BODY_BYTES
from koan.models import Exercise, User
from koan.ops import metrics
from koan.resources import Resources
from koan.turns import Turns
from tests.exercises.conftest import submit
from tests.fixtures.factories import create_exercise
from tests.fixtures.llm_server import FakeLLMServer, Reply

# A guard against a test hanging for ever, never a measure: each wait ends far sooner.
NEVER = 30.0
# How long a request is given to get through: only a turn never given back holds it longer.
GUARD = 10.0


def _app(
    slots: int, lease_s: float = NEVER, on_wait: Callable[[float], None] | None = None
) -> tuple[FastAPI, dict[str, asyncio.Event]]:
    """A bare app behind Turns whose routes work in steps or wait for an event."""
    app = FastAPI()
    events: dict[str, asyncio.Event] = {}
    app.state.log = []

    def event(name: str) -> asyncio.Event:
        return events.setdefault(name, asyncio.Event())

    @app.get("/work/{name}")
    async def work(name: str) -> dict[str, str]:
        for step in range(5):
            app.state.log.append((name, step))
            await asyncio.sleep(0)  # where the event loop may switch to another request
        return {"done": name}

    @app.get("/hold/{name}")
    async def hold(name: str) -> dict[str, str]:
        await event(name).wait()
        return {"done": name}

    @app.get("/wait-elsewhere/{name}")
    async def wait_elsewhere(name: str) -> dict[str, str]:
        turns.give_back()
        await event(name).wait()
        return {"done": name}

    @app.get("/stream/{name}")
    async def stream(name: str) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"started\n"
            await event(name).wait()
            yield b"ended\n"

        return StreamingResponse(body())

    @app.get("/flow/{name}")
    async def flow(name: str) -> StreamingResponse:
        """A response that goes on working after it started, and steps aside on the way."""

        async def body() -> AsyncIterator[bytes]:
            yield b"started\n"
            await event(name).wait()
            await turns.step_aside()
            app.state.log.append((name, "went on"))
            yield b"ended\n"

        return StreamingResponse(body())

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(
        Turns, slots=slots, lease_s=lease_s, max_body_bytes=MAX_BODY_BYTES, on_wait=on_wait
    )
    return app, events


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def _started(task: asyncio.Task[httpx.Response]) -> None:
    """Let `task` run until it waits (for a turn or for its event)."""
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()


async def test_requests_arriving_together_are_served_one_after_another_in_order() -> None:
    app, _ = _app(slots=1)
    async with _client(app) as client:
        answers = await asyncio.gather(*(client.get(f"/work/r{i}") for i in range(4)))
    assert [a.json()["done"] for a in answers] == ["r0", "r1", "r2", "r3"]
    # Each request did all its work before the next began: nothing interleaved.
    assert app.state.log == [(f"r{i}", step) for i in range(4) for step in range(5)]


async def test_without_turns_the_same_requests_interleave() -> None:
    app, _ = _app(slots=1)
    app.user_middleware.clear()  # the same app, no turns
    async with _client(app) as client:
        await asyncio.gather(*(client.get(f"/work/r{i}") for i in range(4)))
    assert app.state.log != [(f"r{i}", step) for i in range(4) for step in range(5)]


async def test_as_many_requests_as_slots_are_worked_on_at_once() -> None:
    app, events = _app(slots=2)
    async with _client(app) as client:
        first = asyncio.create_task(client.get("/hold/a"))
        second = asyncio.create_task(client.get("/hold/b"))
        await _started(first)
        third = asyncio.create_task(client.get("/work/c"))
        await _started(third)  # two requests hold both turns: the third waits
        assert app.state.log == []
        events["a"].set()
        assert (await asyncio.wait_for(third, NEVER)).json() == {"done": "c"}
        assert not second.done()
        events["b"].set()
        await asyncio.gather(first, second)


@pytest.mark.parametrize(
    "path", ["/stream/a", "/wait-elsewhere/a"], ids=["response-started", "gave-back"]
)
async def test_a_request_that_answered_or_waits_elsewhere_lets_the_next_one_in(path: str) -> None:
    app, events = _app(slots=1)
    async with _client(app) as client:
        waiting = asyncio.create_task(client.get(path))
        await _started(waiting)
        # It holds no turn: the next request is served while it still waits.
        assert (await asyncio.wait_for(client.get("/work/b"), NEVER)).status_code == 200
        assert not waiting.done()
        events["a"].set()
        assert (await waiting).status_code == 200


async def test_a_request_held_up_past_its_lease_stops_holding_up_the_others() -> None:
    app, events = _app(slots=1, lease_s=0.05)
    async with _client(app) as client:
        held = asyncio.create_task(client.get("/hold/a"))
        await _started(held)
        assert (await asyncio.wait_for(client.get("/work/b"), NEVER)).status_code == 200
        assert not held.done()
        events["a"].set()
        await held


async def test_a_started_response_steps_aside_while_requests_wait_for_a_turn() -> None:
    app, events = _app(slots=1)
    async with _client(app) as client:
        flowing = asyncio.create_task(client.get("/flow/s"))
        await _started(flowing)  # its response started: it holds no turn
        held = asyncio.create_task(client.get("/hold/a"))
        await _started(held)
        queued = asyncio.create_task(client.get("/work/b"))
        await _started(queued)
        events["s"].set()
        await _started(flowing)  # it steps aside: a request waits for a turn
        assert ("s", "went on") not in app.state.log
        events["a"].set()
        await asyncio.wait_for(asyncio.gather(held, queued, flowing), NEVER)
        # It went on once nobody waited any more: the waiting request had its turn.
        assert app.state.log.index(("b", 0)) < app.state.log.index(("s", "went on"))


async def test_a_response_steps_aside_for_no_one_when_nobody_waits() -> None:
    app, events = _app(slots=1)
    async with _client(app) as client:
        flowing = asyncio.create_task(client.get("/flow/s"))
        await _started(flowing)
        held = asyncio.create_task(client.get("/hold/a"))  # holds the turn; nobody waits
        await _started(held)
        events["s"].set()
        assert (await asyncio.wait_for(flowing, NEVER)).text == "started\nended\n"
        events["a"].set()
        await held


async def test_a_response_steps_aside_for_at_most_its_lease_in_all() -> None:
    """A reply still flowing never stalls for long, however long the queue stays."""
    gate = turns._Gate(2)
    await gate.acquire()  # another request holds a turn throughout
    await gate.acquire()
    turn = turns.Turn(gate, lease_s=0.05)
    waiting = [asyncio.create_task(gate.acquire()) for _ in range(2)]
    await asyncio.sleep(0)
    turn.give_back()  # its response started: one of the waiting takes its turn, one waits on
    await asyncio.sleep(0)
    assert gate.waiting == 1
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(turn.step_aside(), GUARD)
    assert loop.time() - began >= 0.04
    began = loop.time()
    await turn.step_aside()  # its lease is spent: it goes on at once
    assert loop.time() - began < 0.04
    assert gate.waiting == 1
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert gate.waiting == 0


async def test_a_request_holding_its_turn_never_steps_aside() -> None:
    """It would hold up the very requests it waits for."""
    gate = turns._Gate(1)
    await gate.acquire()
    turn = turns.Turn(gate, lease_s=NEVER)
    waiting = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    assert gate.waiting == 1
    await asyncio.wait_for(turn.step_aside(), GUARD / 10)
    turn.give_back()
    await waiting
    await turns.step_aside()  # outside a request: nothing to do


async def test_health_probes_answer_whatever_the_queue() -> None:
    app, events = _app(slots=1)
    async with _client(app) as client:
        held = asyncio.create_task(client.get("/hold/a"))
        await _started(held)
        queued = asyncio.create_task(client.get("/work/b"))
        await _started(queued)
        assert (await asyncio.wait_for(client.get("/health/live"), NEVER)).status_code == 200
        assert not queued.done()
        events["a"].set()
        await asyncio.gather(held, queued)


async def test_each_request_s_wait_for_its_turn_is_told() -> None:
    waits: list[float] = []
    app, events = _app(slots=1, on_wait=waits.append)
    async with _client(app) as client:
        held = asyncio.create_task(client.get("/hold/a"))
        await _started(held)
        queued = asyncio.create_task(client.get("/work/b"))
        await _started(queued)
        assert len(waits) == 1  # the first took its turn at once; the second is waiting
        events["a"].set()
        await asyncio.gather(held, queued)
        await client.get("/health/live")  # takes no turn, so waits for none
    assert len(waits) == 2
    assert waits[1] > 0


async def test_a_body_sent_slowly_holds_no_turn_until_it_has_arrived() -> None:
    """Else a few clients trickling their bodies would hold up everybody's requests."""
    app, events = _app(slots=1)

    async def trickle() -> AsyncIterator[bytes]:
        yield b"half of it, "
        await events["rest"].wait()
        yield b"then the rest"

    events["rest"] = asyncio.Event()
    async with _client(app) as client:
        slow = asyncio.create_task(client.post("/echo", content=trickle()))
        await _started(slow)
        assert (await asyncio.wait_for(client.get("/work/b"), GUARD)).status_code == 200
        assert not slow.done()
        events["rest"].set()
        assert (await slow).json() == {"bytes": len(b"half of it, then the rest")}


async def test_a_body_past_the_limit_is_read_no_further_then_reaches_the_app_whole() -> None:
    """Past the limit the body cap inside answers 413: Turns must not buffer the rest first."""
    chunks = [b"0123456789"] * 5
    pulled = 0
    pulled_when_the_app_began: list[int] = []
    body: list[bytes] = []

    async def client_receive() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < 5}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pulled_when_the_app_began.append(pulled)
        while True:
            message = await receive()
            body.append(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Message) -> None:
        return None

    gated = Turns(app, slots=1, lease_s=NEVER, max_body_bytes=15)
    scope: Scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    await gated(scope, client_receive, send)
    assert pulled_when_the_app_began == [2]  # 10 bytes, then 20: past 15, it stopped reading
    assert b"".join(body) == b"0123456789" * 5


def test_turns_need_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        Turns(FastAPI(), slots=0, lease_s=1, max_body_bytes=MAX_BODY_BYTES)


# -- Koan's own waits: the sandbox and the model provider give the turn back -------------------

# Sleeping in the sandbox takes no CPU of the worker's, but a whole second.
SLOW_ADD = "import time\ntime.sleep(1)\n\ndef add(a, b):\n    return a + b\n"


def _one_turn(resources: Resources, make_app: Callable[[Resources], FastAPI]) -> FastAPI:
    """Koan's app with one turn and a lease longer than any test, so only a give-back frees it."""
    resources.settings = resources.settings.model_copy(
        update={"request_turns": 1, "request_turn_lease_s": NEVER}
    )
    return make_app(resources)


async def test_a_submission_being_graded_holds_no_turn(
    resources: Resources,
    make_app: Callable[[Resources], FastAPI],
    learner: User,
    headers: dict[str, str],
    session: AsyncSession,
) -> None:
    exercise: Exercise = await create_exercise(session)
    app = _one_turn(resources, make_app)
    async with _client(app) as client:
        grading = asyncio.create_task(submit(client, headers, exercise, SLOW_ADD))
        await _started(grading)  # it took the only turn first
        me = await asyncio.wait_for(client.get("/api/v1/users/me", headers=headers), NEVER)
        assert me.status_code == 200
        assert not grading.done()  # answered while the grading went on
        assert (await grading).json()["status"] == "passed"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_question_waiting_on_the_model_holds_no_turn(
    stream: bool,
    resources: Resources,
    make_app: Callable[[Resources], FastAPI],
    tutor: Callable[..., Resources],
    llm_server: FakeLLMServer,
    headers: dict[str, str],
) -> None:
    tutor()
    app = _one_turn(resources, make_app)
    llm_server.script(Reply.hanging())  # the model says nothing until released
    async with _client(app) as client:
        conversation = await client.post("/api/v1/conversations", headers=headers, json={})
        assert conversation.status_code == 201, conversation.text
        asking = asyncio.create_task(
            client.post(
                f"/api/v1/conversations/{conversation.json()['id']}/messages",
                headers={**headers, **({"Accept": "text/event-stream"} if stream else {})},
                json={"content": "Why does my loop stop early?"},
            )
        )
        await _started(asking)  # it took the only turn first
        me = await asyncio.wait_for(client.get("/api/v1/users/me", headers=headers), GUARD)
        assert me.status_code == 200
        assert not asking.done()
        asking.cancel()  # the learner leaves; the question stays stored, the model is let go
        with contextlib.suppress(asyncio.CancelledError):
            await asking


async def test_a_login_slowed_after_failures_holds_no_turn(
    resources: Resources,
    make_app: Callable[[Resources], FastAPI],
    learner: User,
    headers: dict[str, str],
) -> None:
    """Else anyone failing logins on purpose would hold up everybody's requests."""
    resources.settings = resources.settings.model_copy(
        update={"login_slowdown_step_s": 1.0, "login_slowdown_cap_s": 1.0}
    )
    app = _one_turn(resources, make_app)
    wrong = {"email": learner.email, "password": "not the password"}
    async with _client(app) as client:
        for _ in range(3):  # the first failures are answered at once
            assert (await client.post("/api/v1/auth/login", json=wrong)).status_code == 401
        slowed = asyncio.create_task(client.post("/api/v1/auth/login", json=wrong))
        await _started(slowed)  # it took the only turn first; it waits a second to answer
        me = await asyncio.wait_for(client.get("/api/v1/users/me", headers=headers), NEVER)
        assert me.status_code == 200
        assert not slowed.done()
        assert (await slowed).status_code == 401


def test_koan_takes_turns_as_configured(
    resources: Resources, make_app: Callable[[Resources], FastAPI]
) -> None:
    def turns_of(app: FastAPI) -> list[dict[str, object]]:
        return [m.kwargs for m in app.user_middleware if cast(object, m.cls) is Turns]

    resources.settings = resources.settings.model_copy(update={"request_turns": 3})
    assert turns_of(make_app(resources)) == [
        {
            "slots": 3,
            "lease_s": 0.25,
            "max_body_bytes": MAX_BODY_BYTES,
            "on_wait": metrics.turn_waited,
        }
    ]
    resources.settings = resources.settings.model_copy(update={"request_turns": 0})
    assert turns_of(make_app(resources)) == []
