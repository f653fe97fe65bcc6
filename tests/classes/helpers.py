"""Shared set-up for class tests: a class with an instructor, a TA and learners."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from koan.db import transactional
from koan.models import ClassRoom, User
from koan.resources import Resources
from tests.fixtures.factories import bearer, create_user
from tests.fixtures.live import LiveApp


@dataclass
class Course:
    id: uuid.UUID
    code: str
    instructor: User
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    learners: list[User] = field(default_factory=list)
    ta: User | None = None


async def create_course(
    client: httpx.AsyncClient,
    session: AsyncSession,
    res: Resources,
    *,
    learners: int = 2,
    ta: bool = False,
    **body: Any,
) -> Course:
    """A class made through the API, with `learners` learners who joined by code."""
    instructor = await create_user(session, res, name="Ines Instructor")
    h = await bearer(session, res, instructor)
    made = await client.post("/api/v1/classes", json={"name": "CS 101", **body}, headers=h)
    assert made.status_code == 201, made.text
    course = Course(uuid.UUID(made.json()["id"]), made.json()["join_code"], instructor)
    course.headers["instructor"] = h
    for n in range(learners):
        learner = await create_user(session, res, name=f"Learner {n}", onboarded=True)
        lh = await bearer(session, res, learner)
        joined = await client.post("/api/v1/classes/join", json={"code": course.code}, headers=lh)
        assert joined.status_code == 200, joined.text
        course.learners.append(learner)
        course.headers[f"learner{n}"] = lh
    if ta:
        helper = await create_user(session, res, name="Tara TA")
        th = await bearer(session, res, helper)
        joined = await client.post("/api/v1/classes/join", json={"code": course.code}, headers=th)
        assert joined.status_code == 200, joined.text
        promoted = await client.patch(
            f"/api/v1/classes/{course.id}/members/{helper.id}", json={"role": "ta"}, headers=h
        )
        assert promoted.status_code == 200, promoted.text
        course.ta = helper
        course.headers["ta"] = th
    return course


@dataclass
class LiveClass:
    """A class made through a live app (`tests.fixtures.live`) by `owner`, and `other`, who
    has not joined it: each with the headers of a session of their own."""

    id: uuid.UUID
    code: str
    owner: User
    other: User
    owner_headers: dict[str, str]
    other_headers: dict[str, str]


@asynccontextmanager
async def live_class(live: LiveApp, other: str) -> AsyncIterator[LiveClass]:
    """A class of Ines's and an account called `other`, for requests sent at the same moment
    in transactions of their own; the class is deleted afterwards (the accounts by `live`)."""
    res = live.res
    async with res.session_factory() as session, transactional(session):
        owner = await create_user(session, res, name="Ines")
        second = await create_user(session, res, name=other)
        owner_headers = await bearer(session, res, owner)
        other_headers = await bearer(session, res, second)
    live.users += [owner.id, second.id]
    made = await live.client.post("/api/v1/classes", json={"name": "Duo"}, headers=owner_headers)
    assert made.status_code == 201, made.text
    class_id = uuid.UUID(made.json()["id"])
    try:
        yield LiveClass(
            class_id, made.json()["join_code"], owner, second, owner_headers, other_headers
        )
    finally:
        async with res.session_factory() as session, transactional(session):
            await session.execute(delete(ClassRoom).where(ClassRoom.id == class_id))
