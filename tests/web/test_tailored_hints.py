"""Hints the tutor's model tailored to the learner's code stay on the exercise page as they were
shown (and charged for); the authored rung stands wherever the model did not write one."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import AssignmentHint, Exercise, User
from koan.resources import Resources
from tests.chat.helpers import record_attempt
from tests.fixtures.factories import ADD_STARTER, bearer, create_exercise, create_user
from tests.fixtures.llm_server import FakeLLMServer, Reply
from tests.web.conftest import csrf_from, log_in

TAILORED = "Your function returns nothing yet. Which operator combines **a** and **b**?"
AUTHORED = ["Which operator adds?", "Use `+`.", "`return a + b`"]


@pytest.fixture(autouse=True)
def _pages(web_app: FastAPI) -> FastAPI:
    return web_app


def htmx(client: httpx.AsyncClient) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRF-Token": client.cookies.get("koan_csrf") or ""}


async def working_on(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> tuple[Exercise, User]:
    """A learner logged in, with a failed attempt at the add exercise (what a hint is about)."""
    exercise = await create_exercise(session)
    user = await create_user(session, resources, onboarded=True)
    await record_attempt(session, resources, user, exercise, code=ADD_STARTER)
    await log_in(client, user)
    return exercise, user


def hint_items(html: str) -> list[str]:
    return [part.split("</li>")[0] for part in html.split('class="hint-item">')[1:]]


async def kept_rows(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(AssignmentHint)) or 0)


async def test_a_tailored_hint_is_shown_in_the_panel_and_after_a_reload(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Callable[..., Resources],
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    exercise, _ = await working_on(client, session, resources)
    llm_server.script(Reply(text=TAILORED))
    panel = await client.post(f"/exercises/{exercise.id}/hint", headers=htmx(client))
    assert panel.status_code == 200
    assert len(llm_server.requests) == 1
    [shown] = hint_items(panel.text)
    assert "Which operator combines <strong>a</strong> and <strong>b</strong>?" in shown
    assert AUTHORED[0] not in panel.text
    for _ in range(2):  # the page, and a reload: the hint paid for, not the authored rung
        page = await client.get(f"/exercises/{exercise.id}")
        [shown] = hint_items(page.text)
        assert "Your function returns nothing yet." in shown
        assert AUTHORED[0] not in page.text
    assert len(llm_server.requests) == 1  # showing it again asks the model nothing


async def test_without_javascript_the_page_after_the_redirect_shows_the_tailored_hint(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Callable[..., Resources],
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    exercise, _ = await working_on(client, session, resources)
    page = await client.get(f"/exercises/{exercise.id}")
    llm_server.script(Reply(text=TAILORED))
    taken = await client.post(
        f"/exercises/{exercise.id}/hint", data={"csrf_token": csrf_from(page)}
    )
    assert taken.status_code == 303
    shown = await client.get(taken.headers["location"])
    [item] = hint_items(shown.text)
    assert "Your function returns nothing yet." in item
    assert AUTHORED[0] not in shown.text


async def test_rungs_the_model_did_not_write_stay_authored_beside_the_tailored_ones(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Callable[..., Resources],
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    exercise, _ = await working_on(client, session, resources)
    llm_server.script(Reply(text=TAILORED), *[Reply.server_error()] * 3)
    await client.post(f"/exercises/{exercise.id}/hint", headers=htmx(client))
    # The provider fails on the second: its authored rung is what the learner was shown.
    panel = await client.post(f"/exercises/{exercise.id}/hint", headers=htmx(client))
    first, second = hint_items(panel.text)
    assert "Your function returns nothing yet." in first
    assert "Use <code>+</code>." in second
    page = await client.get(f"/exercises/{exercise.id}")
    assert hint_items(page.text) == [first, second]
    assert await kept_rows(session) == 1  # only what the model wrote is kept


async def test_with_the_tutor_offline_the_authored_rungs_are_shown_and_nothing_kept(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise, _ = await working_on(client, session, resources)
    panel = await client.post(f"/exercises/{exercise.id}/hint", headers=htmx(client))
    [shown] = hint_items(panel.text)
    assert AUTHORED[0] in shown
    page = await client.get(f"/exercises/{exercise.id}")
    assert hint_items(page.text) == [shown]
    assert await kept_rows(session) == 0


async def test_links_in_a_tailored_hint_are_not_made_links(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Callable[..., Resources],
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    exercise, _ = await working_on(client, session, resources)
    llm_server.script(Reply(text="Read [the operators page](https://evil.example/op) again."))
    await client.post(f"/exercises/{exercise.id}/hint", headers=htmx(client))
    page = await client.get(f"/exercises/{exercise.id}")
    [shown] = hint_items(page.text)
    assert "the operators page" in shown
    assert "evil.example" not in shown.split("the operators page")[0]
    assert "<a " not in shown


async def test_the_api_hint_is_kept_for_the_page_and_goes_with_the_account(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Callable[..., Resources],
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    exercise, user = await working_on(client, session, resources)
    llm_server.script(Reply(text=TAILORED))
    headers = await bearer(session, resources, user)
    r = await client.post(f"/api/v1/exercises/{exercise.id}/hints", headers=headers)
    assert r.json()["hint"] == TAILORED
    page = await client.get(f"/exercises/{exercise.id}")
    assert "Your function returns nothing yet." in page.text

    exported = await client.get("/api/v1/progress/export", headers=headers)
    [assignment] = exported.json()["assignments"]
    [kept] = assignment["tailored_hints"]
    assert (kept["rung"], kept["text"]) == (1, TAILORED)

    await session.execute(delete(User).where(User.id == user.id))
    assert await kept_rows(session) == 0
