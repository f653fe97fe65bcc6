"""Conversations through HTTP with the default (offline) tutor: no network, no key."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.llm.offline import OFFLINE_NOTE
from koan.models import ConversationMessage, Exercise, LLMCall, User
from koan.resources import Resources
from tests.chat.helpers import ask, new_conversation, parse_sse, record_attempt
from tests.fixtures.factories import PASSWORD, bearer, create_user

MISSING = "00000000-0000-0000-0000-000000000000"


async def test_offline_tutor_answers_about_the_failing_test_end_to_end(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    evens: Exercise,
) -> None:
    await record_attempt(session, resources, learner, evens)
    conversation_id = await new_conversation(client, headers, evens)

    r = await ask(client, headers, conversation_id, "Why does my code fail?")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["message"]["role"] == "user"
    assert body["message"]["seq"] == 1
    reply = body["reply"]
    assert reply["role"] == "assistant"
    assert reply["seq"] == 2
    assert not reply["incomplete"]
    assert OFFLINE_NOTE in reply["content"]
    # It quotes the failing test and compares what the code produced with what was expected.
    assert "`test_mixed`" in reply["content"]
    assert "assert 10 == 6" in reply["content"]
    assert reply["content"].rstrip().endswith("?")
    assert reply["model"] == "koan-offline"
    assert reply["cost_usd"] == "0.000000"

    detail = (await client.get(f"/api/v1/conversations/{conversation_id}", headers=headers)).json()
    assert detail["title"] == "Sum of evens"
    assert detail["exercise_id"] == str(evens.id)
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    calls = (await session.execute(select(LLMCall).where(LLMCall.user_id == learner.id))).scalars()
    [call] = list(calls)
    assert (call.purpose, call.provider, call.cost_usd, call.outcome) == (
        "chat",
        "offline",
        0,
        "ok",
    )


async def test_offline_tutor_streams_tokens_then_done(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "help me understand recursion", stream=True)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    names = [name for name, _ in events]
    assert names[-1] == "done"
    assert set(names[:-1]) == {"token"}
    assert len(names) > 3
    text = "".join(data["delta"] for name, data in events if name == "token")
    assert OFFLINE_NOTE in text
    assert "recursion" in text.lower()
    done = events[-1][1]
    stored = await session.get(ConversationMessage, uuid.UUID(done["message_id"]))
    assert stored is not None
    assert stored.content == text
    assert not stored.incomplete
    assert done["incomplete"] is False
    assert done["output_tokens"] > 0
    assert r.headers["X-Koan-Message-Id"]


async def test_conversations_are_listed_newest_first_and_paginated(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    made = [await new_conversation(client, headers) for _ in range(3)]
    await ask(client, headers, made[0], "First one becomes the most recent")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/conversations", headers=headers, params=params)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen[0] == made[0]
    assert sorted(seen) == sorted(made)
    assert len(seen) == 3
    titled = (await client.get("/api/v1/conversations", headers=headers)).json()["items"][0]
    assert titled["title"] == "First one becomes the most recent"
    assert titled["message_count"] == 2


async def test_messages_page_backwards_from_the_newest(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    conversation_id = await new_conversation(client, headers)
    for n in range(3):
        assert (await ask(client, headers, conversation_id, f"question {n}")).status_code == 201
    url = f"/api/v1/conversations/{conversation_id}"
    first = (await client.get(url, headers=headers, params={"limit": 4})).json()
    assert [m["seq"] for m in first["messages"]] == [3, 4, 5, 6]
    older = (
        await client.get(url, headers=headers, params={"limit": 4, "cursor": first["next_cursor"]})
    ).json()
    assert [m["seq"] for m in older["messages"]] == [1, 2]
    assert older["next_cursor"] is None
    assert older["messages"][0]["content"] == "question 0"


async def test_only_the_owner_sees_a_conversation(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    headers: dict[str, str],
) -> None:
    conversation_id = await new_conversation(client, headers)
    await ask(client, headers, conversation_id, "my private question")
    other = await bearer(session, resources, await create_user(session, resources, onboarded=True))
    url = f"/api/v1/conversations/{conversation_id}"
    for method, path, body in (
        ("GET", url, None),
        ("DELETE", url, None),
        ("POST", f"{url}/messages", {"content": "let me in"}),
    ):
        r = await client.request(method, path, headers=other, json=body)
        assert r.status_code == 404, (method, r.text)
        assert r.json()["error"] == "NotFound"
    listed = (await client.get("/api/v1/conversations", headers=other)).json()["items"]
    assert listed == []
    mine = (await client.get(url, headers=headers)).json()
    assert len(mine["messages"]) == 2  # nothing the stranger tried was stored


async def test_deleting_a_conversation_removes_its_messages(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str]
) -> None:
    conversation_id = await new_conversation(client, headers)
    await ask(client, headers, conversation_id, "something to delete")
    url = f"/api/v1/conversations/{conversation_id}"
    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404
    left = (
        await session.execute(
            select(ConversationMessage).where(
                ConversationMessage.conversation_id == uuid.UUID(conversation_id)
            )
        )
    ).scalars()
    assert list(left) == []
    calls = (await session.execute(select(LLMCall))).scalars().all()
    assert all(c.conversation_id is None for c in calls if c.purpose == "chat")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "at least 1 character"),
        ("   \n\t ", "is empty"),
        ("x" * 8001, "at most 8000 characters"),
        ("null byte \x00 here", "NUL characters"),
        ("escape \x1b[31m", "control characters"),
    ],
)
async def test_bad_messages_are_refused(
    client: httpx.AsyncClient, headers: dict[str, str], content: str, problem: str
) -> None:
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, content)
    assert r.status_code == 422
    assert r.json()["error"] == "ValidationError"
    assert problem in r.json()["detail"]
    detail = (await client.get(f"/api/v1/conversations/{conversation_id}", headers=headers)).json()
    assert detail["messages"] == []


async def test_a_long_message_within_the_limit_is_accepted(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "é" * 8000)
    assert r.status_code == 201
    assert len(r.json()["message"]["content"]) == 8000


async def test_an_unknown_conversation_is_a_404(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await client.post(f"/api/v1/conversations/{MISSING}/messages", headers=headers,
                          json={"content": "hello"})  # fmt: skip
    assert r.status_code == 404
    r = await client.get(f"/api/v1/conversations/{MISSING}", headers=headers)
    assert r.status_code == 404


async def test_a_conversation_about_an_unknown_exercise_is_a_404(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await client.post("/api/v1/conversations", headers=headers, json={"exercise_id": MISSING})
    assert r.status_code == 404
    assert r.json()["error"] == "ExerciseNotFound"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/conversations", {"exercise_id": "nope"}),
        ("POST", "/api/v1/conversations", {"surprise": 1}),
        ("GET", "/api/v1/conversations/not-a-uuid", None),
    ],
)
async def test_malformed_ids_and_fields_are_a_422(
    client: httpx.AsyncClient, headers: dict[str, str], method: str, path: str, body: object
) -> None:
    r = await client.request(method, path, headers=headers, json=body)
    assert r.status_code == 422


async def test_a_bad_cursor_is_a_400(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await client.get("/api/v1/conversations", headers=headers, params={"cursor": "%%%"})
    assert r.status_code == 400
    assert r.json()["error"] == "BadCursor"


async def test_the_tutor_needs_a_verified_email(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, verified=False)
    h = await bearer(session, resources, user)
    r = await client.post("/api/v1/conversations", headers=h, json={})
    assert r.status_code == 403
    assert r.json()["error"] == "EmailNotVerified"
    r = await client.get("/api/v1/conversations")
    assert r.status_code == 401


async def test_asking_checks_the_caller_as_every_route_does(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, learner: User
) -> None:
    """The caller and the conversation are read in one query when a message is posted; it
    refuses as the separate checks do: 401, then 403, then 404, and stores nothing."""
    h = await bearer(session, resources, learner)
    conversation_id = await new_conversation(client, h)
    url = f"/api/v1/conversations/{conversation_id}/messages"
    body = {"content": "let me in"}

    r = await client.post(url, json=body)
    assert (r.status_code, r.json()["error"]) == (401, "NotAuthenticated")
    r = await client.post(url, json=body, headers={"Authorization": "Bearer not.a.jwt"})
    assert (r.status_code, r.json()["error"]) == (401, "InvalidToken")
    ended = await bearer(session, resources, learner)
    assert (await client.post("/api/v1/auth/logout", headers=ended)).status_code == 200
    r = await client.post(url, json=body, headers=ended)
    assert (r.status_code, r.json()["error"]) == (401, "InvalidToken")

    r = await client.post("/api/v1/conversations/not-a-uuid/messages", json=body)
    assert (r.status_code, r.json()["error"]) == (401, "NotAuthenticated")

    learner.email_verified_at = None
    await session.flush()
    for path in (
        url,
        f"/api/v1/conversations/{MISSING}/messages",
        "/api/v1/conversations/x/messages",
    ):
        r = await client.post(path, json=body, headers=h)
        assert (r.status_code, r.json()["error"]) == (403, "EmailNotVerified")
    learner.email_verified_at = resources.clock.now()
    await session.flush()

    r = await client.post("/api/v1/conversations/not-a-uuid/messages", json=body, headers=h)
    assert r.status_code == 422
    assert [f["field"] for f in r.json()["fields"]] == ["conversation_id"]

    r = await client.post(f"/api/v1/conversations/{MISSING}/messages", json=body, headers=h)
    assert (r.status_code, r.json()["error"]) == (404, "NotFound")
    r = await client.post(url, json=body, headers=h)
    assert r.status_code == 201
    stored = (await client.get(f"/api/v1/conversations/{conversation_id}", headers=h)).json()
    assert [m["content"] for m in stored["messages"] if m["role"] == "user"] == ["let me in"]


async def test_asking_with_the_session_cookie_needs_the_csrf_token(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    login = {"email": user.email, "password": PASSWORD}
    assert (await client.post("/api/v1/auth/login", json=login)).status_code == 200
    csrf = {"X-CSRF-Token": str(client.cookies["koan_csrf"])}
    conversation_id = (await client.post("/api/v1/conversations", json={}, headers=csrf)).json()
    url = f"/api/v1/conversations/{conversation_id['id']}/messages"
    r = await client.post(url, json={"content": "hello"})
    assert (r.status_code, r.json()["error"]) == (403, "CSRFFailed")
    assert (await client.post(url, json={"content": "hello"}, headers=csrf)).status_code == 201
