"""Links in an exercise's statement are links only when people wrote it."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from koan.resources import Resources
from koan.web.markdown import render_markdown
from tests.fixtures.factories import create_exercise, create_user
from tests.web.conftest import log_in

STATEMENT = "Write `add(a, b)`. See [the guide](https://example.com/guide) ![x](https://e.x/a.png)"


@pytest.fixture(autouse=True)
def _pages(web_app: FastAPI) -> FastAPI:
    return web_app


def test_links_render_only_when_allowed() -> None:
    assert '<a href="https://example.com/guide">' in render_markdown(STATEMENT)
    text = render_markdown(STATEMENT, links=False)
    assert "<a " not in text
    assert "<img" not in text
    assert "the guide" in text
    assert "<code>add(a, b)</code>" in text


@pytest.mark.parametrize(("source", "linked"), [("imported", True), ("generated", False)])
async def test_the_exercise_page_links_only_authored_statements(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    source: str,
    linked: bool,
) -> None:
    learner = await create_user(session, resources, onboarded=True)
    exercise = await create_exercise(session, statement=STATEMENT)
    exercise.source = source
    exercise.owner_id = learner.id
    await session.flush()
    await log_in(client, learner)
    page = await client.get(f"/exercises/{exercise.id}")
    assert page.status_code == 200, page.text
    assert ('href="https://example.com/guide"' in page.text) is linked
