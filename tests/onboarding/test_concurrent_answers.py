"""Answers to the interview sent at the same moment (two tabs, a form saving each question as
it is answered), each in a transaction of its own as in production (`live`): every answer is
kept, none is lost to the other request's write of the answers it read before."""

from __future__ import annotations

from sqlalchemy import select

from koan.db import transactional
from koan.models import LearnerProfile
from tests.fixtures.factories import bearer, create_user
from tests.fixtures.live import LiveApp, in_turn, live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py


async def test_two_answers_saved_at_once_are_both_kept(live: LiveApp) -> None:
    res = live.res
    async with res.session_factory() as session, transactional(session):
        user = await create_user(session, res)
        live.users.append(user.id)
        headers = await bearer(session, res, user)
    url = "/api/v1/onboarding/answers"

    # On PostgreSQL both read the answers before either writes (the profile is held meanwhile).
    first, second = await in_turn(
        res,
        select(LearnerProfile).where(LearnerProfile.user_id == user.id),
        live.client.put(url, json={"language": "javascript"}, headers=headers),
        live.client.put(url, json={"experience": "beginner"}, headers=headers),
    )

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    status = await live.client.get("/api/v1/onboarding/status", headers=headers)
    answers = status.json()["answers"]
    assert (answers.get("language"), answers.get("experience")) == ("javascript", "beginner")
