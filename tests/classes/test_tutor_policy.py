"""The tutor policy a class sets for its learners' conversations about its exercises."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from koan.classes.tutor import tutor_policy_for
from koan.models import Exercise
from koan.resources import Resources
from tests.chat.helpers import LEAKING_REPLY, create_evens_exercise, record_attempt
from tests.classes.helpers import Course, create_course
from tests.fixtures.factories import create_exercise
from tests.fixtures.llm_server import FakeLLMServer, Reply
from tests.web.conftest import log_in


async def _set(client: httpx.AsyncClient, course: Course, **tutor: object) -> None:
    r = await client.patch(
        f"/api/v1/classes/{course.id}", json={"tutor": tutor}, headers=course.headers["instructor"]
    )
    assert r.status_code == 200, r.text


async def _course_with_exercise(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    exercise: Exercise | None = None,
) -> tuple[Course, Exercise]:
    """A class of two learners with one assignment open now, of `exercise` (a new one)."""
    course = await create_course(client, session, resources, learners=2, timezone="Europe/Paris")
    exercise = exercise or await create_exercise(session)
    now = datetime.now(UTC)
    r = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "W1", "exercise_ids": [str(exercise.id)],
              "opens_at": (now - timedelta(days=1)).isoformat(),
              "due_at": (now + timedelta(days=1)).isoformat()},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return course, exercise


async def test_the_class_settings_apply_to_its_exercises_only(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, exercise = await _course_with_exercise(client, session, resources)
    await _set(client, course, strictness="hints", instructions="No recursion yet.",
               avoid=["recursion", "list comprehension"])  # fmt: skip
    learner = course.learners[0]
    now = datetime.now(UTC)
    policy = await tutor_policy_for(session, learner, exercise.id, now=now)
    assert policy is not None
    assert policy.strictness == "hints"
    assert policy.off is False
    assert "No recursion yet." in policy.system_prompt()
    assert "recursion; list comprehension" in policy.system_prompt()
    other = await create_exercise(session)
    assert await tutor_policy_for(session, learner, other.id, now=now) is None
    assert await tutor_policy_for(session, learner, None, now=now) is None
    # The instructor practising the exercise is not under the class's rules.
    assert await tutor_policy_for(session, course.instructor, exercise.id, now=now) is None


async def test_the_tutor_is_off_always_or_during_an_exam_window_with_a_reason(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, exercise = await _course_with_exercise(client, session, resources)
    learner = course.learners[0]
    start = datetime(2026, 12, 10, 9, 0)  # Paris wall time
    await _set(
        client,
        course,
        off_from=start.isoformat(),
        off_until=(start + timedelta(hours=2)).isoformat(),
        off_reason="Midterm exam",
    )
    during = datetime(2026, 12, 10, 8, 30, tzinfo=UTC)  # 09:30 in Paris
    policy = await tutor_policy_for(session, learner, exercise.id, now=during)
    assert policy is not None
    assert policy.off
    assert policy.off_reason.startswith("Midterm exam")
    assert "11:00 (Europe/Paris)" in policy.off_reason
    after = datetime(2026, 12, 10, 10, 0, tzinfo=UTC)
    later = await tutor_policy_for(session, learner, exercise.id, now=after)
    assert later is not None
    assert later.off is False
    await _set(client, course, off=True, off_reason="Work on your own this week")
    always = await tutor_policy_for(session, learner, exercise.id, now=after)
    assert always is not None
    assert always.off
    assert "Work on your own this week" in always.off_reason


async def _conversation(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> str:
    r = await client.post(
        "/api/v1/conversations", json={"exercise_id": str(exercise.id)}, headers=headers
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_a_tutor_the_class_switched_off_says_why_in_chat(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, exercise = await _course_with_exercise(client, session, resources)
    await _set(client, course, off=True, off_reason="Exam until noon.")
    headers = course.headers["learner0"]
    conversation = await _conversation(client, headers, exercise)
    r = await client.post(
        f"/api/v1/conversations/{conversation}/messages", json={"content": "help?"},
        headers=headers,
    )  # fmt: skip
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "TutorOff"
    assert "Exam until noon." in r.json()["detail"]
    # Switched off outside an exam, the tutor still answers outside the class's exercises.
    other = await _conversation(client, headers, await create_exercise(session))
    r = await client.post(
        f"/api/v1/conversations/{other}/messages", json={"content": "help?"}, headers=headers
    )
    assert r.status_code == 201, r.text


async def _ask(
    client: httpx.AsyncClient, headers: dict[str, str], conversation: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/conversations/{conversation}/messages", json={"content": "solve this"},
        headers=headers,
    )  # fmt: skip


async def _exam_under_way(client: httpx.AsyncClient, course: Course) -> datetime:
    """An exam window around now, "Final exam"; now."""
    now = datetime.now(UTC)
    await _set(client, course, off_reason="Final exam",
               off_from=(now - timedelta(hours=1)).isoformat(),
               off_until=(now + timedelta(hours=1)).isoformat())  # fmt: skip
    return now


async def test_an_exam_window_switches_off_every_conversation_of_the_class_learners(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, exercise = await _course_with_exercise(client, session, resources)
    now = await _exam_under_way(client, course)
    headers = course.headers["learner0"]
    # The exam's statement pasted into a conversation about nothing, or about another exercise,
    # is the exam's question all the same.
    r = await client.post("/api/v1/conversations", json={}, headers=headers)
    assert r.status_code == 201, r.text
    free = str(r.json()["id"])
    about_other = await _conversation(client, headers, await create_exercise(session))
    for conversation in (free, about_other):
        r = await _ask(client, headers, conversation)
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "TutorOff"
        assert "Final exam" in r.json()["detail"]
    # The class's staff, and learners of no class in an exam, keep their tutor.
    staff = course.headers["instructor"]
    r = await client.post("/api/v1/conversations", json={}, headers=staff)
    assert (await _ask(client, staff, str(r.json()["id"]))).status_code == 201
    outsider = await create_course(client, session, resources, learners=1)
    r = await client.post("/api/v1/conversations", json={}, headers=outsider.headers["learner0"])
    r = await _ask(client, outsider.headers["learner0"], str(r.json()["id"]))
    assert r.status_code == 201, r.text
    # The window over, the tutor answers in every conversation again.
    await _set(client, course, off_from=(now - timedelta(hours=2)).isoformat(),
               off_until=(now - timedelta(hours=1)).isoformat())  # fmt: skip
    for conversation in (free, about_other):
        assert (await _ask(client, headers, conversation)).status_code == 201


async def test_an_exam_window_is_said_on_the_chat_page_before_any_question(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, _ = await _course_with_exercise(client, session, resources)
    await _exam_under_way(client, course)
    await log_in(client, course.learners[0])
    page = await client.get("/chat")
    assert page.status_code == 200, page.text
    assert 'data-testid="tutor-off"' in page.text
    assert "Final exam" in page.text


async def test_the_teachers_instructions_reach_the_model(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Callable[..., Resources],
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    course, exercise = await _course_with_exercise(client, session, resources)
    await _set(client, course, strictness="hints", instructions="We have not covered recursion.",
               avoid=["list comprehension"])  # fmt: skip
    llm_server.script(Reply(text="What does your loop do on the first pass?"))
    headers = course.headers["learner0"]
    conversation = await _conversation(client, headers, exercise)
    r = await client.post(
        f"/api/v1/conversations/{conversation}/messages", json={"content": "hint please"},
        headers=headers,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    system = llm_server.requests[-1].body["messages"][0]["content"]
    assert "We have not covered recursion." in system
    assert "list comprehension" in system


async def test_a_general_conversation_guards_a_class_exercise_as_strictly_as_its_class_does(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Callable[..., Resources],
    llm_server: FakeLLMServer,
) -> None:
    # The server lets the tutor show solutions; the class does not, for its exercise.
    tutor(tutor_strictness="open")
    evens = await create_evens_exercise(session)
    course, exercise = await _course_with_exercise(client, session, resources, evens)
    await _set(client, course, strictness="socratic")
    await record_attempt(session, resources, course.learners[0], exercise)
    llm_server.script(Reply(text=LEAKING_REPLY), Reply(text=LEAKING_REPLY))
    headers = course.headers["learner0"]
    r = await client.post("/api/v1/conversations", json={}, headers=headers)
    r = await _ask(client, headers, str(r.json()["id"]))
    assert r.status_code == 201, r.text
    assert "% 2 == 0" not in r.json()["reply"]["content"]
