"""Web UI fixtures: the app with the pages mounted, a form-posting helper and the login page."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import Exercise, User
from koan.resources import Resources
from koan.web import mount_web
from tests.fixtures.factories import PASSWORD, create_exercise, create_user


def with_web(application: FastAPI) -> FastAPI:
    """Mount the pages unless create_app already does."""
    if ("GET", "/dashboard") not in page_routes(application):
        mount_web(application)
    return application


@pytest.fixture
def web_app(app: FastAPI) -> FastAPI:
    """The test app with the pages mounted (use it, autouse, in modules that call pages)."""
    return with_web(app)


def page_routes(application: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers flattened (FastAPI keeps
    an included router as one entry of `app.routes`)."""
    return sorted(
        {
            (method, context.path)
            for context in iter_route_contexts(application.routes)
            if isinstance(context.original_route, APIRoute)
            for method in (context.methods or set()) - {"HEAD"}
        }
    )


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(page: httpx.Response) -> str:
    match = CSRF_INPUT.search(page.text)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def post_form(
    client: httpx.AsyncClient, page_path: str, action: str, data: dict[str, str], **kwargs: object
) -> httpx.Response:
    """Load `page_path` (for its CSRF token and cookie), then submit the form to `action`."""
    page = await client.get(page_path)
    token = csrf_from(page)
    return await client.post(action, data={"csrf_token": token, **data}, **kwargs)  # type: ignore[arg-type]


async def log_in(client: httpx.AsyncClient, user: User, password: str = PASSWORD) -> None:
    """Log in through the login page: the client then holds the page session's cookies."""
    response = await post_form(
        client, "/login", "/login", {"email": user.email, "password": password}
    )
    assert response.status_code == 303, response.text


async def on_exercise_page(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> tuple[Exercise, User, httpx.Response]:
    """A new exercise, and a new onboarded learner logged in on its page."""
    exercise = await create_exercise(session)
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    return exercise, user, await client.get(f"/exercises/{exercise.id}")
