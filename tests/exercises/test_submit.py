"""The submit path: admission, the stored record, bounded storage, and never `pending`."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from koan.cache import RedisCache
from koan.db import transactional
from koan.exercises import submit as submit_module
from koan.exercises.submit import INTERRUPTED, in_flight_slot
from koan.exercises.submit import submit as submit_code
from koan.grading.limits import sandbox_config
from koan.grading.sandbox import Sandbox
from koan.models import Exercise, Submission, User
from koan.resources import Resources
from tests.conftest import Backend
from tests.exercises.conftest import WRONG, submit
from tests.fixtures.factories import ADD_SOLUTION, bearer, create_exercise, create_user
from tests.fixtures.live import LiveApp
from tests.web.conftest import csrf_from, log_in

BUSY_LOOP = "while True:\n    pass\n"
# Holds a grading slot for a moment whatever the machine's load (sleeping uses no CPU).
FLOOD = "import time\ntime.sleep(1)\n"


async def stored(session: AsyncSession, exercise: Exercise) -> list[Submission]:
    query = (
        select(Submission)
        .where(Submission.exercise_id == exercise.id)
        .order_by(Submission.created_at, Submission.id)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(query)).all())


def use_settings(resources: Resources, **changes: Any) -> None:
    resources.settings = resources.settings.model_copy(update=changes)


# --- the path's shape ------------------------------------------------------------------------


def test_grading_imports_no_domain() -> None:
    script = (
        "import sys, koan.grading.service\n"
        "domains = ('exercises', 'progress', 'adaptive', 'onboarding', 'models', 'resources',"
        " 'users', 'chat', 'auth')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[1:2] and"
        " m.split('.')[0] == 'koan' and m.split('.')[1] in domains))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.fixture
def locking_reads() -> Iterator[list[str]]:
    """The ORM statements run meanwhile that lock rows (FOR UPDATE), on any backend."""
    seen: list[str] = []

    def listen(state: ORMExecuteState) -> None:
        if state.is_select and getattr(state.statement, "_for_update_arg", None) is not None:
            seen.append(str(state.statement))

    event.listen(Session, "do_orm_execute", listen)
    yield seen
    event.remove(Session, "do_orm_execute", listen)


async def test_reading_an_assignment_takes_no_lock(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    exercise: Exercise,
    locking_reads: list[str],
) -> None:
    started = await client.post(f"/api/v1/exercises/{exercise.id}/start", headers=headers)
    locking_reads.clear()
    r = await client.get(f"/api/v1/assignments/{started.json()['id']}", headers=headers)
    assert r.status_code == 200
    assert r.json()["exercise"]["id"] == str(exercise.id)
    assert locking_reads == []


# --- admission -------------------------------------------------------------------------------


async def test_past_the_in_flight_cap_the_code_is_kept_not_graded(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    resources: Resources,
    learner: User,
    exercise: Exercise,
    session: AsyncSession,
) -> None:
    async with in_flight_slot(resources, learner.id), in_flight_slot(resources, learner.id):
        r = await submit(client, headers, exercise, ADD_SOLUTION)
    assert r.status_code == 429
    assert r.json()["error"] == "TooManySubmissions"
    assert int(r.headers["Retry-After"]) >= 1
    [kept] = await stored(session, exercise)
    assert (kept.status, kept.code) == ("rejected", ADD_SOLUTION)
    assert str(kept.id) in r.json()["detail"]


async def test_once_a_slot_is_free_the_next_submission_is_graded(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    resources: Resources,
    learner: User,
    exercise: Exercise,
) -> None:
    async with in_flight_slot(resources, learner.id):
        r = await submit(client, headers, exercise, ADD_SOLUTION)
    assert r.status_code == 201
    assert r.json()["status"] == "passed"


async def test_the_in_flight_cap_is_a_setting(resources: Resources, learner: User) -> None:
    use_settings(resources, submissions_in_flight=1)
    async with (
        in_flight_slot(resources, learner.id) as first,
        in_flight_slot(resources, learner.id) as second,
    ):
        assert (first, second) == (0, None)


async def test_the_in_flight_cap_holds_across_workers(
    resources: Resources, backend: Backend, learner: User
) -> None:
    """A second worker shares the cache (Redis); on one machine there is one worker."""
    other = copy.copy(resources)
    if backend.redis is not None:
        other.cache = RedisCache(backend.redis, resources.cache.prefix)
    async with (
        in_flight_slot(resources, learner.id),
        in_flight_slot(resources, learner.id),
        in_flight_slot(other, learner.id) as third,
    ):
        assert third is None
    async with in_flight_slot(other, learner.id) as freed:
        assert freed is not None


async def test_submitting_too_often_is_refused_and_stores_nothing(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    resources: Resources,
    exercise: Exercise,
    session: AsyncSession,
) -> None:
    use_settings(resources, submission_limit="2/minute")
    codes = [(await submit(client, headers, exercise, WRONG)).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    assert len(await stored(session, exercise)) == 2


async def test_one_learners_limit_leaves_another_alone(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    resources: Resources,
    session: AsyncSession,
    exercise: Exercise,
) -> None:
    use_settings(resources, submission_limit="1/minute")
    other = await bearer(session, resources, await create_user(session, resources, onboarded=True))
    assert (await submit(client, headers, exercise, WRONG)).status_code == 201
    assert (await submit(client, headers, exercise, WRONG)).status_code == 429
    assert (await submit(client, other, exercise, ADD_SOLUTION)).status_code == 201


async def test_while_one_learner_floods_another_is_graded(live: LiveApp) -> None:
    res = live.res
    async with res.session_factory() as session, transactional(session):
        flooder = await create_user(session, res, onboarded=True)
        learner = await create_user(session, res, onboarded=True)
        live.users += [flooder.id, learner.id]
        exercise = await create_exercise(session)
        live.exercises.append(exercise.id)
        flooding = await bearer(session, res, flooder)
        calm = await bearer(session, res, learner)
    floods = [submit(live.client, flooding, exercise, FLOOD) for _ in range(8)]
    *flooded, mine = await asyncio.gather(
        *floods, submit(live.client, calm, exercise, ADD_SOLUTION)
    )
    assert mine.status_code == 201
    assert mine.json()["status"] == "passed"
    assert {r.status_code for r in flooded} <= {201, 429}
    refused = [r for r in flooded if r.status_code == 429]
    assert refused
    assert all(r.json()["error"] == "TooManySubmissions" for r in refused)
    async with res.session_factory() as session:
        kept = (
            await session.scalars(select(Submission).where(Submission.user_id == flooder.id))
        ).all()
    # Every flooding submission is kept: graded or kept as rejected.
    assert len(kept) == len(flooded)
    assert {s.code for s in kept} == {FLOOD}
    assert sum(s.status == "rejected" for s in kept) == len(refused)


async def test_a_learner_is_graded_in_turn_not_after_anothers_queue(live: LiveApp) -> None:
    res = live.res
    res.settings = res.settings.model_copy(update={"submissions_in_flight": 5})
    async with res.session_factory() as session, transactional(session):
        flooder = await create_user(session, res, onboarded=True)
        learner = await create_user(session, res, onboarded=True)
        live.users += [flooder.id, learner.id]
        exercise = await create_exercise(session)
        live.exercises.append(exercise.id)
        flooding = await bearer(session, res, flooder)
        calm = await bearer(session, res, learner)
    # Each flooding run lasts long enough for this learner's request to reach the queue while
    # the first two still run, however busy the machine.
    floods = [asyncio.create_task(submit(live.client, flooding, exercise, FLOOD)) for _ in range(4)]
    # Every flooding submission stored (and so on its way to the grader's queue) first.
    while len(await statuses(res, flooder.id)) < len(floods):
        await asyncio.sleep(0.01)
    mine = await submit(live.client, calm, exercise, ADD_SOLUTION)
    await asyncio.gather(*floods)
    assert mine.json()["status"] == "passed"
    async with res.session_factory() as session:
        graded = await session.scalars(
            select(Submission.graded_at).where(Submission.user_id == flooder.id)
        )
        mine_at = await session.scalar(
            select(Submission.graded_at).where(Submission.user_id == learner.id)
        )
        after_mine = [at for at in graded.all() if at is not None and mine_at and at > mine_at]
    # Served in turn: the flood's later runs waited for this learner's one, not the reverse.
    assert len(after_mine) >= 2


# --- what is stored --------------------------------------------------------------------------


async def test_a_nul_in_the_output_is_shown_as_backslash_zero(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    r = await submit(client, headers, exercise, "print('a\\0b')\n" + ADD_SOLUTION)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "passed"
    assert "a\\0b" in r.json()["stdout"]
    assert "\x00" not in r.text.replace("\\u0000", "")


async def test_a_nul_in_a_test_message_is_shown_as_backslash_zero(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    code = "def add(a, b):\n    raise ValueError('bad\\0value')\n"
    r = await submit(client, headers, exercise, code)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] in ("failed", "error")
    assert any("bad\\0value" in t["message"] for t in body["tests"]), body["tests"]
    history = await client.get(f"/api/v1/exercises/{exercise.id}/submissions", headers=headers)
    assert history.json()["items"][0]["status"] == body["status"]


async def test_stored_output_is_capped(
    client: httpx.AsyncClient, headers: dict[str, str], resources: Resources, exercise: Exercise
) -> None:
    use_settings(resources, submission_output_chars=1000)
    r = await submit(client, headers, exercise, "print('x' * 20000)\n" + ADD_SOLUTION)
    stdout = r.json()["stdout"]
    assert r.json()["status"] == "passed"
    assert stdout.startswith("x" * 1000)
    assert len(stdout) < 1100
    assert "more characters not kept" in stdout


async def test_older_submissions_keep_their_verdict_but_not_their_code(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    resources: Resources,
    exercise: Exercise,
    session: AsyncSession,
) -> None:
    use_settings(resources, submission_history=2)
    for n in range(3):
        await submit(client, headers, exercise, f"# try {n}\n" + WRONG)
    oldest, *newest = await stored(session, exercise)
    assert (oldest.status, oldest.passed, oldest.total) == ("failed", 1, 4)
    assert (oldest.code, oldest.stdout, oldest.tests) == ("", "", [])
    assert [s.code for s in newest] == [f"# try {n}\n" + WRONG for n in (1, 2)]
    assignment = await client.get(f"/api/v1/assignments/{oldest.assignment_id}", headers=headers)
    assert assignment.json()["attempts"] == 3


async def test_a_grader_that_is_not_running_leaves_an_error_not_pending(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    resources: Resources,
    exercise: Exercise,
    session: AsyncSession,
) -> None:
    resources.sandbox = Sandbox(sandbox_config(resources.settings))  # never started
    r = await submit(client, headers, exercise, ADD_SOLUTION)
    assert r.status_code == 503
    [kept] = await stored(session, exercise)
    assert kept.status == "error"
    assert kept.code == ADD_SOLUTION
    assert "submit it again" in kept.stderr


async def test_a_request_that_ends_while_grading_leaves_an_error_not_pending(
    live: LiveApp,
) -> None:
    res = live.res
    user, exercise = await learner_and_exercise(live, time_limit_s=2)
    grading = submitting(res, user, exercise, BUSY_LOOP)
    while not await statuses(res, user.id):  # stored at its checkpoint: now it is grading
        await asyncio.sleep(0.01)
    grading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await grading
    [status] = await statuses(res, user.id)
    assert status == ("error", "Grading was interrupted; your code is saved. Please submit again.")


async def test_a_request_that_ends_as_its_code_is_committed_leaves_an_error_not_pending(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The request ends in the instant after the checkpoint's COMMIT reached the database and
    # before the request carried on from it: the code is stored, and no verdict will come.
    res = live.res
    user, exercise = await learner_and_exercise(live)
    committed = asyncio.Event()
    real_checkpoint = submit_module.checkpoint

    async def checkpoint_then_wait(session: AsyncSession) -> None:
        await real_checkpoint(session)
        if not committed.is_set():
            committed.set()
            await asyncio.Event().wait()  # ended here, before the request goes on

    monkeypatch.setattr(submit_module, "checkpoint", checkpoint_then_wait)
    grading = submitting(res, user, exercise, ADD_SOLUTION)
    await committed.wait()
    grading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await grading
    assert await statuses(res, user.id) == [("error", INTERRUPTED)]


async def learner_and_exercise(live: LiveApp, **exercise: Any) -> tuple[User, Exercise]:
    """A learner and an exercise committed on the live app's database (removed after the test)."""
    async with live.res.session_factory() as session, transactional(session):
        user = await create_user(session, live.res, onboarded=True)
        live.users.append(user.id)
        made = await create_exercise(session, **exercise)
        live.exercises.append(made.id)
    return user, made


