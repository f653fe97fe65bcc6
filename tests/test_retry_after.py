"""Every 429 and 503 the API answers tells the client when to try again (Retry-After, seconds).

The limits are driven through their routes where that is cheap; the errors behind the costlier
ones (budgets, the grader, the tutor's model, the database) are raised from a route of the
test's own, through the app's error handlers.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from koan import errors
from koan.grading.sandbox.errors import SandboxUnavailable
from koan.resources import Resources
from tests.fixtures.factories import PASSWORD, bearer, create_user, unique_email


def _retry_after(response: httpx.Response, status: int, *, at_most: int = 24 * 3600) -> int:
    assert response.status_code == status, response.text
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= at_most
    return seconds


async def test_register_and_login_limits_say_when(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    resources.settings.register_limit_per_address = "1/hour"
    resources.settings.login_limit_per_account_client = "1/minute"
    user = await create_user(session, resources)

    def account() -> dict[str, str]:
        return {"email": unique_email(), "password": "a long passphrase 93", "name": "Ann"}

    assert (await client.post("/api/v1/auth/register", json=account())).status_code == 201
    registered = await client.post("/api/v1/auth/register", json=account())
    wrong = {"email": user.email, "password": PASSWORD + "x"}
    assert (await client.post("/api/v1/auth/login", json=wrong)).status_code == 401
    logged_in = await client.post("/api/v1/auth/login", json=wrong)

    assert _retry_after(registered, 429, at_most=3600) >= 1
    assert _retry_after(logged_in, 429, at_most=60) >= 1


async def test_a_class_code_limit_says_when(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    resources.settings.class_code_limit = "1/minute"
    h = await bearer(session, resources, await create_user(session, resources))
    assert (
        await client.post("/api/v1/classes/join", json={"code": "NOPE2345"}, headers=h)
    ).status_code == 404
    refused = await client.post("/api/v1/classes/join", json={"code": "NOPE2346"}, headers=h)
    _retry_after(refused, 429, at_most=60)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.RateLimited("Too many requests."), 429),
        (errors.TooManySubmissions("Still grading.", retry_after=3), 429),
        (errors.BudgetExceeded("The day's budget is spent.", retry_after=3600), 429),
        (errors.GraderBusy("The grader is busy."), 503),
        (SandboxUnavailable("The grader is not running."), 503),
        (errors.TutorUnavailable("The model is down."), 503),
        (errors.ServiceUnavailable("Down."), 503),
        (OperationalError("SELECT 1", {}, Exception("connection refused")), 503),
        (PoolTimeout("every connection in use"), 503),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
async def test_every_refusal_to_try_later_says_when(
    app: FastAPI, client: httpx.AsyncClient, error: Exception, status: int
) -> None:
    @app.get("/api/v1/test-refusal")
    async def refuse() -> None:
        raise error

    _retry_after(await client.get("/api/v1/test-refusal"), status)
