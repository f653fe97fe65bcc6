"""Admins and instructors are not sent through the learner interview; learners still are."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from koan.resources import Resources
from tests.fixtures.factories import PASSWORD, bearer, create_user
from tests.web.conftest import post_form


@pytest.fixture(autouse=True)
def _pages(web_app: FastAPI) -> FastAPI:
    return web_app


async def _log_in(client: httpx.AsyncClient, email: str) -> httpx.Response:
    r = await post_form(client, "/login", "/login", {"email": email, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return r


async def test_an_instructor_lands_on_today_without_the_interview(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    instructor = await create_user(session, resources)
    made = await client.post(
        "/api/v1/classes",
        json={"name": "CS 101"},
        headers=await bearer(session, resources, instructor),
    )
    assert made.status_code == 201, made.text
    login = await _log_in(client, instructor.email)
    assert "/onboarding" not in login.headers["location"]
    page = await client.get("/dashboard")
    assert page.status_code == 200, page.text
    assert "learner interview" in page.text


async def test_an_admin_lands_on_today_without_the_interview(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    admin = await create_user(session, resources, role="admin")
    login = await _log_in(client, admin.email)
    assert "/onboarding" not in login.headers["location"]
    assert (await client.get("/dashboard")).status_code == 200


async def test_a_learner_without_onboarding_is_still_sent_to_it(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course_learner = await create_user(session, resources)
    login = await _log_in(client, course_learner.email)
    assert login.headers["location"].startswith("/onboarding")
    page = await client.get("/dashboard")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/onboarding")
