"""A learner joining or leaving a class at the same moment as another request, each in a
transaction of its own as in production (`live`).

Joining is idempotent: two joins at once (a double click, two tabs, the join code and the
mailed invitation) are both answered as a member, and the class counts the learner once. A
learner cannot leave during an exam, even when the exam is set as they leave.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from koan.db import transactional
from koan.models import ClassInvite, ClassMembership, ClassRoom
from koan.security import hash_token
from tests.classes.helpers import live_class
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
    async with live_class(live, "Lea") as duo:
        ines, lea, lea_h, class_id = duo.owner, duo.other, duo.other_headers, duo.id
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
        code = duo.code

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


async def test_a_learner_leaving_as_an_exam_is_set_is_refused(live: LiveApp) -> None:
    """The exam window is saved first; the leaving, sent meanwhile, then sees it (409
    ExamInProgress) instead of taking the learner out of the exam's tutor policy."""
    res = live.res
    async with live_class(live, "Lea") as duo:
        ines_h, lea_h = duo.owner_headers, duo.other_headers
        class_id, code = duo.id, duo.code
        url = f"/api/v1/classes/{class_id}"
        joined = await live.client.post("/api/v1/classes/join", json={"code": code}, headers=lea_h)
        assert joined.status_code == 200, joined.text
        now = res.clock.now()
        exam = {"off_from": (now - timedelta(minutes=5)).isoformat(),
                "off_until": (now + timedelta(hours=1)).isoformat()}  # fmt: skip

        # On PostgreSQL the leaving reads the class before the exam is saved, and goes on
        # after: the class's row is held until both wait for it.
        saved, left = await in_turn(
            res,
            select(ClassRoom).where(ClassRoom.id == class_id),
            live.client.patch(url, json={"tutor": exam}, headers=ines_h),
            live.client.post(f"{url}/leave", headers=lea_h),
            key_share=True,
        )

        assert saved.status_code == 200, saved.text
        assert left.status_code == 409, left.text
        assert left.json()["error"] == "ExamInProgress"
