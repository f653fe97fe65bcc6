"""Shared set-up for class tests: a class with an instructor, a TA and learners."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import User
from koan.resources import Resources
from tests.fixtures.factories import bearer, create_user


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
