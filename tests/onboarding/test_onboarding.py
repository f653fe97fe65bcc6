"""The onboarding interview: partial answers, resume, completion, profile."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.resources import Resources
from tests.fixtures.factories import ONBOARDING_ANSWERS, bearer, create_user


@pytest.fixture
async def headers(session: AsyncSession, resources: Resources) -> dict[str, str]:
    user = await create_user(session, resources)
    return await bearer(session, resources, user)


async def test_unverified_users_cannot_onboard(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, verified=False)
    h = await bearer(session, resources, user)
    for method, path in (
        ("GET", "/api/v1/onboarding/questions"),
        ("PUT", "/api/v1/onboarding/answers"),
        ("POST", "/api/v1/onboarding/complete"),
        ("GET", "/api/v1/onboarding/status"),
        ("GET", "/api/v1/users/me/profile"),
    ):
        r = await client.request(method, path, headers=h, json={})
        assert r.status_code == 403, path
        assert r.json()["error"] == "EmailNotVerified", path


async def test_questions_describe_the_interview(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    questions = (await client.get("/api/v1/onboarding/questions", headers=headers)).json()
    by_id = {q["id"]: q for q in questions["questions"]}
    assert set(by_id) == {
        "language", "experience", "goals", "interests", "learning_style", "minutes_per_day",
        "timezone",
    }  # fmt: skip
    assert by_id["language"]["options"] == ["python", "javascript"]
    assert by_id["goals"]["limits"]["max_length"] == 1000
    assert "web" in by_id["interests"]["options"]


async def test_answers_are_saved_partially_and_resumed(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await client.put(
        "/api/v1/onboarding/answers", headers=headers, json={"language": "javascript"}
    )
    assert r.status_code == 200
    status = (await client.get("/api/v1/onboarding/status", headers=headers)).json()
    assert status["answers"] == {"language": "javascript"}
    assert status["completed"] is False
    assert 0 < status["progress"] < 1
    r = await client.post("/api/v1/onboarding/complete", headers=headers)
    assert r.status_code == 422
    assert r.json()["error"] == "OnboardingIncomplete"
    assert "experience" in r.json()["detail"]

    rest = {k: v for k, v in ONBOARDING_ANSWERS.items() if k != "language"}
    rest["interests"] = ["Web", "web", "  Rust  Lang ", "data"]
    r = await client.put("/api/v1/onboarding/answers", headers=headers, json=rest)
    assert r.json()["answers"]["language"] == "javascript"
    assert r.json()["answers"]["interests"] == ["web", "rust lang", "data"]
    r = await client.post("/api/v1/onboarding/complete", headers=headers)
    assert r.status_code == 200
    assert r.json()["completed"] is True
    profile = (await client.get("/api/v1/users/me/profile", headers=headers)).json()
    assert profile == {
        "onboarding_completed": True,
        "language": "javascript",
        "experience": "beginner",
        "goals": "Write small scripts for my job.",
        "interests": ["web", "rust lang", "data"],
        "learning_style": "examples",
        "minutes_per_day": 20,
    }
    me = (await client.get("/api/v1/users/me", headers=headers)).json()
    assert me["onboarding_completed"] is True
    assert me["timezone"] == "Europe/Paris"
    r = await client.put("/api/v1/onboarding/answers", headers=headers, json={"language": "python"})
    assert r.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"language": "cobol"},
        {"experience": "guru"},
        {"goals": "g" * 1001},
        {"goals": "null\x00byte"},
        {"interests": ["ok", "<script>"]},
        {"interests": [f"tag{i}" for i in range(21)]},
        {"interests": "web"},
        {"minutes_per_day": 0},
        {"minutes_per_day": 10_000},
        {"minutes_per_day": "twenty"},
        {"timezone": "Nowhere/Land"},
        {"favourite_colour": "blue"},
    ],
)
async def test_bad_answers_are_refused_and_nothing_is_lost(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, object]
) -> None:
    await client.put("/api/v1/onboarding/answers", headers=headers, json={"language": "python"})
    r = await client.put("/api/v1/onboarding/answers", headers=headers, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "ValidationError"
    status = (await client.get("/api/v1/onboarding/status", headers=headers)).json()
    assert status["answers"] == {"language": "python"}


async def test_a_time_zone_changed_in_the_settings_mid_interview_is_the_one_kept(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    answers = {**ONBOARDING_ANSWERS, "timezone": "Europe/Paris"}
    r = await client.put("/api/v1/onboarding/answers", headers=headers, json=answers)
    assert r.status_code == 200
    # The learner travels, and sets their clock in the settings before finishing the interview.
    moved = await client.patch("/api/v1/users/me", headers=headers, json={"timezone": "Asia/Tokyo"})
    assert moved.json()["timezone"] == "Asia/Tokyo"
    status = (await client.get("/api/v1/onboarding/status", headers=headers)).json()
    assert status["answers"]["timezone"] == "Asia/Tokyo"
    done = await client.post("/api/v1/onboarding/complete", headers=headers)
    assert done.json()["answers"]["timezone"] == "Asia/Tokyo"
    me = (await client.get("/api/v1/users/me", headers=headers)).json()
    assert me["timezone"] == "Asia/Tokyo"


async def test_profile_can_change_after_onboarding(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    fresh = await bearer(session, resources, await create_user(session, resources))
    r = await client.patch("/api/v1/users/me/profile", headers=fresh, json={"language": "python"})
    assert r.status_code == 409

    user = await create_user(session, resources, onboarded=True)
    h = await bearer(session, resources, user)
    r = await client.patch(
        "/api/v1/users/me/profile",
        headers=h,
        json={"experience": "advanced", "minutes_per_day": 45},
    )
    assert r.status_code == 200
    assert r.json()["experience"] == "advanced"
    assert r.json()["language"] == "python"
    r = await client.patch("/api/v1/users/me/profile", headers=h, json={"language": None})
    assert r.status_code == 422


async def test_status_after_onboarding_shows_the_profile_as_changed_since(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)  # python, beginner, Paris
    h = await bearer(session, resources, user)
    r = await client.patch(
        "/api/v1/users/me/profile",
        headers=h,
        json={"language": "javascript", "experience": "advanced", "interests": []},
    )
    assert r.status_code == 200, r.text
    r = await client.patch("/api/v1/users/me", headers=h, json={"timezone": "Asia/Tokyo"})
    assert r.status_code == 200, r.text

    status = (await client.get("/api/v1/onboarding/status", headers=h)).json()
    assert status["completed"] is True
    answers = status["answers"]
    assert (answers["language"], answers["experience"]) == ("javascript", "advanced")
    assert (answers["interests"], answers["timezone"]) == ([], "Asia/Tokyo")
    assert status["missing_required"] == []
    again = (await client.post("/api/v1/onboarding/complete", headers=h)).json()
    assert again == status
