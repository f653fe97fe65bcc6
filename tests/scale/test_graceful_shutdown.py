"""SIGTERM (systemd stop, a deploy) lets the requests in flight finish, then the worker exits.

A real `koan serve` process grades a submission whose code takes a while; SIGTERM arrives while
it is being graded (its row is already stored as pending). The learner still gets the verdict,
and the process then exits by itself, cleanly. Likewise for a tutor reply being streamed:
SIGTERM arrives mid-reply, the server stops taking new connections, and the learner still
gets the rest of the reply, stored whole.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from koan.db import create_engine, transactional
from koan.exercises.bank import import_specs
from koan.exercises.repository import exercises_by_slug
from koan.models import ConversationMessage, Submission
from tests.chat.helpers import HeldReply, HoldingServer
from tests.fixtures.factories import exercise_spec
from tests.scale.servers import KoanServer, add_user, log_in, migrate, server_env

SLOW_SOLUTION = "import time\n\ntime.sleep(1.5)\n\n\ndef add(a, b):\n    return a + b\n"


async def test_sigterm_waits_for_the_submission_being_graded_then_exits(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'koan.db'}"
    await migrate(url)
    engine = create_engine(url)
    server = KoanServer(server_env(tmp_path, KOAN_DATABASE_URL=url), tmp_path)
    try:
        user = await add_user(engine)
        spec = exercise_spec()
        async with AsyncSession(engine) as session, transactional(session):
            await import_specs(session, [spec], source="imported")
        async with AsyncSession(engine) as session:
            exercise_id = (await exercises_by_slug(session, [spec.slug]))[spec.slug].id

        server.start()
        await server.wait_live()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            bearer = await log_in(client, user.email)
            submitting = asyncio.create_task(
                client.post(
                    f"/api/v1/exercises/{exercise_id}/submissions",
                    headers=bearer,
                    json={"code": SLOW_SOLUTION},
                )
            )
            await _wait_for_pending_submission(engine, submitting)
            server.signal(signal.SIGTERM)
            response = await submitting

        assert response.status_code == 201, response.text
        assert response.json()["status"] == "passed"
        assert response.json()["passed"] == response.json()["total"] == 4
        # Uvicorn re-raises the signal it caught once shutdown is complete, so the parent
        # (systemd) sees "terminated by SIGTERM", as for any process that honours it.
        assert await server.wait_exit() in (0, -signal.SIGTERM), server.log()
        assert "Traceback" not in server.log()
    finally:
        server.stop()
        await engine.dispose()


REPLY = "What does your loop do on its very last turn?"


async def test_sigterm_lets_a_tutor_reply_being_streamed_finish_then_exits(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'koan.db'}"
    await migrate(url)
    engine = create_engine(url)
    provider = HoldingServer().start()
    provider.script(HeldReply(text=REPLY, hold_after=2))
    env = server_env(
        tmp_path,
        KOAN_DATABASE_URL=url,
        KOAN_LLM_PROVIDER="openai",
        KOAN_LLM_BASE_URL=provider.openai_base_url,
        KOAN_LLM_MODEL="gpt-4o-mini",
    )
    server = KoanServer(env, tmp_path)
    try:
        user = await add_user(engine)
        server.start()
        await server.wait_live()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            bearer = await log_in(client, user.email)
            created = await client.post("/api/v1/conversations", headers=bearer, json={})
            path = f"/api/v1/conversations/{created.json()['id']}/messages"

            async def stream_reply() -> str:
                headers = {**bearer, "Accept": "text/event-stream"}
                async with client.stream(
                    "POST", path, headers=headers, json={"content": "Why is my total off?"}
                ) as response:
                    assert response.status_code == 200
                    return "".join([text async for text in response.aiter_text()])

            streaming = asyncio.create_task(stream_reply())
            await provider.wait_until_held()  # two tokens are out: the reply is mid-stream
            server.signal(signal.SIGTERM)
            await _wait_until_refusing_connections(server.url)
            # The model is still writing a second into the shutdown (a real reply takes
            # seconds); the server must wait for it, not cut it off.
            await asyncio.sleep(1.0)
            assert server.proc is not None
            assert server.proc.poll() is None
            provider.release.set()
            body = await streaming

        assert "event: done" in body, body
        assert '"incomplete": false' in body
        assert await server.wait_exit() in (0, -signal.SIGTERM), server.log()
        assert "Traceback" not in server.log()
        async with AsyncSession(engine) as session:
            stored = await session.scalar(
                select(ConversationMessage.content).where(ConversationMessage.role == "assistant")
            )
        assert stored == REPLY
    finally:
        server.stop()
        provider.stop()
        await engine.dispose()


async def _wait_until_refusing_connections(url: str) -> None:
    """Until the server has stopped accepting connections: shutdown has begun (bounded)."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=url, timeout=2) as probe:
        while time.monotonic() < deadline:
            try:
                await probe.get("/health/live", headers={"Connection": "close"})
            except httpx.TransportError:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("the server kept accepting connections after SIGTERM")


async def _wait_for_pending_submission(
    engine: AsyncEngine, request: asyncio.Task[httpx.Response]
) -> None:
    """Until the submission is stored and being graded (bounded poll)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert not request.done(), "the submission finished before SIGTERM could be sent"
        async with engine.connect() as conn:
            pending = await conn.scalar(
                select(Submission.id).where(Submission.status == "pending").limit(1)
            )
        if pending is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the submission was never stored")