def submitting(res: Resources, user: User, exercise: Exercise, code: str) -> asyncio.Task[None]:
    """`code` submitted by `user` in a session of its own, as a request would, in a task."""

    async def run() -> None:
        async with res.session_factory() as session, transactional(session):
            learner = await session.get_one(User, user.id)
            mine = await session.get_one(Exercise, exercise.id)
            await submit_code(session, res, learner, mine, code)

    return asyncio.create_task(run())


async def statuses(res: Resources, user_id: uuid.UUID) -> list[tuple[str, str]]:
    async with res.session_factory() as session:
        rows = await session.execute(
            select(Submission.status, Submission.stderr).where(Submission.user_id == user_id)
        )
        return [(status, stderr) for status, stderr in rows.all()]


SLOW_PASS = "import time\ntime.sleep(1)\n" + ADD_SOLUTION


async def delete_while_grading(
    live: LiveApp, user: User, send: Coroutine[Any, Any, httpx.Response]
) -> httpx.Response:
    """Send `send` (a submission of SLOW_PASS), delete `user` while it is graded, and return
    the answer."""
    graded = asyncio.create_task(send)
    while not await statuses(live.res, user.id):  # stored at its checkpoint: now it is grading
        await asyncio.sleep(0.01)
    async with live.res.session_factory() as session, transactional(session):
        await session.delete(await session.get_one(User, user.id))
    answer = await graded
    assert await statuses(live.res, user.id) == []
    return answer


