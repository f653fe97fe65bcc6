"""Dates on the learner's pages are on the learner's own calendar, as their days are counted."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

import koan.web
from koan.chat import service as chat
from koan.exercises.submit import submit
from koan.resources import Resources
from tests.fixtures.factories import create_exercise, create_user
from tests.web.conftest import log_in


@pytest.fixture(autouse=True)
def _pages(web_app: FastAPI) -> FastAPI:
    return web_app


async def test_what_was_earned_and_talked_about_shows_the_learners_date(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # Kiritimati is UTC+14: 10:00 there is 20:00 the day before in UTC.
    zone = ZoneInfo("Pacific/Kiritimati")
    local_day = resources.clock.now().astimezone(zone).date() + timedelta(days=1)
    morning = datetime.combine(local_day, time(10, 0), zone)
    resources.clock.advance(morning - resources.clock.now())
    utc_day = morning.astimezone(ZoneInfo("UTC")).date()
    assert utc_day != local_day

    user = await create_user(session, resources, onboarded=True, timezone=zone.key)
    exercise = await create_exercise(session)
    graded = await submit(session, resources, user, exercise, exercise.solution)
    assert graded.achievements_unlocked
    await chat.start(session, resources, user, exercise.id)
    await log_in(client, user)

    progress = (await client.get("/progress")).text
    assert f"Earned {local_day:%d %b %Y}." in progress
    assert f"Earned {utc_day:%d %b %Y}." not in progress
    talks = (await client.get("/chat")).text
    assert f"{local_day:%d %b}</span>" in talks
    assert f"{utc_day:%d %b}</span>" not in talks


def test_every_time_a_page_writes_out_is_on_its_readers_clock() -> None:
    """A `strftime` in a template formats a moment converted with `in_zone` first: a UTC
    instant written out as it is shows the learner another date than their own near midnight.
    The administrators' page is the exception: its columns say they are in UTC."""
    templates = Path(koan.web.__file__).parent / "templates"
    bare: list[str] = []
    for path in sorted(templates.rglob("*.html")):
        if path.name == "admin.html":
            continue
        for expression in re.findall(r"\{\{(.*?)\}\}", path.read_text(), flags=re.S):
            for call in re.finditer(r"strftime\(", expression):
                if "|in_zone(" not in expression[: call.start()]:
                    bare.append(f"{path.relative_to(templates)}: {expression.strip()}")
    assert bare == []


async def test_a_daily_still_open_on_a_later_day_says_when_it_was_chosen(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """A daily's reason is worded as of the day it was chosen ("you did earlier today"): shown
    on a later day of the learner's, it says which day that was."""
    zone = ZoneInfo("Pacific/Kiritimati")
    local_day = resources.clock.now().astimezone(zone).date() + timedelta(days=1)
    late_evening = datetime.combine(local_day, time(23, 0), zone)
    resources.clock.advance(late_evening - resources.clock.now())
    user = await create_user(session, resources, onboarded=True, timezone=zone.key)
    exercise = await create_exercise(session)
    await log_in(client, user)
    today = await client.get("/dashboard")
    assert "Why this one:</strong>" in today.text
    assert "(chosen" not in today.text
    page = await client.get(f"/exercises/{exercise.id}")
    assert "Why this one:</strong>" in page.text

    # Two hours later it is the next day there; the same daily is still open.
    resources.clock.advance(timedelta(hours=2))
    await log_in(client, user)
    chosen = f"Why this one (chosen {local_day:%a %d %b}):</strong>"
    assert chosen in (await client.get("/dashboard")).text
    assert chosen in (await client.get(f"/exercises/{exercise.id}")).text
