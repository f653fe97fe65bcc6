"""Joining a class twice at the same moment (a double click, two tabs, the join code and the
mailed invitation at once), each request in a transaction of its own as in production
(`live`): joining is idempotent, so both are answered as a member, and the class counts the
learner once."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import delete, func, select

from koan.db import transactional
from koan.models import ClassInvite, ClassMembership, ClassRoom
from koan.security import hash_token
from tests.fixtures.factories import bearer, create_user
from tests.fixtures.live import LiveApp, in_turn, live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py

Join = Callable[[httpx.AsyncClient, dict[str, str], str, str], Awaitable[httpx.Response]]


async def _by_code(
    client: httpx.AsyncClient, headers: dict[str, str], code: str, token: str
) -> httpx.Response:
    return await client.post("/api/v1/classes/join", json={"code": code}, headers=headers)


async def _by_invitation(
    client: httpx.AsyncClient, headers: dict[str, str], code: str, token: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/classes/invites/accept", json={"token": token}, headers=headers
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [(_by_code, _by_code), (_by_invitation, _by_invitation), (_by_code, _by_invitation)],
    ids=["code-twice", "invitation-twice", "code-and-invitation"],
)
async def test_joining_twice_at_once_joins_once_and_answers_both(
    live: LiveApp, first: Join, second: Join
) -> None:
    res = live.res
    async with res.session_factory() as session, transactional(session):
        ines = await create_user(session, res, name="Ines")
        lea = await create_user(session, res, name="Lea")
        ines_h = await bearer(session, res, ines)
        lea_h = await bearer(session, res, lea)
    live.users += [ines.id, lea.id]
    made = await live.client.post("/api/v1/classes", json={"name": "Duo"}, headers=ines_h)
    class_id = uuid.UUID(made.json()["id"])
    try:
        token = secrets.token_urlsafe(32)
        async with res.session_factory() as session, transactional(session):
            session.add(
                ClassInvite(
                    class_id=class_id,
                    email=lea.email,
                    token_hash=hash_token(token),
                    invited_by=ines.id,
                    created_at=res.clock.now(),
                    mail_status="sent",
                )  # fmt: skip
            )
        code = made.json()["join_code"]

        # On PostgreSQL both find no membership before either adds one: the class's row is
        # held meanwhile (a membership's foreign key waits for it).
        answers = await in_turn(
            res,
            select(ClassRoom).where(ClassRoom.id == class_id),
            first(live.client, lea_h, code, token),
            second(live.client, lea_h, code, token),
        )

        assert [answer.status_code for answer in answers] == [200, 200], [
            answer.text for answer in answers
        ]
        assert {answer.json()["role"] for answer in answers} == {"learner"}
        async with res.session_factory() as session:
            members = await session.scalar(
                select(func.count()).where(
                    ClassMembership.class_id == class_id, ClassMembership.user_id == lea.id
                )
            )
        assert members == 1
    finally:
        async with res.session_factory() as session, transactional(session):
            await session.execute(delete(ClassRoom).where(ClassRoom.id == class_id))
