"""Exercise routes through HTTP: catalogue, daily, submissions, hints, skip, assignments."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from koan.exercises import lifecycle
from koan.exercises import service as exercises_service
from koan.grading import service as grading
from koan.grading.sandbox import GradeReport
from koan.models import Assignment, Exercise, Submission, User
from koan.resources import Resources
from tests.exercises.conftest import WRONG, submit
from tests.fixtures.factories import ADD_SOLUTION, bearer, create_exercise, create_user


async def test_catalogue_filters_paginates_and_hides_solutions(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    skill = "zz-rare-skill"
    made = [
        await create_exercise(
            session, slug=f"cat-{i}-{skill}", difficulty=1 + i % 3, skills=[skill]
        )
        for i in range(5)
    ]
    await create_exercise(session, skills=["strings"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"skill": skill, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/exercises", headers=headers, params=params)).json()
        seen += [item["slug"] for item in page["items"]]
        assert set(page["items"][0]) == {
            "id", "slug", "title", "language", "difficulty", "skills", "progress",
        }  # fmt: skip
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(e.slug for e in made)
    assert len(seen) == len(set(seen))
    levels = (
        await client.get(
            "/api/v1/exercises", headers=headers, params={"skill": skill, "difficulty": 2}
        )
    ).json()["items"]
    assert {i["difficulty"] for i in levels} == {2}

    r = await client.get(f"/api/v1/exercises/{made[0].id}", headers=headers)
    body = r.json()
    assert r.status_code == 200
    assert body["starter_code"]
    assert body["hints_total"] == 3
    assert "solution" not in body
    assert "tests" not in body
    assert "return a + b" not in r.text


async def test_catalogue_searches_sorts_every_way_across_pages_and_marks_work(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    tag = uuid.uuid4().hex[:8]
    specs = [  # title, difficulty, main skill
        ("Beta", 2, "zz-b"), ("alpha", 3, "zz-b"), ("Gamma", 1, "zz-a"), ("beta", 1, "zz-c"),
        ("Delta", 2, "zz-a"),
    ]  # fmt: skip
    made = {
        title: await create_exercise(
            session, title=f"{title} {tag}", difficulty=level, skills=[skill, "zz-other"]
        )
        for title, level, skill in specs
    }
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    await submit(client, headers, made["Gamma"], ADD_SOLUTION)  # solved
    await submit(client, headers, made["Delta"], WRONG)  # tried
    await client.post(f"/api/v1/exercises/{made['alpha'].id}/start", headers=headers)
    await client.post(f"/api/v1/exercises/{made['alpha'].id}/skip", headers=headers)

    async def walk(sort: str) -> list[dict[str, object]]:
        items: list[dict[str, object]] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"q": tag.upper(), "sort": sort, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            r = await client.get("/api/v1/exercises", headers=headers, params=params)
            assert r.status_code == 200, r.text
            items += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if not cursor:
                return items

    def order(items: list[dict[str, object]]) -> list[str]:
        return [str(i["title"]).removesuffix(f" {tag}") for i in items]

    by_difficulty = await walk("difficulty")
    assert len(by_difficulty) == 5
    assert [i["difficulty"] for i in by_difficulty] == [1, 1, 2, 2, 3]
    by_title = await walk("title")
    assert order(by_title)[:1] == ["alpha"]
    assert sorted(order(by_title)[1:3]) == ["Beta", "beta"]
    assert order(by_title)[3:] == ["Delta", "Gamma"]
    assert order(await walk("skill")) == ["Gamma", "Delta", "Beta", "alpha", "beta"]
    marks = {str(i["title"]).removesuffix(f" {tag}"): i["progress"] for i in by_difficulty}
    assert marks == {
        "Gamma": "solved", "Delta": "in_progress", "alpha": "skipped", "Beta": None, "beta": None,
    }  # fmt: skip

    # Skills in any case; a cursor of another order is refused, not misread.
    upper = await client.get("/api/v1/exercises", headers=headers, params={"skill": "ZZ-C"})
    assert [i["title"] for i in upper.json()["items"]] == [f"beta {tag}"]
    first = await client.get(
        "/api/v1/exercises", headers=headers, params={"q": tag, "sort": "title", "limit": 1}
    )
    mixed = await client.get(
        "/api/v1/exercises",
        headers=headers,
        params={"q": tag, "sort": "skill", "cursor": first.json()["next_cursor"]},
    )
    assert mixed.status_code == 400
    assert mixed.json()["error"] == "BadCursor"


@pytest.mark.parametrize(
    "params",
    [
        {"difficulty": 9},
        {"language": "cobol"},
        {"limit": 0},
        {"limit": 1000},
        {"skill": "../etc"},
        {"sort": "popularity"},
        {"q": "x" * 101},
    ],  # fmt: skip
)
async def test_catalogue_rejects_bad_filters(
    client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, object]
) -> None:
    r = await client.get("/api/v1/exercises", headers=headers, params=params)
    assert r.status_code == 422
    assert r.json()["error"] == "ValidationError"


async def test_bad_cursor_and_unknown_exercise(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await client.get("/api/v1/exercises", headers=headers, params={"cursor": "%%%garbage"})
    assert r.status_code == 400
    assert r.json()["error"] == "BadCursor"
    missing = "00000000-0000-0000-0000-000000000000"
    for method, path in (
        ("GET", f"/api/v1/exercises/{missing}"),
        ("POST", f"/api/v1/exercises/{missing}/hints"),
        ("GET", f"/api/v1/exercises/{missing}/hints"),
        ("POST", f"/api/v1/exercises/{missing}/skip"),
        ("GET", f"/api/v1/exercises/{missing}/submissions"),
    ):
        r = await client.request(method, path, headers=headers)
        assert r.status_code == 404, path
        assert r.json()["error"] == "NotFound", path
    r = await client.post(
        f"/api/v1/exercises/{missing}/submissions", headers=headers, json={"code": "x = 1"}
    )
    assert r.status_code == 404
    r = await client.get("/api/v1/exercises/not-a-uuid", headers=headers)
    assert r.status_code == 422


async def test_learning_routes_need_a_verified_email(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, exercise: Exercise
) -> None:
    user = await create_user(session, resources, verified=False)
    h = await bearer(session, resources, user)
    for method, path in (
        ("GET", "/api/v1/exercises"),
        ("GET", "/api/v1/exercises/daily"),
        ("POST", f"/api/v1/exercises/{exercise.id}/submissions"),
        ("POST", f"/api/v1/exercises/{exercise.id}/hints"),
        ("GET", f"/api/v1/exercises/{exercise.id}/hints"),
        ("GET", "/api/v1/assignments"),
    ):
        r = await client.request(method, path, headers=h, json={"code": "x"})
        assert r.status_code == 403, path
        assert r.json()["error"] == "EmailNotVerified", path


async def test_daily_assignment_is_stable_and_follows_the_profile(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    js = await create_exercise(
        session, language="javascript", difficulty=1, skills=["strings"], starter_code="//"
    )
    user = await create_user(session, resources, onboarded=True, language="javascript")
    h = await bearer(session, resources, user)
    first = await client.get("/api/v1/exercises/daily", headers=h)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["exercise"]["language"] == "javascript"
    assert body["status"] == "assigned"
    assert body["hints_used"] == 0
    assert body["reason"]
    assert "solution" not in body["exercise"]
    again = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    assert again["assignment_id"] == body["assignment_id"]
    assert js.id  # the javascript bank has at least this exercise


async def test_a_daily_not_yet_touched_follows_a_change_of_language(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    for language in ("python", "javascript"):
        await create_exercise(session, language=language, difficulty=1, skills=["strings"])
    user = await create_user(session, resources, onboarded=True, language="python")
    h = await bearer(session, resources, user)
    first = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    assert first["exercise"]["language"] == "python"
    r = await client.patch("/api/v1/users/me/profile", headers=h, json={"language": "javascript"})
    assert r.status_code == 200, r.text
    # Untouched, the Python daily gives way to one in the language now chosen.
    switched = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    assert switched["exercise"]["language"] == "javascript"
    assert switched["assignment_id"] != first["assignment_id"]
    old = await client.get(f"/api/v1/assignments/{first['assignment_id']}", headers=h)
    assert old.json()["status"] == "expired"
    # A daily the learner has started is theirs to finish or skip, whatever the language.
    started = await client.post(f"/api/v1/exercises/{switched['exercise']['id']}/hints", headers=h)
    assert started.status_code == 200, started.text
    r = await client.patch("/api/v1/users/me/profile", headers=h, json={"language": "python"})
    assert r.status_code == 200, r.text
    kept = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    assert kept["assignment_id"] == switched["assignment_id"]


async def test_a_daily_asked_for_after_finishing_todays_is_flagged_extra(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    for _ in range(3):
        await create_exercise(session)
    user = await create_user(session, resources, onboarded=True)  # Europe/Paris
    h = await bearer(session, resources, user)
    todays = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    assert todays["extra"] is False
    exercise = await session.get(Exercise, uuid.UUID(todays["exercise"]["id"]))
    assert exercise is not None
    # A failed run does not finish the day: still today's exercise.
    assert (await submit(client, h, exercise, WRONG)).json()["status"] == "failed"
    assert (await client.get("/api/v1/exercises/daily", headers=h)).json()["extra"] is False
    assert (await submit(client, h, exercise, exercise.solution)).json()["status"] == "passed"

    more = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    assert more["assignment_id"] != todays["assignment_id"]
    assert more["extra"] is True
    again = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    assert (again["assignment_id"], again["extra"]) == (more["assignment_id"], True)

    # The next day (on the learner's clock) the same open exercise is that day's.
    resources.clock.advance(timedelta(days=1))
    h = await bearer(session, resources, user)
    tomorrow = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    assert (tomorrow["assignment_id"], tomorrow["extra"]) == (more["assignment_id"], False)


async def test_code_sent_before_midnight_and_graded_after_finishes_that_days_daily(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for _ in range(3):
        await create_exercise(session)
    user = await create_user(session, resources, onboarded=True, timezone="Asia/Kathmandu")
    # 23:59:58 in Kathmandu (UTC+05:45), some day ahead of now.
    now = resources.clock.now()
    local = now.astimezone(ZoneInfo("Asia/Kathmandu"))
    sent = datetime.combine(local.date() + timedelta(days=2), time(23, 59, 58), local.tzinfo)
    resources.clock.advance(sent - now)
    h = await bearer(session, resources, user)
    todays = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    exercise = await session.get(Exercise, uuid.UUID(todays["exercise"]["id"]))
    assert exercise is not None
    run = grading.run

    async def past_midnight(*args: object, **kwargs: object) -> GradeReport:
        report = await run(*args, **kwargs)  # type: ignore[arg-type]
        resources.clock.advance(timedelta(seconds=5))  # the verdict comes after midnight
        return report

    monkeypatch.setattr(grading, "run", past_midnight)
    assert (await submit(client, h, exercise, exercise.solution)).json()["status"] == "passed"

    # The streak counts the day the code was sent; the new day's exercise is that day's own,
    # not "one more" after a finished one.
    progress = (await client.get("/api/v1/progress", headers=h)).json()
    assert (progress["current_streak"], progress["active_today"]) == (1, False)
    next_day = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    assert next_day["assignment_id"] != todays["assignment_id"]
    assert next_day["extra"] is False


async def test_a_daily_finished_before_a_move_east_is_not_todays_on_the_new_clock(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    for _ in range(3):
        await create_exercise(session)
    user = await create_user(session, resources, onboarded=True, timezone="America/New_York")
    # 20:00 in New York: already the next morning in Tokyo.
    now = resources.clock.now()
    local = now.astimezone(ZoneInfo("America/New_York"))
    evening = datetime.combine(local.date() + timedelta(days=2), time(20, 0), local.tzinfo)
    resources.clock.advance(evening - now)
    h = await bearer(session, resources, user)
    todays = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    exercise = await session.get(Exercise, uuid.UUID(todays["exercise"]["id"]))
    assert exercise is not None
    assert (await submit(client, h, exercise, exercise.solution)).json()["status"] == "passed"
    assert (await client.get("/api/v1/exercises/daily", headers=h)).json()["extra"] is True

    moved = await client.patch("/api/v1/users/me", headers=h, json={"timezone": "Asia/Tokyo"})
    assert moved.status_code == 200, moved.text
    # That completion keeps the New York day it was lived on: Tokyo's today has none yet, as
    # the progress says, so the exercise offered is today's own.
    progress = (await client.get("/api/v1/progress", headers=h)).json()
    assert (progress["current_streak"], progress["active_today"]) == (1, False)
    assert (await client.get("/api/v1/exercises/daily", headers=h)).json()["extra"] is False


async def test_a_daily_given_after_a_skip_is_todays_not_extra(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    for _ in range(2):
        await create_exercise(session)
    user = await create_user(session, resources, onboarded=True)
    h = await bearer(session, resources, user)
    todays = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    skipped = await client.post(f"/api/v1/exercises/{todays['exercise']['id']}/skip", headers=h)
    assert skipped.status_code == 200, skipped.text
    instead = (await client.get("/api/v1/exercises/daily", headers=h)).json()
    assert instead["assignment_id"] != todays["assignment_id"]
    assert instead["extra"] is False


async def test_daily_needs_onboarding(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    r = await client.get("/api/v1/exercises/daily", headers=await bearer(session, resources, user))
    assert r.status_code == 409
    assert r.json()["error"] == "OnboardingRequired"


async def test_one_open_daily_assignment_is_enforced_by_the_database(
    session: AsyncSession, learner: User, exercise: Exercise
) -> None:
    other = await create_exercise(session)
    session.add(Assignment(user_id=learner.id, exercise_id=exercise.id, kind="daily"))
    await session.flush()
    with pytest.raises(IntegrityError):
        async with session.begin_nested():
            session.add(Assignment(user_id=learner.id, exercise_id=other.id, kind="daily"))
    # Closed ones and practice ones do not count.
    async with session.begin_nested():
        session.add(
            Assignment(user_id=learner.id, exercise_id=other.id, kind="daily", status="completed")
        )
        session.add(Assignment(user_id=learner.id, exercise_id=other.id, kind="practice"))


async def test_opening_a_daily_when_another_request_opened_one_first_returns_that_one(
    session: AsyncSession, resources: Resources, learner: User, exercise: Exercise
) -> None:
    other = await create_exercise(session)
    now = resources.clock.now()
    first = await lifecycle.open_daily(session, learner, exercise, reason="first", now=now)
    again = await lifecycle.open_daily(session, learner, other, reason="second", now=now)

    assert again.id == first.id
    assert again.exercise_id == exercise.id
    assert first.exercise.id == exercise.id  # the one opened knows its exercise
    rows = await session.execute(
        select(Assignment.exercise_id, Assignment.reason, Assignment.status).where(
            Assignment.user_id == learner.id
        )
    )
    assert rows.all() == [(exercise.id, "first", "assigned")]
    first.hints_used = 1  # the row opened joins the session: a change to it is written
    await session.flush()
    stored = await session.scalar(select(Assignment.hints_used).where(Assignment.id == first.id))
    assert stored == 1


async def test_fail_then_pass_moves_the_assignment_along(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise, session: AsyncSession
) -> None:
    r = await submit(client, headers, exercise, WRONG)
    assert r.status_code == 201, r.text
    failed = r.json()
    assert failed["status"] == "failed"
    assert failed["total"] == 4
    assert failed["passed"] == 1
    assert {t["status"] for t in failed["tests"]} == {"passed", "failed"}
    assert any("1 + 2 should be 3" in t["message"] for t in failed["tests"])
    assignment = (
        await client.get(f"/api/v1/assignments/{failed['assignment_id']}", headers=headers)
    ).json()
    assert assignment["status"] == "in_progress"
    assert assignment["attempts"] == 1

    r = await submit(client, headers, exercise, "print('hello')\n" + ADD_SOLUTION)
    passed = r.json()
    assert passed["status"] == "passed"
    assert passed["passed"] == passed["total"] == 4
    assert "hello" in passed["stdout"]
    assignment = (
        await client.get(f"/api/v1/assignments/{passed['assignment_id']}", headers=headers)
    ).json()
    assert assignment["status"] == "completed"
    assert assignment["completed_at"]

    history = (
        await client.get(f"/api/v1/exercises/{exercise.id}/submissions", headers=headers)
    ).json()
    assert [s["status"] for s in history["items"]] == ["passed", "failed"]


async def test_forged_verdict_does_not_pass(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    forged = (
        "import sys, json\n"
        "print(json.dumps({'status': 'passed', 'passed': 4, 'total': 4}))\n"
        "sys.stderr.write('PASSED 4/4\\n')\n"
        "def add(a, b):\n    return 0\n"
    )
    r = await submit(client, headers, exercise, forged)
    assert r.json()["status"] == "failed"


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("", 422, "ValidationError"),
        ("   \n\t", 422, "ValidationError"),
        ("x = '\x00'", 422, "ValidationError"),
        ("# " + "x" * (64 * 1024), 413, "PayloadTooLarge"),
    ],
)
async def test_bad_code_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    exercise: Exercise,
    session: AsyncSession,
    code: str,
    status: int,
    error: str,
) -> None:
    r = await submit(client, headers, exercise, code)
    assert r.status_code == status
    assert r.json()["error"] == error
    count = await session.scalar(
        select(func.count()).select_from(Submission).where(Submission.exercise_id == exercise.id)
    )
    assert count == 0


async def test_binary_garbage_and_wrong_types(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    url = f"/api/v1/exercises/{exercise.id}/submissions"
    r = await client.post(
        url, headers={**headers, "Content-Type": "application/json"}, content=bytes(range(256))
    )
    assert r.status_code in (400, 422)
    r = await client.post(url, headers=headers, json={"code": 42})
    assert r.status_code == 422
    r = await client.post(
        url,
        headers={**headers, "Content-Type": "application/json"},
        content=b'{"code": "\\ud800 lone surrogate"}',
    )
    assert r.status_code == 422
    # Syntactically hopeless code is graded, not refused: the learner sees why.
    r = await submit(client, headers, exercise, "def add(:\n  ]]]")
    assert r.status_code == 201
    assert r.json()["status"] == "error"
    assert "SyntaxError" in (r.json()["stderr"] + str(r.json()["tests"]))


async def test_hint_ladder_then_no_more_hints(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    url = f"/api/v1/exercises/{exercise.id}/hints"
    rungs = [(await client.post(url, headers=headers)).json() for _ in range(3)]
    assert [r["index"] for r in rungs] == [1, 2, 3]
    assert [r["remaining"] for r in rungs] == [2, 1, 0]
    assert rungs[0]["hint"] == "Which operator adds?"
    r = await client.post(url, headers=headers)
    assert r.status_code == 409
    assert r.json()["error"] == "NoMoreHints"
    daily = await client.get("/api/v1/assignments", headers=headers)
    assert daily.json()["items"][0]["hints_used"] == 3


async def test_the_hints_taken_are_read_back_in_order_without_taking_another(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    headers: dict[str, str],
    exercise: Exercise,
) -> None:
    url = f"/api/v1/exercises/{exercise.id}/hints"
    before = await client.get(url, headers=headers)
    assert before.status_code == 200
    assert before.json() == {"items": [], "remaining": 3}
    listed = await client.get("/api/v1/assignments", headers=headers)
    assert listed.json()["items"] == []  # reading opened no assignment
    given = [(await client.post(url, headers=headers)).json()["hint"] for _ in range(2)]
    expected = {
        "items": [
            {"index": 1, "text": given[0], "tailored": False},
            {"index": 2, "text": given[1], "tailored": False},
        ],
        "remaining": 1,
    }
    for _ in range(2):  # a second device reads the same, and reading takes no rung
        r = await client.get(url, headers=headers)
        assert r.status_code == 200
        assert r.json() == expected
    assert given == ["Which operator adds?", "Use `+`."]
    listed = await client.get("/api/v1/assignments", headers=headers)
    assert listed.json()["items"][0]["hints_used"] == 2
    third = await client.post(url, headers=headers)
    assert third.json() == {"hint": "`return a + b`", "index": 3, "remaining": 0}
    after = (await client.get(url, headers=headers)).json()
    assert ([h["index"] for h in after["items"]], after["remaining"]) == ([1, 2, 3], 0)
    # Another learner's read is of their own work: none.
    other = await create_user(session, resources, onboarded=True)
    theirs = await client.get(url, headers=await bearer(session, resources, other))
    assert theirs.json() == {"items": [], "remaining": 3}


async def test_the_hints_of_an_exercise_the_learner_cannot_see_are_not_found(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    headers: dict[str, str],
    exercise: Exercise,
) -> None:
    """Another learner's generated exercise, not approved, is as if it did not exist, hints
    taken on it or not."""
    owner = await create_user(session, resources, onboarded=True)
    owned = await bearer(session, resources, owner)
    exercise.source, exercise.owner_id = "generated", owner.id
    await session.flush()
    url = f"/api/v1/exercises/{exercise.id}/hints"
    assert (await client.post(url, headers=owned)).status_code == 200
    r = await client.get(url, headers=headers)
    assert r.status_code == 404
    assert r.json()["error"] == "NotFound"
    assert "Which operator adds?" not in r.text
    mine = await client.get(url, headers=owned)
    assert [h["text"] for h in mine.json()["items"]] == ["Which operator adds?"]


async def test_past_the_last_hint_after_passing_the_learner_is_not_sent_to_a_failing_test(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    url = f"/api/v1/exercises/{exercise.id}/hints"
    stuck = [await client.post(url, headers=headers) for _ in range(4)][-1]
    assert "failing test" in stuck.json()["detail"]
    passed = await submit(client, headers, exercise, exercise.solution)
    assert passed.json()["status"] == "passed"
    done = await client.post(url, headers=headers)
    assert done.status_code == 409
    assert done.json()["error"] == "NoMoreHints"
    assert "failing test" not in done.json()["detail"]
    assert "passed" in done.json()["detail"]


async def test_a_hint_counted_late_never_lowers_the_count_another_request_raised(
    session: AsyncSession, resources: Resources, learner: User, exercise: Exercise
) -> None:
    """A request that read the count, then waited (the model rewriting its rung) while another
    request showed the next rungs, counts its own rung without undoing theirs."""

    async def slow_tailor(
        session: AsyncSession, _res: Resources, _user: User, _ex: Exercise, *, rung: int,
        authored: str,
    ) -> str:  # fmt: skip
        # Meanwhile another request showed rungs 1 and 2 and committed: the row moved on,
        # the object this request holds did not.
        await session.execute(
            update(Assignment)
            .where(Assignment.user_id == learner.id, Assignment.exercise_id == exercise.id)
            .values(hints_used=2)
            .execution_options(synchronize_session=False)
        )
        return authored

    shown = await exercises_service.next_hint(session, resources, learner, exercise, slow_tailor)

    assert (shown.index, shown.hint) == (1, "Which operator adds?")
    assert shown.remaining == 1
    stored = await session.scalar(
        select(Assignment.hints_used).where(
            Assignment.user_id == learner.id, Assignment.exercise_id == exercise.id
        )
    )
    assert stored == 2
    # The next request goes on to the last rung instead of showing the second one again.
    last = await exercises_service.next_hint(session, resources, learner, exercise)
    assert (last.index, last.remaining) == (3, 0)


async def test_skip_keeps_it_48_hours_then_it_expires(
    client: httpx.AsyncClient,
    learner: User,
    headers: dict[str, str],
    session: AsyncSession,
    resources: Resources,
) -> None:
    await create_exercise(session)
    await create_exercise(session)
    daily = (await client.get("/api/v1/exercises/daily", headers=headers)).json()
    exercise_id = daily["exercise"]["id"]
    r = await client.post(f"/api/v1/exercises/{exercise_id}/skip", headers=headers)
    assert r.status_code == 200
    assert r.json()["status"] == "skipped"
    assert r.json()["available_until"]
    skipped = (await client.get("/api/v1/assignments?status=skipped", headers=headers)).json()
    assert [a["exercise"]["id"] for a in skipped["items"]] == [exercise_id]

    new_daily = (await client.get("/api/v1/exercises/daily", headers=headers)).json()
    assert new_daily["assignment_id"] != daily["assignment_id"]

    r = await client.post(
        f"/api/v1/exercises/{exercise_id}/submissions", headers=headers, json={"code": WRONG}
    )
    assert r.status_code == 409
    assert r.json()["error"] == "AssignmentSkipped"
    r = await client.post(f"/api/v1/exercises/{exercise_id}/skip", headers=headers)
    assert r.status_code == 409

    resources.clock.advance(timedelta(hours=49))
    headers = await bearer(session, resources, learner)
    r = await client.get("/api/v1/assignments?status=skipped", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
    r = await client.post(
        f"/api/v1/exercises/{exercise_id}/submissions", headers=headers, json={"code": WRONG}
    )
    assert r.status_code == 409
    assert r.json()["error"] == "AssignmentExpired"
    # Starting again opens a fresh practice assignment.
    r = await client.post(f"/api/v1/exercises/{exercise_id}/start", headers=headers)
    assert r.status_code == 200
    assert r.json()["kind"] == "practice"
    r = await client.post(
        f"/api/v1/exercises/{exercise_id}/submissions", headers=headers, json={"code": WRONG}
    )
    assert r.status_code == 201


async def test_resume_a_skipped_exercise(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    await client.post(f"/api/v1/exercises/{exercise.id}/hints", headers=headers)
    await client.post(f"/api/v1/exercises/{exercise.id}/skip", headers=headers)
    r = await client.post(f"/api/v1/exercises/{exercise.id}/start", headers=headers)
    assert r.json()["status"] == "assigned"
    assert r.json()["hints_used"] == 1
    r = await submit(client, headers, exercise, ADD_SOLUTION)
    assert r.json()["status"] == "passed"


async def test_nobody_sees_another_learners_work(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    session: AsyncSession,
    resources: Resources,
    exercise: Exercise,
) -> None:
    mine = (await submit(client, headers, exercise, WRONG)).json()
    other = await create_user(session, resources, onboarded=True)
    theirs = await bearer(session, resources, other)
    r = await client.get(f"/api/v1/assignments/{mine['assignment_id']}", headers=theirs)
    assert r.status_code == 404
    history = await client.get(f"/api/v1/exercises/{exercise.id}/submissions", headers=theirs)
    assert history.json()["items"] == []
    assert (await client.get("/api/v1/assignments", headers=theirs)).json()["items"] == []


async def test_interrupted_gradings_are_recorded_as_errors(
    session: AsyncSession, resources: Resources, learner: User, exercise: Exercise
) -> None:
    from koan.exercises.submit import fail_interrupted

    assignment = Assignment(user_id=learner.id, exercise_id=exercise.id, kind="practice")
    session.add(assignment)
    await session.flush()
    old = Submission(
        user_id=learner.id,
        exercise_id=exercise.id,
        assignment_id=assignment.id,
        code=WRONG,
        created_at=resources.clock.now() - timedelta(hours=1),
    )
    fresh = Submission(
        user_id=learner.id, exercise_id=exercise.id, assignment_id=assignment.id, code=WRONG,
        created_at=resources.clock.now(),
    )  # fmt: skip
    session.add_all([old, fresh])
    await session.flush()
    marked = await fail_interrupted(session, resources.clock.now())
    assert marked == 1
    await session.refresh(old)
    await session.refresh(fresh)
    assert old.status == "error"
    assert old.code == WRONG
    assert "submit again" in old.stderr
    assert fresh.status == "pending"
