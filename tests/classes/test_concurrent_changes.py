"""Requests that change a class at the same moment, each in a transaction of its own as in
production (`live`).

A class always keeps an instructor: two instructors who both leave, remove each other, or one
leaves while the other deletes their account, all at once, must not both succeed and leave the
class with nobody to run it. A change to a member or a class that another request took away
meanwhile is a client's 4xx, never a server error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select, text

from koan.models import ClassMembership, ClassRoom
from koan.resources import Resources
from tests.classes.helpers import live_class
from tests.fixtures.factories import PASSWORD
from tests.fixtures.live import LiveApp, live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py


async def _sessions_waiting_for_a_lock(res: Resources) -> int:
    async with res.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(waiting or 0)


Departure = Callable[
    [httpx.AsyncClient, uuid.UUID, uuid.UUID, dict[str, str]], Awaitable[httpx.Response]
]


async def _leave(
    client: httpx.AsyncClient, class_id: uuid.UUID, other: uuid.UUID, headers: dict[str, str]
) -> httpx.Response:
    return await client.post(f"/api/v1/classes/{class_id}/leave", headers=headers)


async def _remove_the_other(
    client: httpx.AsyncClient, class_id: uuid.UUID, other: uuid.UUID, headers: dict[str, str]
) -> httpx.Response:
    return await client.delete(f"/api/v1/classes/{class_id}/members/{other}", headers=headers)


async def _delete_account(
    client: httpx.AsyncClient, class_id: uuid.UUID, other: uuid.UUID, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(
        "DELETE", "/api/v1/users/me", headers=headers, json={"password": PASSWORD}
    )


# The second to go is refused: LastInstructor, or, removed by the first already, no longer a
# member of the class (404) when it comes to the class before the first has finished.
LAST = {(409, "LastInstructor")}
GONE = {(409, "LastInstructor"), (404, "NotFound")}


@pytest.mark.parametrize(
    ("first", "second", "refusals"),
    [
        (_leave, _leave, LAST),
        (_remove_the_other, _remove_the_other, GONE),
        (_leave, _delete_account, LAST),
    ],
    ids=["both-leave", "each-removes-the-other", "one-leaves-one-deletes-the-account"],
)
async def test_two_instructors_going_at_once_leave_the_class_one(
    live: LiveApp, first: Departure, second: Departure, refusals: set[tuple[int, str]]
) -> None:
    res = live.res
    async with live_class(live, "Omar") as duo:
        ines, omar, ines_h, omar_h = duo.owner, duo.other, duo.owner_headers, duo.other_headers
        class_id, code = duo.id, duo.code
        await live.client.post("/api/v1/classes/join", json={"code": code}, headers=omar_h)
        promoted = await live.client.patch(
            f"/api/v1/classes/{class_id}/members/{omar.id}",
            json={"role": "instructor"},
            headers=ines_h,
        )
        assert promoted.status_code == 200, promoted.text

        async with res.engine.connect() as holder:
            # On PostgreSQL both requests count the instructors before either takes their
            # membership away: another transaction holds the two memberships until both wait.
            # (SQLite's write transactions run one after the other anyway.)
            hold = await holder.begin()
            postgres = res.engine.dialect.name == "postgresql"
            if postgres:
                rows = select(ClassMembership).where(ClassMembership.class_id == class_id)
                await holder.execute(rows.with_for_update())
            going = asyncio.gather(
                first(live.client, class_id, omar.id, ines_h),
                second(live.client, class_id, ines.id, omar_h),
            )
            if postgres:
                for _ in range(500):  # bounded: until both requests wait
                    if await _sessions_waiting_for_a_lock(res) >= 2:
                        break
                    await asyncio.sleep(0.01)
            await hold.rollback()
            answers = await going

        done = [answer for answer in answers if answer.status_code == 200]
        refused = [answer for answer in answers if answer.status_code != 200]
        assert len(done) == 1, [answer.text for answer in answers]
        assert (refused[0].status_code, refused[0].json()["error"]) in refusals, refused[0].text
        async with res.session_factory() as session:
            instructors = await session.scalar(
                select(func.count()).where(
                    ClassMembership.class_id == class_id, ClassMembership.role == "instructor"
                )
            )
        assert instructors == 1


async def _wait_for_lock_waiters(res: Resources, count: int) -> None:
    for _ in range(500):  # bounded: until `count` requests wait
        if await _sessions_waiting_for_a_lock(res) >= count:
            return
        await asyncio.sleep(0.01)


async def _leave_then_change_role_at_once(
    live: LiveApp, class_id: uuid.UUID, leaver: dict[str, str], instructor: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    """On PostgreSQL: the leaving waits for the memberships (held by another transaction)
    first, the role change second; then both go on in that order."""
    res = live.res
    leaver_id = (await live.client.get("/api/v1/users/me", headers=leaver)).json()["id"]
    member = f"/api/v1/classes/{class_id}/members/{leaver_id}"
    async with res.engine.connect() as holder:
        hold = await holder.begin()
        rows = select(ClassMembership).where(ClassMembership.class_id == class_id)
        await holder.execute(rows.with_for_update())
        leaving = asyncio.ensure_future(
            live.client.post(f"/api/v1/classes/{class_id}/leave", headers=leaver)
        )
        await _wait_for_lock_waiters(res, 1)
        changing = asyncio.ensure_future(
            live.client.patch(member, json={"role": "instructor"}, headers=instructor)
        )
        await _wait_for_lock_waiters(res, 2)
        await hold.rollback()
        return await leaving, await changing


async def test_a_role_changed_as_its_member_leaves_is_a_404_not_a_server_error(
    live: LiveApp,
) -> None:
    """The TA leaves first; the instructor's change of their role, sent while the leaving is
    under way, finds no member any more (404), instead of updating a row gone meanwhile."""
    res = live.res
    async with live_class(live, "Tara") as duo:
        tara, ines_h, tara_h = duo.other, duo.owner_headers, duo.other_headers
        class_id, code = duo.id, duo.code
        member = f"/api/v1/classes/{class_id}/members/{tara.id}"
        await live.client.post("/api/v1/classes/join", json={"code": code}, headers=tara_h)
        made_ta = await live.client.patch(member, json={"role": "ta"}, headers=ines_h)
        assert made_ta.status_code == 200, made_ta.text

        if res.engine.dialect.name == "postgresql":
            left, changed = await _leave_then_change_role_at_once(live, class_id, tara_h, ines_h)
        else:  # SQLite's write transactions run one after the other
            left = await live.client.post(f"/api/v1/classes/{class_id}/leave", headers=tara_h)
            changed = await live.client.patch(member, json={"role": "instructor"}, headers=ines_h)

        assert left.status_code == 200, left.text
        assert changed.status_code == 404, changed.text
        assert changed.json()["error"] == "NotFound"


async def test_settings_saved_as_another_instructor_deletes_the_class_are_refused_not_a_500(
    live: LiveApp,
) -> None:
    res = live.res
    async with live_class(live, "Omar") as duo:
        omar, ines_h, omar_h = duo.other, duo.owner_headers, duo.other_headers
        class_id, code = duo.id, duo.code
        url = f"/api/v1/classes/{class_id}"
        await live.client.post("/api/v1/classes/join", json={"code": code}, headers=omar_h)
        promoted = await live.client.patch(
            f"{url}/members/{omar.id}", json={"role": "instructor"}, headers=ines_h
        )
        assert promoted.status_code == 200, promoted.text

        if res.engine.dialect.name == "postgresql":
            # The deletion waits for the class's row (held by another transaction) first, the
            # settings second, both having read the class; then they go on in that order.
            async with res.engine.connect() as holder:
                hold = await holder.begin()
                room = select(ClassRoom).where(ClassRoom.id == class_id).with_for_update()
                await holder.execute(room)
                deleting = asyncio.ensure_future(live.client.delete(url, headers=ines_h))
                await _wait_for_lock_waiters(res, 1)
                saving = asyncio.ensure_future(
                    live.client.patch(url, json={"name": "Renamed"}, headers=omar_h)
                )
                await _wait_for_lock_waiters(res, 2)
                await hold.rollback()
                deleted, saved = await deleting, await saving
            refusal = (409, "Conflict")
        else:  # SQLite's write transactions run one after the other
            deleted = await live.client.delete(url, headers=ines_h)
            saved = await live.client.patch(url, json={"name": "Renamed"}, headers=omar_h)
            refusal = (404, "NotFound")

        assert deleted.status_code == 200, deleted.text
        assert (saved.status_code, saved.json()["error"]) == refusal, saved.text