async def test_an_account_deleted_while_its_code_is_graded_gets_a_404_not_a_500(
    live: LiveApp,
) -> None:
    res = live.res
    user, exercise = await learner_and_exercise(live, time_limit_s=5)
    async with res.session_factory() as session, transactional(session):
        headers = await bearer(session, res, user)
    answer = await delete_while_grading(
        live, user, submit(live.client, headers, exercise, SLOW_PASS)
    )
    assert answer.status_code == 404
    assert answer.json()["error"] == "AccountDeleted"


async def test_an_account_deleted_while_the_page_runs_its_code_gets_a_404_page(
    live: LiveApp,
) -> None:
    res = live.res
    user, exercise = await learner_and_exercise(live, time_limit_s=5)
    await log_in(live.client, user)
    token = csrf_from(await live.client.get(f"/exercises/{exercise.id}"))
    url = f"/exercises/{exercise.id}/run"
    for headers in ({}, {"HX-Request": "true"}):  # without script, and with HTMX
        run = live.client.post(url, data={"csrf_token": token, "code": SLOW_PASS}, headers=headers)
        answer = await delete_while_grading(live, user, run)
        assert answer.status_code == 404, answer.text
        assert "deleted while the code was being graded" in answer.text
        async with res.session_factory() as session, transactional(session):
            user = await create_user(session, res, onboarded=True)
            live.users.append(user.id)
        live.client.cookies.clear()
        await log_in(live.client, user)
        token = csrf_from(await live.client.get(f"/exercises/{exercise.id}"))
