"""Dates at the ends of the calendar: refused with a 4xx where they come in, shown where stored.

Python's dates end at the years 1 and 9999; a time near either end has no equivalent in a time
zone on the far side of UTC, and arithmetic on it overflows. Every date a person enters is held
to the years 1970-2200 (`koan.common.schemas.Moment`), and what reads a stored time for display
falls back rather than fail.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.classes.service import local_label
from koan.drafts.schemas import LATEST_MS
from koan.resources import Resources
from koan.web.pagekit import in_zone
from tests.classes.helpers import create_course
from tests.fixtures.factories import bearer, create_exercise, create_user

FAR = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "1969-12-31T23:00:00Z"]


@pytest.mark.parametrize("moment", FAR)
@pytest.mark.parametrize("field", ["starts_at", "ends_at"])
async def test_a_class_dated_beyond_the_years_it_may_run_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, field: str, moment: str
) -> None:
    teacher = await create_user(session, resources)
    headers = await bearer(session, resources, teacher)

    r = await client.post(
        "/api/v1/classes",
        json={"name": "Far", "timezone": "Etc/GMT+12", field: moment},
        headers=headers,
    )

    assert r.status_code == 422, r.text
    assert "between the years 1970 and 2200" in r.text


async def test_a_naive_time_at_the_calendars_end_in_a_zone_behind_utc_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    teacher = await create_user(session, resources)
    headers = await bearer(session, resources, teacher)

    r = await client.post(
        "/api/v1/classes",
        json={"name": "Far", "timezone": "Etc/GMT+12", "ends_at": "9999-12-31T23:00:00"},
        headers=headers,
    )

    assert r.status_code == 422, r.text


@pytest.mark.parametrize("moment", FAR)
async def test_an_exam_window_or_an_assignment_beyond_the_years_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, moment: str
) -> None:
    course = await create_course(client, session, resources, learners=0)
    exercise = await create_exercise(session)
    await session.commit()
    headers = course.headers["instructor"]

    window = await client.patch(
        f"/api/v1/classes/{course.id}",
        json={"tutor": {"off_from": "2026-12-01T00:00:00Z", "off_until": moment}},
        headers=headers,
    )
    assignment = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={
            "title": "Far",
            "exercise_ids": [str(exercise.id)],
            "opens_at": "2026-12-01T00:00:00Z",
            "due_at": moment,
        },
        headers=headers,
    )

    assert window.status_code == 422, window.text
    assert assignment.status_code == 422, assignment.text


@pytest.mark.parametrize("cursor", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
async def test_a_learners_work_paged_from_the_calendars_end_is_a_bad_cursor(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, cursor: str
) -> None:
    course = await create_course(client, session, resources, learners=1)
    learner = course.learners[0]

    r = await client.get(
        f"/api/v1/classes/{course.id}/learners/{learner.id}/submissions",
        params={"cursor": cursor},
        headers=course.headers["instructor"],
    )

    assert r.status_code == 400, r.text
    assert r.json()["error"] == "BadCursor"


async def test_a_draft_timed_past_the_last_year_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    exercise = await create_exercise(session)
    await session.commit()
    url = f"/api/v1/drafts/{exercise.id}"

    latest = await client.put(
        url, json={"code": "x = 1", "written_at_ms": LATEST_MS}, headers=headers
    )
    beyond = await client.put(
        url, json={"code": "x = 2", "written_at_ms": LATEST_MS + 1}, headers=headers
    )

    assert latest.status_code == 200, latest.text
    assert beyond.status_code == 422, beyond.text


@pytest.mark.parametrize("params", [{"until": "0001-01-01"}, {"since": "9999-12-31"}])
async def test_a_usage_report_for_days_beyond_the_years_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, params: dict[str, str]
) -> None:
    admin = await create_user(session, resources, role="admin", onboarded=True)
    headers = await bearer(session, resources, admin)

    r = await client.get("/api/v1/admin/usage", params=params, headers=headers)

    assert r.status_code == 400, r.text
    assert r.json()["error"] == "BadPeriod"


def test_a_stored_time_the_readers_zone_cannot_hold_is_shown_in_utc() -> None:
    last = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)

    assert local_label(last, "Asia/Tokyo") == "9999-12-31 23:59 (UTC)"
    assert in_zone(last, "Pacific/Kiritimati") == last
