"""Login throttling that slows guessing without letting anyone lock the owner out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from koan.models import User
from koan.resources import Resources
from koan.security import device_token
from tests.fixtures.factories import PASSWORD, bearer, create_user

WRONG = "not the right password"
Client = Callable[[str], httpx.AsyncClient]


@pytest_asyncio.fixture
async def from_address(app: FastAPI) -> AsyncIterator[Client]:
    """Clients that connect from the address given (each with its own cookie jar)."""
    opened: list[httpx.AsyncClient] = []

    def make(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        opened.append(http)
        return http

    yield make
    for http in opened:
        await http.aclose()


async def login(client: httpx.AsyncClient, user: User, password: str = PASSWORD) -> int:
    body = {"email": user.email, "password": password}
    return (await client.post("/api/v1/auth/login", json=body)).status_code


def ceiling_alerts(app: FastAPI) -> float:
    value = app.state.metrics.registry.get_sample_value("koan_login_ceiling_reached_total")
    return float(value or 0)


async def test_failures_from_elsewhere_do_not_lock_the_owner_out(
    from_address: Client, session: AsyncSession, resources: Resources
) -> None:
    resources.settings.login_limit_per_account_client = "3/minute"
    user = await create_user(session, resources)
    attacker = from_address("203.0.113.7")
    for _ in range(3):
        assert await login(attacker, user, WRONG) == 401
    assert await login(attacker, user, WRONG) == 429
    # The owner, from their own address and a browser that never logged in before.
    assert await login(from_address("198.51.100.20"), user) == 200


async def test_one_client_guessing_is_refused_with_retry_after(
    from_address: Client, session: AsyncSession, resources: Resources
) -> None:
    resources.settings.login_limit_per_account_client = "3/minute"
    user = await create_user(session, resources)
    guesser = from_address("203.0.113.8")
    for _ in range(3):
        assert await login(guesser, user, WRONG) == 401
    r = await guesser.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1


async def test_guessing_spread_over_many_addresses_reaches_the_ceiling_and_alerts(
    from_address: Client, session: AsyncSession, resources: Resources, app: FastAPI
) -> None:
    resources.settings.login_limit_per_account = "4/hour"
    user = await create_user(session, resources)
    with capture_logs() as logs:
        for n in range(4):
            assert await login(from_address(f"203.0.113.{n + 10}"), user, WRONG) == 401
        assert await login(from_address("203.0.113.50"), user, WRONG) == 429
    assert ceiling_alerts(app) >= 1
    alerts = [e for e in logs if e["event"] == "auth.login_ceiling_reached"]
    assert alerts
    assert alerts[0]["log_level"] == "warning"
    # Other accounts are not affected.
    other = await create_user(session, resources)
    assert await login(from_address("203.0.113.51"), other) == 200


async def test_a_device_that_logged_in_before_is_not_stopped_by_the_ceiling(
    from_address: Client, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    laptop = from_address("198.51.100.30")
    assert await login(laptop, user) == 200
    assert laptop.cookies.get("koan_device")
    resources.settings.login_limit_per_account = "3/hour"
    for n in range(4):
        await login(from_address(f"203.0.113.{n + 60}"), user, WRONG)
    assert await login(from_address("203.0.113.70"), user) == 429  # a new browser waits
    assert await login(laptop, user) == 200  # the owner's own does not


async def test_a_forged_or_borrowed_device_cookie_does_not_exempt(
    from_address: Client, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    other = await create_user(session, resources)
    resources.settings.login_limit_per_account = "2/hour"
    for n in range(2):
        await login(from_address(f"203.0.113.{n + 80}"), user, WRONG)
    forged = from_address("203.0.113.90")
    forged.cookies.set("koan_device", "made-up.c2lnbmF0dXJl")
    assert await login(forged, user) == 429
    borrowed = from_address("203.0.113.91")
    # A genuine proof, but for another account.
    borrowed.cookies.set("koan_device", device_token(resources.settings.signing_key, other.id))
    assert await login(borrowed, user) == 429


async def test_a_session_cannot_guess_its_own_password_faster_than_a_login(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """Whoever holds a session (a browser left signed in, a stolen token) has no password, and
    the password outlives every session: changing it or deleting the account asks for it at a
    login's pace, per session, so the owner's own session is never locked out."""
    resources.settings.login_limit_per_account_client = "3/minute"
    user = await create_user(session, resources)
    holder = await bearer(session, resources, user)
    owner = await bearer(session, resources, user)
    change = {"current_password": WRONG, "new_password": "a brand new passphrase 7"}
    for _ in range(2):
        r = await client.post("/api/v1/users/me/password", json=change, headers=holder)
        assert r.status_code == 400
    r = await client.request("DELETE", "/api/v1/users/me", json={"password": WRONG}, headers=holder)
    assert r.status_code == 400
    # The right password is refused too now: the answer tells nothing once the limit is met.
    for attempt in (change, {**change, "current_password": PASSWORD}):
        r = await client.post("/api/v1/users/me/password", json=attempt, headers=holder)
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "RateLimited"
        assert int(r.headers["Retry-After"]) >= 1
    r = await client.request(
        "DELETE", "/api/v1/users/me", json={"password": PASSWORD}, headers=holder
    )
    assert r.status_code == 429
    # The owner's session changes the password (ending the other one).
    right = {**change, "current_password": PASSWORD}
    r = await client.post("/api/v1/users/me/password", json=right, headers=owner)
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/users/me", headers=holder)).status_code == 401
