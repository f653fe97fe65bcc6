"""Draft routes over HTTP: save, read back, replace, discard; private to their learner."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from koan.db import transactional
from koan.models import Draft, Exercise, User
from koan.resources import Resources
from tests.fixtures.factories import PASSWORD, bearer, create_exercise, create_user
from tests.fixtures.live import LiveApp, live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py


@pytest.fixture
async def exercise(session: AsyncSession) -> Exercise:
    return await create_exercise(session)


async def test_a_draft_is_saved_read_back_replaced_and_discarded(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    url = f"/api/v1/drafts/{exercise.id}"
    assert (await client.get(url, headers=headers)).status_code == 404

    saved = await client.put(url, headers=headers, json={"code": "def add(a, b):\n    pass\n"})
    assert saved.status_code == 200
    assert saved.json()["code"] == "def add(a, b):\n    pass\n"
    assert saved.json()["exercise_id"] == str(exercise.id)

    again = await client.put(url, headers=headers, json={"code": "def add(a, b):\n    return\n"})
    assert again.status_code == 200
    read = await client.get(url, headers=headers)
    assert read.status_code == 200
    assert read.json()["code"] == "def add(a, b):\n    return\n"

    gone = await client.delete(url, headers=headers)
    assert gone.status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404
    # Discarding what is not there is not an error: a second tab may have done it first.
    assert (await client.delete(url, headers=headers)).status_code == 204


async def test_an_empty_editor_is_a_draft_too(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    url = f"/api/v1/drafts/{exercise.id}"
    assert (await client.put(url, headers=headers, json={"code": ""})).status_code == 200
    assert (await client.get(url, headers=headers)).json()["code"] == ""


async def test_another_learner_can_neither_read_nor_touch_a_draft(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    headers: dict[str, str],
    exercise: Exercise,
) -> None:
    url = f"/api/v1/drafts/{exercise.id}"
    await client.put(url, headers=headers, json={"code": "my secret attempt"})
    other = await bearer(session, resources, await create_user(session, resources))

    peek = await client.get(url, headers=other)
    assert peek.status_code == 404
    assert "my secret attempt" not in peek.text
    # Their own save and discard leave the first learner's draft as it was.
    assert (await client.put(url, headers=other, json={"code": "theirs"})).status_code == 200
    assert (await client.delete(url, headers=other)).status_code == 204
    assert (await client.get(url, headers=headers)).json()["code"] == "my secret attempt"


async def test_drafts_need_a_verified_learner(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, exercise: Exercise
) -> None:
    url = f"/api/v1/drafts/{exercise.id}"
    assert (await client.get(url)).status_code == 401
    assert (await client.put(url, json={"code": "x"})).status_code == 401
    unverified = await bearer(
        session, resources, await create_user(session, resources, verified=False)
    )
    r = await client.put(url, headers=unverified, json={"code": "x"})
    assert r.status_code == 403
    assert r.json()["error"] == "EmailNotVerified"


async def test_a_draft_for_no_exercise_or_too_large_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    r = await client.put(f"/api/v1/drafts/{uuid.uuid4()}", headers=headers, json={"code": "x"})
    assert r.status_code == 404
    assert r.json()["error"] == "NotFound"
    assert (await client.get("/api/v1/drafts/not-a-uuid", headers=headers)).status_code == 422
    url = f"/api/v1/drafts/{exercise.id}"
    big = await client.put(url, headers=headers, json={"code": "x" * (64 * 1024 + 1)})
    # As a submission of the same code is answered (docs/api.md: code over 64 KB).
    assert big.status_code == 413, big.text
    assert big.json()["error"] == "PayloadTooLarge"
    nul = await client.put(url, headers=headers, json={"code": "a\x00b"})
    assert nul.status_code == 422
    assert (await client.get(url, headers=headers)).status_code == 404


async def test_cookie_writes_need_the_csrf_header(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, exercise: Exercise
) -> None:
    user = await create_user(session, resources, onboarded=True)
    login = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert login.status_code == 200
    url = f"/api/v1/drafts/{exercise.id}"
    refused = await client.put(url, json={"code": "x"})
    assert refused.status_code == 403
    csrf = client.cookies.get("koan_csrf") or ""
    ok = await client.put(url, json={"code": "x"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200


async def test_removing_the_exercise_takes_its_drafts(
    client: httpx.AsyncClient,
    session: AsyncSession,
    headers: dict[str, str],
    exercise: Exercise,
    learner: User,
) -> None:
    await client.put(f"/api/v1/drafts/{exercise.id}", headers=headers, json={"code": "x"})
    await session.delete(exercise)
    await session.flush()
    left = await session.execute(select(Draft).where(Draft.user_id == learner.id))
    assert left.scalars().all() == []


async def test_a_save_written_earlier_but_arriving_later_does_not_put_older_code_back(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    # A page's exit save can reach the server after the next page's newer one.
    url = f"/api/v1/drafts/{exercise.id}"
    newer = {"code": "newer\n", "written_at_ms": 1_700_000_002_000}
    older = {"code": "older\n", "written_at_ms": 1_700_000_001_000}
    assert (await client.put(url, headers=headers, json=newer)).status_code == 200
    late = await client.put(url, headers=headers, json=older)
    assert late.status_code == 200, late.text
    assert late.json()["code"] == "newer\n"
    assert (await client.get(url, headers=headers)).json()["code"] == "newer\n"
    # A save without a time is written now: it replaces what is stored.
    plain = await client.put(url, headers=headers, json={"code": "latest\n"})
    assert plain.json()["code"] == "latest\n"


async def test_one_devices_saves_follow_its_clock_whatever_order_they_arrive_in(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    url = f"/api/v1/drafts/{exercise.id}"
    newer = {"code": "newer\n", "written_at_ms": 1_700_000_002_000, "device": "laptop"}
    older = {"code": "older\n", "written_at_ms": 1_700_000_001_000, "device": "laptop"}
    assert (await client.put(url, headers=headers, json=newer)).status_code == 200

    late = await client.put(url, headers=headers, json=older)

    assert late.json()["code"] == "newer\n"
    assert (await client.get(url, headers=headers)).json()["code"] == "newer\n"


async def test_a_device_whose_clock_is_behind_still_saves_after_another_devices_save(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    # The phone's clock runs ten minutes slow: its save comes after the laptop's, and wins.
    url = f"/api/v1/drafts/{exercise.id}"
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    laptop = {"code": "from the laptop\n", "written_at_ms": now_ms, "device": "laptop"}
    phone = {"code": "from the phone\n", "written_at_ms": now_ms - 600_000, "device": "phone"}
    assert (await client.put(url, headers=headers, json=laptop)).status_code == 200

    saved = await client.put(url, headers=headers, json=phone)

    assert saved.json()["code"] == "from the phone\n"
    assert (await client.get(url, headers=headers)).json()["code"] == "from the phone\n"


async def test_a_timed_save_after_one_the_server_timed_is_kept_whatever_the_devices_clock(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> None:
    # A reset on the page (timed by the server), then typing in a browser whose clock is
    # behind the server's: what was typed is kept.
    url = f"/api/v1/drafts/{exercise.id}"
    assert (await client.put(url, headers=headers, json={"code": "starter\n"})).status_code == 200
    behind_ms = int(datetime.now(UTC).timestamp() * 1000) - 5_000

    saved = await client.put(
        url, headers=headers, json={"code": "typed\n", "written_at_ms": behind_ms, "device": "tab"}
    )

    assert saved.json()["code"] == "typed\n"
    assert (await client.get(url, headers=headers)).json()["code"] == "typed\n"


@pytest.mark.parametrize("device", ["", "a" * 65, "bad device", "../x"])
async def test_a_device_id_is_a_short_plain_token(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise, device: str
) -> None:
    r = await client.put(
        f"/api/v1/drafts/{exercise.id}",
        headers=headers,
        json={"code": "x", "written_at_ms": 1_700_000_000_000, "device": device},
    )

    assert r.status_code == 422, r.text


def ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


async def test_a_stale_editor_cannot_overwrite_what_another_tab_saved_since_it_opened(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise, resources: Resources
) -> None:
    """Two tabs open on one draft: the one left behind must not silently put its older text
    over what the learner wrote since in the other."""
    url = f"/api/v1/drafts/{exercise.id}"
    # A page opened before any draft was saved starts from nothing saved (0).
    first = await client.put(url, headers=headers, json={"code": "both tabs\n", "base_ms": 0})
    assert first.status_code == 200
    opened = ms(first.json()["updated_at"])
    resources.clock.advance(timedelta(seconds=30))
    newer = await client.put(url, headers=headers, json={"code": "tab B\n", "base_ms": opened})
    assert newer.status_code == 200
    resources.clock.advance(timedelta(seconds=30))

    stale = await client.put(url, headers=headers, json={"code": "tab A\n", "base_ms": opened})

    assert stale.status_code == 409, stale.text
    assert stale.json()["error"] == "DraftConflict"
    assert (await client.get(url, headers=headers)).json()["code"] == "tab B\n"
    # Tab B goes on from its own save; tab A may keep its text on purpose (no base).
    resources.clock.advance(timedelta(seconds=30))
    base = ms(newer.json()["updated_at"])
    again = await client.put(url, headers=headers, json={"code": "tab B, 2\n", "base_ms": base})
    assert again.status_code == 200
    kept = await client.put(url, headers=headers, json={"code": "tab A\n"})
    assert kept.json()["code"] == "tab A\n"
    # The same text is no conflict.
    same = await client.put(url, headers=headers, json={"code": "tab A\n", "base_ms": opened})
    assert same.status_code == 200


async def _sessions_waiting_for_a_lock(res: Resources) -> int:
    async with res.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(waiting or 0)


async def test_two_tabs_saving_over_the_same_draft_at_once_never_both_win(live: LiveApp) -> None:
    """Two saves based on the same draft, sent at the same instant (each in a transaction of
    its own, as in production): one is stored, the other refused with 409, none lost unseen."""
    res = live.res
    async with res.session_factory() as session, transactional(session):
        user = await create_user(session, res, onboarded=True)
        exercise = await create_exercise(session)
        headers = await bearer(session, res, user)
    live.users.append(user.id)
    live.exercises.append(exercise.id)
    url = f"/api/v1/drafts/{exercise.id}"
    opened = await live.client.put(url, headers=headers, json={"code": "start\n", "base_ms": 0})
    base = ms(opened.json()["updated_at"])
    res.clock.advance(timedelta(seconds=30))

    async with res.engine.connect() as holder:
        # On PostgreSQL both saves read the draft before either writes: another transaction
        # holds its row until both wait to write it. (SQLite's write transactions take the
        # database's write lock when they begin, so there they run one after the other.)
        hold = await holder.begin()
        if res.engine.dialect.name == "postgresql":
            row = select(Draft).where(Draft.user_id == user.id).with_for_update()
            await holder.execute(row)
        saves = asyncio.gather(
            *(
                live.client.put(url, headers=headers, json={"code": code, "base_ms": base})
                for code in ("tab A\n", "tab B\n")
            )
        )
        if res.engine.dialect.name == "postgresql":
            for _ in range(500):  # bounded: until both saves wait for the row
                if await _sessions_waiting_for_a_lock(res) >= 2:
                    break
                await asyncio.sleep(0.01)
        await hold.rollback()
        answers = await saves

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 409], [answer.text for answer in answers]
    won = next(answer for answer in answers if answer.status_code == 200).json()["code"]
    lost = next(answer for answer in answers if answer.status_code == 409)
    assert lost.json()["error"] == "DraftConflict"
    assert (await live.client.get(url, headers=headers)).json()["code"] == won
