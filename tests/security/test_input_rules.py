"""What a request's text and numbers must be: one-line fields people see are refused when they
would show blank or span lines (multi-line text and code keep their breaks and bytes), and
whole numbers and yes/no fields take only JSON numbers and booleans."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.common.schemas import clean_line, visible
from koan.models import User
from koan.resources import Resources
from tests.classes.helpers import create_course
from tests.fixtures.factories import PASSWORD, bearer, create_exercise, create_user
from tests.web.conftest import log_in, post_form

# Text that shows nothing: a zero-width space, a byte order mark, joiners between spaces, a
# Hangul filler, the empty Braille pattern, a combining accent on nothing, a tag character.
BLANK = ["\u200b", "\ufeff", " \u2060\u200d\u00a0", "\u3164", "\u2800", "\u0301", "\U000e0041"]
# Breaks and controls inside one line: line and paragraph separators, a next-line control,
# a tab, an escape, a vertical tab.
SPANNING = ["a\u2028b", "a\u2029b", "a\x85b", "a\tb", "a\x1b[31mb", "a\x0bb"]
# Visible text that uses invisible characters as it should: an emoji joined with ZWJ, a
# Persian name with a zero-width non-joiner, a heart with its variation selector, an accent.
WRITTEN = ["Ada 👩🏽‍💻", "نام\u200cخانوادگی", "I ❤\ufe0f code", "Zoe\u0308"]


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


@dataclass
class Field:
    """A one-line field someone sees: how to send a value, and how to read it back."""

    method: str
    path: str
    body: Any  # value -> JSON body
    field: str  # as the 422 names it


@dataclass
class Setup:
    headers: dict[str, str]
    staff: dict[str, str]
    course_id: uuid.UUID
    exercise_id: uuid.UUID
    user: User


@pytest_asyncio.fixture
async def setup(client: httpx.AsyncClient, session: AsyncSession, resources: Resources) -> Setup:
    user = await create_user(session, resources, name="Learner", onboarded=True)
    course = await create_course(client, session, resources, learners=0)
    exercise = await create_exercise(session)
    return Setup(
        await bearer(session, resources, user),
        course.headers["instructor"],
        course.id,
        exercise.id,
        user,
    )


def _fields(s: Setup) -> list[tuple[Field, dict[str, str]]]:
    now = datetime.now(UTC)
    window = {"opens_at": _iso(now), "due_at": _iso(now + timedelta(days=7))}
    classes = f"/api/v1/classes/{s.course_id}"
    return [
        (Field("PATCH", "/api/v1/users/me", lambda v: {"name": v}, "name"), s.headers),
        (
            Field(
                "POST", "/api/v1/auth/register",
                lambda v: {"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD,
                           "name": v},
                "name",
            ),
            {},
        ),
        (Field("POST", "/api/v1/classes", lambda v: {"name": v}, "name"), s.staff),
        (Field("PATCH", classes, lambda v: {"name": v}, "name"), s.staff),
        (
            Field(
                "POST", f"{classes}/assignments",
                lambda v: {"title": v, "exercise_ids": [str(s.exercise_id)], **window},
                "title",
            ),
            s.staff,
        ),
        (Field("PATCH", classes, lambda v: {"tutor": {"off_reason": v}}, "tutor.off_reason"),
         s.staff),
        (Field("PATCH", classes, lambda v: {"tutor": {"avoid": ["loops", v]}}, "tutor.avoid.1"),
         s.staff),
        (
            Field(
                "POST", "/api/v1/exercises/generate",
                lambda v: {"language": "python", "skill": "loops", "difficulty": 1, "theme": v},
                "theme",
            ),
            s.headers,
        ),
    ]  # fmt: skip


async def test_a_one_line_field_that_would_show_blank_or_span_lines_is_refused(
    client: httpx.AsyncClient, setup: Setup
) -> None:
    problems = []
    for field, headers in _fields(setup):
        for value in BLANK + SPANNING:
            r = await client.request(field.method, field.path, json=field.body(value),
                                     headers=headers)  # fmt: skip
            where = f"{field.method} {field.path} {field.field} {value!r}"
            if r.status_code != 422:
                problems.append(f"{where}: {r.status_code} {r.text[:200]}")
                continue
            body = r.json()
            wanted = "string_too_short" if value in BLANK else "value_error"
            if body["error"] != "ValidationError" or [
                (f["field"], f["type"]) for f in body["fields"]
            ] != [(field.field, wanted)]:
                problems.append(f"{where}: {body}")
            elif ("visible" if value in BLANK else "one line") not in body["detail"]:
                problems.append(f"{where}: unclear {body['detail']}")
    assert not problems, "\n".join(problems)


async def test_visible_text_with_joiners_and_marks_is_kept_as_written(
    client: httpx.AsyncClient, setup: Setup
) -> None:
    for value in WRITTEN:
        named = await client.patch("/api/v1/users/me", json={"name": value}, headers=setup.headers)
        assert named.status_code == 200, named.text
        assert named.json()["name"] == value
        made = await client.post("/api/v1/classes", json={"name": f" {value} "},
                                 headers=setup.staff)  # fmt: skip
        assert made.status_code == 201, made.text
        assert made.json()["name"] == value


async def test_nothing_is_stored_from_a_refused_name(
    client: httpx.AsyncClient, session: AsyncSession, setup: Setup
) -> None:
    for value in ("\u200b", "\ufeff", "a\u2028b"):
        r = await client.patch("/api/v1/users/me", json={"name": value}, headers=setup.headers)
        assert r.status_code == 422, r.text
        renamed = await client.patch(f"/api/v1/classes/{setup.course_id}", json={"name": value},
                                     headers=setup.staff)  # fmt: skip
        assert renamed.status_code == 422, renamed.text
    assert await session.scalar(select(User.name).where(User.id == setup.user.id)) == "Learner"
    course = await client.get(f"/api/v1/classes/{setup.course_id}", headers=setup.staff)
    assert course.json()["name"] == "CS 101"


async def test_multi_line_text_keeps_its_breaks_but_not_a_blank_of_invisibles(
    client: httpx.AsyncClient, setup: Setup
) -> None:
    goals = "Line one\u2028\tindented\nLine two \u200b"
    kept = await client.patch("/api/v1/users/me/profile", json={"goals": goals},
                              headers=setup.headers)  # fmt: skip
    assert kept.status_code == 200, kept.text
    assert kept.json()["goals"] == goals.strip()
    blank = await client.patch("/api/v1/users/me/profile", json={"goals": "\u200b\n\ufeff"},
                               headers=setup.headers)  # fmt: skip
    assert blank.status_code == 422, blank.text
    assert blank.json()["fields"][0]["type"] == "string_too_short"

    conversation = await client.post("/api/v1/conversations", json={}, headers=setup.headers)
    url = f"/api/v1/conversations/{conversation.json()['id']}/messages"
    empty = await client.post(url, json={"content": "\u200b\u2060\n"}, headers=setup.headers)
    assert empty.status_code == 422, empty.text
    question = "Why does\n\tthis loop\u2028stop?"
    asked = await client.post(url, json={"content": question}, headers=setup.headers)
    assert asked.status_code == 201, asked.text
    assert asked.json()["message"]["content"] == question


async def test_code_keeps_every_byte_even_invisible_ones(
    client: httpx.AsyncClient, setup: Setup
) -> None:
    code = "\ufeff# \u200b\r\n\tx = '\u2028'\x0c\n\n  \n"
    url = f"/api/v1/drafts/{setup.exercise_id}"
    saved = await client.put(url, json={"code": code}, headers=setup.headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["code"] == code
    assert (await client.get(url, headers=setup.headers)).json()["code"] == code


async def test_the_pages_say_a_blank_name_is_required_and_keep_the_old_one(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, name="Grace", onboarded=True)
    await log_in(client, user)
    for value in ("\u200b", "\ufeff \u200d"):
        r = await post_form(client, "/settings", "/settings/profile",
                            {"name": value, "timezone": "UTC"})  # fmt: skip
        assert r.status_code == 422, r.text
        assert "This is required." in r.text
    spanning = await post_form(client, "/settings", "/settings/profile",
                               {"name": "Gr\u2028ace", "timezone": "UTC"})  # fmt: skip
    assert spanning.status_code == 422
    assert "one line" in spanning.text
    made = await post_form(client, "/classes", "/classes", {"name": "\u200b", "timezone": "UTC"})
    assert made.status_code == 422
    assert "This is required." in made.text
    assert await session.scalar(select(User.name).where(User.id == user.id)) == "Grace"


@pytest.mark.parametrize("value", BLANK)
def test_invisible_characters_alone_are_not_visible(value: str) -> None:
    assert not visible(value)
    assert visible(f"x{value}")


@pytest.mark.parametrize("value", SPANNING)
def test_a_line_refuses_breaks_and_controls_inside_it(value: str) -> None:
    with pytest.raises(ValueError, match="one line"):
        clean_line(value)
    # At the ends they are trimmed like spaces.
    assert clean_line(f"\u2028 {value[0]} \t") == value[0]


# -- numbers and yes/no: JSON numbers and booleans only ----------------------------------------

NOT_WHOLE = [True, "12", 12.5, 12.0]
NOT_YES_NO = [1, "true", "on", 0.0]


async def test_whole_numbers_and_yes_no_fields_refuse_what_lax_parsing_took(
    client: httpx.AsyncClient, setup: Setup
) -> None:
    now = datetime.now(UTC)
    window = {"opens_at": _iso(now), "due_at": _iso(now + timedelta(days=7))}
    draft = f"/api/v1/drafts/{setup.exercise_id}"
    assignments = f"/api/v1/classes/{setup.course_id}/assignments"
    adaptive = {"title": "Practice", "skill": "loops", "level": 1, "count": 2, **window}
    # (method, path, body with the value, headers, the field, its good value)
    cases: list[tuple[str, str, Any, dict[str, str], str, object]] = [
        ("PUT", draft, lambda v: {"code": "x", "written_at_ms": v}, setup.headers,
         "written_at_ms", 1_700_000_000_000),
        ("PUT", draft, lambda v: {"code": "x", "base_ms": v}, setup.headers, "base_ms", 0),
        ("POST", "/api/v1/exercises/generate",
         lambda v: {"language": "python", "skill": "loops", "difficulty": v}, setup.headers,
         "difficulty", 2),
        ("PATCH", "/api/v1/users/me/profile", lambda v: {"minutes_per_day": v}, setup.headers,
         "minutes_per_day", 30),
        ("PUT", "/api/v1/onboarding/answers", lambda v: {"minutes_per_day": v}, setup.headers,
         "minutes_per_day", 30),
        ("PATCH", "/api/v1/users/me", lambda v: {"preferences": {"editor_font_size": v}},
         setup.headers, "preferences.editor_font_size", 16),
        ("POST", assignments, lambda v: {**adaptive, "level": v}, setup.staff, "level", 2),
        ("POST", assignments, lambda v: {**adaptive, "count": v}, setup.staff, "count", 3),
    ]  # fmt: skip
    yes_no: list[tuple[str, str, Any, dict[str, str], str, object]] = [
        ("PATCH", "/api/v1/users/me", lambda v: {"preferences": {"email_reminders": v}},
         setup.headers, "preferences.email_reminders", True),
        ("PATCH", f"/api/v1/classes/{setup.course_id}", lambda v: {"tutor": {"off": v}},
         setup.staff, "tutor.off", False),
    ]  # fmt: skip
    problems = []
    for values, rows in ((NOT_WHOLE, cases), (NOT_YES_NO, yes_no)):
        for method, path, body, headers, field, good in rows:
            for value in values:
                r = await client.request(method, path, json=body(value), headers=headers)
                fields = [f["field"] for f in r.json().get("fields", [])]
                if r.status_code != 422 or fields != [field]:
                    problems.append(f"{method} {path} {field}={value!r}: {r.status_code} {r.text}")
            # The same field with a proper value is not refused for its type.
            r = await client.request(method, path, json=body(good), headers=headers)
            if r.status_code == 422:
                problems.append(f"{method} {path} {field}={good!r} refused: {r.text}")
    assert not problems, "\n".join(problems)


async def test_the_assignment_form_still_sends_its_numbers_as_text(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0)
    await create_exercise(session, slug=f"loop-{uuid.uuid4().hex[:6]}", skills=["loops"])
    await log_in(client, course.instructor)
    page = f"/classes/{course.id}/assignments"
    now = datetime.now(UTC)
    form = {"title": "Loops", "kind": "adaptive", "language": "python", "skill": "loops",
            "level": "1", "count": "1", "opens_at": now.strftime("%Y-%m-%dT%H:%M"),
            "due_at": (now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")}  # fmt: skip
    bad = await post_form(client, page, page, {**form, "count": "three"})
    assert bad.status_code == 422
    assert "Enter a whole number." in bad.text
    made = await post_form(client, page, page, form)
    assert made.status_code == 303, made.text
    listed = await client.get(f"/api/v1/classes/{course.id}/assignments",
                              headers=course.headers["instructor"])  # fmt: skip
    assert [(a["level"], a["count"]) for a in listed.json()["items"]] == [(1, 1)]


# -- the size of code: the same limit, the same answer ------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "x" * (64 * 1024 + 1),
        # Bytes, not characters: 32 K + 1 two-byte letters are over 64 KB.
        "é" * (32 * 1024 + 1),
    ],
    ids=["ascii", "two-byte"],
)
async def test_code_over_the_limit_is_413_as_a_draft_and_as_a_submission(
    client: httpx.AsyncClient, setup: Setup, code: str
) -> None:
    draft = await client.put(f"/api/v1/drafts/{setup.exercise_id}", json={"code": code},
                             headers=setup.headers)  # fmt: skip
    submitted = await client.post(f"/api/v1/exercises/{setup.exercise_id}/submissions",
                                  json={"code": code}, headers=setup.headers)  # fmt: skip
    for r in (draft, submitted):
        assert r.status_code == 413, r.text
        assert r.json() == {"error": "PayloadTooLarge", "detail": "Code is limited to 64 KB."}
    assert (
        await client.get(f"/api/v1/drafts/{setup.exercise_id}", headers=setup.headers)
    ).status_code == 404


async def test_code_at_the_limit_is_a_draft(client: httpx.AsyncClient, setup: Setup) -> None:
    code = "é" * (32 * 1024)
    saved = await client.put(f"/api/v1/drafts/{setup.exercise_id}", json={"code": code},
                             headers=setup.headers)  # fmt: skip
    assert saved.status_code == 200, saved.text
    assert saved.json()["code"] == code
