"""SQL statements per request on the routes a learner calls all day: ceilings that may only fall.

Each database round trip costs the worker CPU in SQLAlchemy and the driver, more than the
route's own logic; these ceilings keep the counts from creeping back up. When a change lowers
a count, lower its ceiling here too. SAVEPOINTs are left out: they stand in for the commits of
the test's rolled-back transaction and do not exist in production.

A ceiling rises only for a statement that saves more CPU than it costs, measured with
bench/request_cpu.py (docs/benchmarks.md): the daily pick weighs the bank as plain values and
then reads the one exercise it chose, instead of a whole row for every exercise in the bank.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.ext.asyncio import AsyncSession

from koan.resources import Resources
from tests.conftest import Backend
from tests.fixtures.factories import ADD_SOLUTION, ADD_STARTER, bearer, create_exercise, create_user

TAILORED = "POST hints (tailored by the model)"
# After a session's first request, its worker answers who is calling from what it kept
# (koan.auth.snapshots), so the routes after `users/me` send no query for the caller.
# route -> the most statements one request may send (per backend where they differ: SQLite
# stores a tutor question in more statements than PostgreSQL's one).
CEILINGS: dict[str, int | dict[str, int]] = {
    "GET /users/me": 1,
    "GET /exercises/daily": 7,
    # PostgreSQL writes the verdict in the statement that counts the attempt (SQLite cannot).
    "POST submissions (wrong)": {"sqlite": 9, "postgres": 8},
    "POST hints": 2,
    # The same, rewritten by the tutor's model for the learner's code (their latest submission
    # read with the exercise): the class policy, the day's spending and budget (the learner's
    # first call of the day), the call's record, and the hint kept for the exercise page to
    # show again (the learner paid for it; an authored rung is not written).
    TAILORED: 6,
    "POST submissions (right)": {"sqlite": 13, "postgres": 12},
    # A question about no exercise, here: the learner's classes in an exam window are read (a
    # class's exam switches off every conversation of its learners).
    "POST conversations/{id}/messages": {"sqlite": 7, "postgres": 4},
    "GET /progress": 2,
}


@contextmanager
def counted(backend: Backend, uncached: list[str] | None = None) -> Iterator[list[str]]:
    """The statements sent to the database while the block runs, SAVEPOINTs left out; those
    SQLAlchemy cannot keep compiled (no cache key: compiled anew on every call) also go to
    `uncached` when given."""
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            sent.append(statement)
            if uncached is not None and context.cache_hit is CacheStats.NO_CACHE_KEY:
                uncached.append(statement)

    event.listen(backend.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(backend.engine.sync_engine, "before_cursor_execute", note)


Step = Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]]


async def _learner_day(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    backend: Backend,
    route: str,
) -> list[str]:
    """A learner's loop up to `route`; the statements of that route's request.

    The day runs at a weekday noon: a pass at night or at dawn also earns the hour's
    achievement, one more statement that depends on when the suite runs.
    """
    now = resources.clock.now()
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=1)
    while noon.weekday() >= 5:
        noon += timedelta(days=1)
    resources.clock.advance(noon - now)
    await create_exercise(session)
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    await session.commit()

    async def me(c: httpx.AsyncClient, h: dict[str, str]) -> httpx.Response:
        return await c.get("/api/v1/users/me", headers=h)

    async def daily(c: httpx.AsyncClient, h: dict[str, str]) -> httpx.Response:
        return await c.get("/api/v1/exercises/daily", headers=h)

    exercise_id = ""

    async def wrong(c: httpx.AsyncClient, h: dict[str, str]) -> httpx.Response:
        url = f"/api/v1/exercises/{exercise_id}/submissions"
        return await c.post(url, headers=h, json={"code": ADD_STARTER})

    async def hint(c: httpx.AsyncClient, h: dict[str, str]) -> httpx.Response:
        return await c.post(f"/api/v1/exercises/{exercise_id}/hints", headers=h, json={})

    async def right(c: httpx.AsyncClient, h: dict[str, str]) -> httpx.Response:
        url = f"/api/v1/exercises/{exercise_id}/submissions"
        return await c.post(url, headers=h, json={"code": ADD_SOLUTION})

    conversation = ""

    async def ask(c: httpx.AsyncClient, h: dict[str, str]) -> httpx.Response:
        url = f"/api/v1/conversations/{conversation}/messages"
        return await c.post(url, headers=h, json={"content": "What does the first test check?"})

    async def progress(c: httpx.AsyncClient, h: dict[str, str]) -> httpx.Response:
        return await c.get("/api/v1/progress", headers=h)

    steps: list[tuple[str, Step]] = [
        ("GET /users/me", me),
        ("GET /exercises/daily", daily),
        ("POST submissions (wrong)", wrong),
        ("POST hints", hint),
        ("POST submissions (right)", right),
        ("POST conversations/{id}/messages", ask),
        ("GET /progress", progress),
    ]
    target = "POST hints" if route == TAILORED else route
    for name, step in steps:
        if name == target:
            with counted(backend) as sent:
                response = await step(client, headers)
            assert response.status_code < 300, response.text
            return sent
        response = await step(client, headers)
        assert response.status_code < 300, response.text
        if name == "GET /exercises/daily":
            exercise_id = response.json()["exercise"]["id"]
            started = await client.post("/api/v1/conversations", headers=headers, json={})
            assert started.status_code == 201, started.text
            conversation = started.json()["id"]
    raise AssertionError(f"no step {route}")


@pytest.mark.parametrize("route", list(CEILINGS))
async def test_statements_per_request_stay_under_the_ceiling(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    backend: Backend,
    tutor: Callable[..., Resources],
    route: str,
) -> None:
    if route == TAILORED:
        tutor()
    sent = await _learner_day(client, session, resources, backend, route)
    shown = "\n".join(f"  {' '.join(s.split())[:230]}" for s in sent)
    ceiling = CEILINGS[route]
    if isinstance(ceiling, dict):
        ceiling = ceiling[backend.name]
    assert len(sent) <= ceiling, f"{route}: {len(sent)} statements\n{shown}"


async def test_every_statement_of_the_day_is_compiled_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    backend: Backend,
) -> None:
    """A statement SQLAlchemy cannot cache (a multi-row `values()`, say) is compiled anew
    on every request, which costs more CPU than sending it."""
    uncached: list[str] = []
    with counted(backend, uncached):
        await _learner_day(client, session, resources, backend, "GET /progress")
    assert not uncached, "\n".join(" ".join(s.split())[:230] for s in uncached)
