"""Hostile input gets a 4xx in Koan's error shape, is stored verbatim where allowed, never runs.

Oversized bodies, headers and query strings; JSON nested beyond reason; NUL bytes, lone
surrogates, bidi overrides and emoji in every text field of every write route; path traversal;
SQL and HTML injection. Header and query limits are checked through a real HTTP server (Uvicorn
in this process, on a loopback port), the rest through the app directly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.common.routing import CheckedRoute
from koan.middleware import MAX_JSON_DEPTH, json_too_deep
from koan.models import User
from koan.resources import Resources
from tests.fixtures.factories import ADD_SOLUTION, PASSWORD, bearer, create_exercise, create_user
from tests.web.conftest import log_in, post_form

NUL = "before\x00after"
SURROGATE = "broken \ud800 half"
BIDI = "invoice\u202egpj.exe"
EMOJI = "Ada 👩🏽‍💻 🚀 e\u0301"
SQL = "Robert'); DROP TABLE users;--"
HTML = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


def _json(body: Any) -> bytes:
    # ensure_ascii keeps lone surrogates as \ud800 escapes, as a hostile client would send them
    # (they cannot be encoded as UTF-8 at all).
    return json.dumps(body, ensure_ascii=True).encode()


@dataclass
class Learner:
    user: User
    headers: dict[str, str]
    exercise_id: uuid.UUID
    conversation_id: uuid.UUID


@pytest_asyncio.fixture
async def learner(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> Learner:
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    exercise = await create_exercise(session)
    conversation = await client.post("/api/v1/conversations", json={}, headers=headers)
    assert conversation.status_code == 201, conversation.text
    return Learner(user, headers, exercise.id, uuid.UUID(conversation.json()["id"]))


async def _send(
    client: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(
        method, path, content=_json(body), headers={**headers, "content-type": "application/json"}
    )


def _assert_error_shape(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error"), str)
        assert isinstance(body.get("detail"), str)


# -- sizes ------------------------------------------------------------------------------------


async def test_bodies_over_one_megabyte_are_refused_with_413(
    client: httpx.AsyncClient, learner: Learner
) -> None:
    huge = {"email": "a@example.com", "password": "x" * (2 * 1024 * 1024), "name": "A"}
    declared = await _send(client, "POST", "/api/v1/auth/register", huge, {})
    assert declared.status_code == 413
    assert declared.json()["error"] == "PayloadTooLarge"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "'
        for _ in range(40):
            yield b"a" * 64 * 1024
        yield b'"}'

    streamed = await client.patch(
        "/api/v1/users/me",
        content=chunks(),
        headers={**learner.headers, "content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"] == "PayloadTooLarge"
    # Code has its own, smaller cap; the request is under 1 MB but the code over 64 KB.
    big_code = "# " + "x" * (70 * 1024) + "\n" + ADD_SOLUTION
    code = await _send(
        client,
        "POST",
        f"/api/v1/exercises/{learner.exercise_id}/submissions",
        {"code": big_code},
        learner.headers,
    )
    assert code.status_code == 413
    assert code.json()["error"] == "PayloadTooLarge"


async def test_a_browser_is_refused_a_size_with_a_page_and_a_program_with_json(
    client: httpx.AsyncClient,
) -> None:
    # A form past the cap (a long pasted list, a big file) from a browser: a page saying what
    # to do, never the API's JSON body; a program still gets the JSON.
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    form = {"emails": "a@example.com " * (100 * 1024)}
    refusals = [
        await client.post("/classes", data=form, headers=browser),
        await client.get("/exercises", params={"q": "x" * 9000}, headers=browser),
        await client.get("/dashboard", headers={**browser, "Cookie": "x=" + "y" * 40_000}),
    ]
    for response, status in zip(refusals, (413, 414, 431), strict=True):
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>" in response.text
        assert '"error"' not in response.text
    program = await client.post("/classes", data=form, headers={"Accept": "application/json"})
    assert program.status_code == 413
    assert program.json()["error"] == "PayloadTooLarge"


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_deeply_nested_json_is_a_client_error(
    client: httpx.AsyncClient, learner: Learner, depth: int
) -> None:
    for opener, closer in (("[", "]"), ('{"a":', "}")):
        body = '{"name": ' + opener * depth + "1" + closer * depth + "}"
        for method, path in (
            ("PATCH", "/api/v1/users/me"),
            ("PUT", "/api/v1/onboarding/answers"),
            ("POST", "/api/v1/auth/login"),
        ):
            r = await client.request(
                method,
                path,
                content=body.encode(),
                headers={**learner.headers, "content-type": "application/json"},
            )
            assert r.status_code in (400, 413, 422), (path, depth, r.status_code, r.text[:200])
            _assert_error_shape(r)


async def test_json_nested_past_the_bound_is_refused_before_it_is_parsed(
    client: httpx.AsyncClient, learner: Learner
) -> None:
    def nested(depth: int) -> bytes:
        return b'{"name": ' + b"[" * depth + b"1" + b"]" * depth + b"}"

    headers = {**learner.headers, "content-type": "application/json"}
    deep = await client.patch("/api/v1/users/me", content=nested(MAX_JSON_DEPTH), headers=headers)
    assert deep.status_code == 400
    assert deep.json()["error"] == "MalformedJSON"
    assert f"deeper than {MAX_JSON_DEPTH}" in deep.json()["detail"]
    # One level less is read and validated as any body is: a name is not a list.
    within = await client.patch(
        "/api/v1/users/me", content=nested(MAX_JSON_DEPTH - 1), headers=headers
    )
    assert within.status_code == 422


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    code = b"[" * 5000 + b'\\"{' * 100
    assert not json_too_deep(b'{"code": "' + code + b'"}')
    assert not json_too_deep(b"[]" * 10_000)
    assert json_too_deep(b'{"a": "]]]", "b": ' + b"[" * (MAX_JSON_DEPTH + 1) + b"]}")


async def test_malformed_and_non_utf8_json_are_400(
    client: httpx.AsyncClient, learner: Learner
) -> None:
    for raw in (b'{"name": "\xff\xfe"}', b'{"name": ', b"\x00\x00\x00"):
        r = await client.patch(
            "/api/v1/users/me",
            content=raw,
            headers={**learner.headers, "content-type": "application/json"},
        )
        assert r.status_code == 400, (raw, r.text)
        assert r.json()["error"] == "MalformedJSON", (raw, r.text)
    r = await client.patch(
        "/api/v1/users/me",
        content=b'{"name": NaN}',
        headers={**learner.headers, "content-type": "application/json"},
    )
    assert r.status_code in (400, 422), r.text
    _assert_error_shape(r)


# -- Unicode in every text field --------------------------------------------------------------

# (method, path template, body builder: value -> body, kind of field)
# "line"/"text": Koan's validated text types (no control characters, bidi overrides or lone
# surrogates); "code": learners' code (NUL and surrogates refused, the rest kept verbatim);
# "secret": passwords and tokens (compared or hashed, never displayed: anything but 5xx).
TEXT_FIELDS: list[tuple[str, str, Any, str]] = [
    ("POST", "/api/v1/auth/register",
     lambda v: {"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "name": v},
     "line"),
    ("POST", "/api/v1/auth/register",
     lambda v: {"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "password": v + PASSWORD,
                "name": "A"},
     "secret"),
    ("POST", "/api/v1/auth/register",
     lambda v: {"email": f"{v}@example.com", "password": PASSWORD, "name": "A"}, "email"),
    ("POST", "/api/v1/auth/login", lambda v: {"email": "a@example.com", "password": v}, "secret"),
    ("POST", "/api/v1/auth/login", lambda v: {"email": v, "password": PASSWORD}, "email"),
    ("POST", "/api/v1/auth/refresh", lambda v: {"refresh_token": v}, "secret"),
    ("POST", "/api/v1/auth/verify-email", lambda v: {"token": v}, "secret"),
    ("POST", "/api/v1/auth/password-reset", lambda v: {"email": v}, "email"),
    ("POST", "/api/v1/auth/password-reset/confirm",
     lambda v: {"token": v, "new_password": PASSWORD}, "secret"),
    ("POST", "/api/v1/auth/password-reset/confirm",
     lambda v: {"token": "t", "new_password": v + PASSWORD}, "secret"),
    ("PATCH", "/api/v1/users/me", lambda v: {"name": v}, "line"),
    ("PATCH", "/api/v1/users/me", lambda v: {"timezone": v}, "choice"),
    ("POST", "/api/v1/users/me/password",
     lambda v: {"current_password": v, "new_password": PASSWORD + "!"}, "secret"),
    ("DELETE", "/api/v1/users/me", lambda v: {"password": v}, "secret"),
    ("PUT", "/api/v1/onboarding/answers", lambda v: {"goals": v}, "text"),
    ("PUT", "/api/v1/onboarding/answers", lambda v: {"interests": [v]}, "choice"),
    ("PUT", "/api/v1/onboarding/answers", lambda v: {"timezone": v}, "choice"),
    ("PATCH", "/api/v1/users/me/profile", lambda v: {"goals": v}, "text"),
    ("PATCH", "/api/v1/users/me/profile", lambda v: {"interests": [v]}, "choice"),
    ("POST", "/api/v1/exercises/{exercise_id}/submissions",
     lambda v: {"code": f"# {v}\n{ADD_SOLUTION}"}, "code"),
    ("POST", "/api/v1/conversations/{conversation_id}/messages",
     lambda v: {"content": v}, "text"),
    ("POST", "/api/v1/exercises/generate",
     lambda v: {"language": "python", "skill": "loops", "difficulty": 1, "theme": v}, "line"),
    ("POST", "/api/v1/exercises/generate",
     lambda v: {"language": "python", "skill": v, "difficulty": 1}, "choice"),
]  # fmt: skip

# What each kind of field must answer: True = accepted (2xx, or a 4xx about something else,
# e.g. a wrong password), False = refused with 422.
REFUSED = {
    "line": {NUL: True, SURROGATE: True, BIDI: True, EMOJI: False},
    "text": {NUL: True, SURROGATE: True, BIDI: True, EMOJI: False},
    "code": {NUL: True, SURROGATE: True, BIDI: False, EMOJI: False},
    "choice": {NUL: True, SURROGATE: True, BIDI: True, EMOJI: True},
    "email": {NUL: True, SURROGATE: True, BIDI: True, EMOJI: None},  # None: either
    "secret": {NUL: None, SURROGATE: None, BIDI: None, EMOJI: None},
}


async def test_unicode_edge_cases_in_every_text_field_never_break_the_server(
    client: httpx.AsyncClient, learner: Learner
) -> None:
    problems = []
    for method, template, build, kind in TEXT_FIELDS:
        path = template.format(
            exercise_id=learner.exercise_id, conversation_id=learner.conversation_id
        )
        for value, refused in REFUSED[kind].items():
            r = await _send(client, method, path, build(value), learner.headers)
            where = f"{method} {template} [{kind}] {value!r}: {r.status_code} {r.text[:160]}"
            if r.status_code >= 500 and r.status_code != 501:  # 501: no AI model configured
                problems.append("server error: " + where)
            elif r.status_code >= 400 and not isinstance(r.json().get("error"), str):
                problems.append("not Koan's error shape: " + where)
            elif refused is True and r.status_code != 422:
                problems.append("should be refused with 422: " + where)
            elif refused is False and r.status_code == 422:
                problems.append("should be accepted: " + where)
    assert not problems, "\n".join(problems)


async def test_accepted_unicode_is_stored_and_returned_verbatim(
    client: httpx.AsyncClient, learner: Learner
) -> None:
    named = await client.patch("/api/v1/users/me", headers=learner.headers, json={"name": EMOJI})
    assert named.status_code == 200
    assert (await client.get("/api/v1/users/me", headers=learner.headers)).json()["name"] == EMOJI

    goals = f"{EMOJI}\nLine two\twith a tab"
    profile = await client.patch(
        "/api/v1/users/me/profile", headers=learner.headers, json={"goals": goals}
    )
    assert profile.status_code == 200, profile.text
    assert profile.json()["goals"] == goals

    # Trojan-source style bidi controls are code's business: kept byte for byte, never altered.
    code = f"# {BIDI} {EMOJI}\n{ADD_SOLUTION}"
    submitted = await client.post(
        f"/api/v1/exercises/{learner.exercise_id}/submissions",
        headers=learner.headers,
        json={"code": code},
    )
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["status"] == "passed"
    listed = await client.get(
        f"/api/v1/exercises/{learner.exercise_id}/submissions", headers=learner.headers
    )
    assert listed.json()["items"][0]["code"] == code

    asked = await client.post(
        f"/api/v1/conversations/{learner.conversation_id}/messages",
        headers=learner.headers,
        json={"content": f"{EMOJI} what is a loop?"},
    )
    assert asked.status_code == 201, asked.text
    assert asked.json()["message"]["content"] == f"{EMOJI} what is a loop?"


# -- injection --------------------------------------------------------------------------------


async def test_sql_and_html_are_stored_as_plain_text_and_served_as_json(
    client: httpx.AsyncClient, learner: Learner, session: AsyncSession
) -> None:
    for value in (SQL, HTML, "' OR '1'='1", "1; SELECT pg_sleep(10)--", "{{7*7}} ${7*7}"):
        r = await client.patch("/api/v1/users/me", headers=learner.headers, json={"name": value})
        assert r.status_code == 200, r.text
        me = await client.get("/api/v1/users/me", headers=learner.headers)
        assert me.json()["name"] == value  # verbatim: no escaping in storage, none needed
        # Served as JSON that browsers must not sniff into HTML; the CSP forbids inline script.
        assert me.headers["content-type"].startswith("application/json")
        assert me.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in me.headers["content-security-policy"]
    users = await session.scalar(select(func.count()).select_from(User))
    assert users is not None
    assert users >= 1  # the table is still there

    chat = await client.post(
        f"/api/v1/conversations/{learner.conversation_id}/messages",
        headers=learner.headers,
        json={"content": HTML + " " + SQL},
    )
    assert chat.status_code == 201, chat.text
    detail = await client.get(
        f"/api/v1/conversations/{learner.conversation_id}", headers=learner.headers
    )
    assert detail.json()["messages"][0]["content"] == HTML + " " + SQL


async def test_injection_in_queries_and_credentials_is_refused_or_inert(
    client: httpx.AsyncClient, learner: Learner
) -> None:
    h = learner.headers
    for params in ({"skill": "' OR 1=1--"}, {"language": "python' --"}, {"difficulty": "1 OR 1"}):
        r = await client.get("/api/v1/exercises", headers=h, params=params)
        assert r.status_code == 422, (params, r.text)
    for path in ("/api/v1/exercises", "/api/v1/assignments", "/api/v1/conversations"):
        r = await client.get(path, headers=h, params={"cursor": "' UNION SELECT * FROM users--"})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"] == "BadCursor"
    r = await client.get("/api/v1/assignments", headers=h, params={"status": "skipped' OR '1'='1"})
    assert r.status_code == 422
    # A syntactically valid address full of quotes is just an address nobody has.
    r = await client.post(
        "/api/v1/auth/login",
        json={"email": f"{learner.user.email}'--", "password": "' OR '1'='1"},
    )
    assert r.status_code in (401, 422), r.text
    assert "access_token" not in r.text


async def test_path_traversal_finds_nothing(client: httpx.AsyncClient, learner: Learner) -> None:
    for path in (
        "/api/v1/exercises/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/v1/exercises/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/assignments/..%5C..%5Cwindows%5Cwin.ini",
        "/api/v1/conversations/%00",
        "/api/v1/exercises/%ff%fe",
        "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    ):
        r = await client.get(path, headers=learner.headers)
        assert r.status_code in (404, 422), (path, r.status_code, r.text[:200])
        assert "root:" not in r.text


# -- header and query limits, through a real HTTP server ---------------------------------------


@pytest_asyncio.fixture
async def http_server(app: FastAPI) -> AsyncIterator[str]:
    """Uvicorn serving the test's app on a free loopback port, in this event loop."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # bounded: 5 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def _raw(address: str, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes, return (status, body) of the answer (bounded wait)."""
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_huge_headers_and_query_strings_are_client_errors(
    http_server: str, learner: Learner
) -> None:
    auth = learner.headers["Authorization"].encode()
    ok, _ = await _raw(
        http_server,
        b"GET /api/v1/users/me HTTP/1.1\r\nHost: t\r\nAuthorization: " + auth
        + b"\r\nConnection: close\r\n\r\n",
    )  # fmt: skip
    assert ok == 200

    cases = {
        "one huge header": b"X-Big: " + b"a" * 200_000 + b"\r\n",
        "huge cookie": b"Cookie: koan_access=" + b"a" * 100_000 + b"\r\n",
        "many headers": b"".join(b"X-H%d: v\r\n" % i for i in range(5000)),
    }
    for name, extra in cases.items():
        status, body = await _raw(
            http_server,
            b"GET /api/v1/users/me HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + b"\r\n",
        )
        assert status in (400, 431), (name, status)
        if status == 431:
            assert json.loads(body)["error"] == "HeadersTooLarge"
    for size in (9_000, 200_000):
        status, body = await _raw(
            http_server,
            b"GET /api/v1/exercises?skill=" + b"a" * size
            + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )  # fmt: skip
        assert 400 <= status < 500, (size, status)
        if status == 414:
            assert json.loads(body)["error"] == "URITooLong"


def _cursor(*values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param(_cursor(10**20, "x"), id="number too large"),
        pytest.param(_cursor(2**40), id="number beyond a column"),
        pytest.param(_cursor("2026-12-05T10:00:00"), id="naive time"),
        pytest.param(_cursor("2026-12-05T10:00:00", str(uuid.uuid4())), id="naive time and id"),
        pytest.param(_cursor("9999-12-31T23:59:59+00:00", "x"), id="time with a bad id"),
        pytest.param(_cursor(1, "\ud800"), id="lone surrogate"),
        pytest.param(_cursor(1, "a\x00b"), id="NUL"),
        pytest.param(
            _cursor("0001-01-01T00:00:00+05:00", str(uuid.uuid4())), id="time before the calendar"
        ),
    ],
)
async def test_a_forged_cursor_is_a_bad_cursor_on_every_page(
    client: httpx.AsyncClient, learner: Learner, cursor: str
) -> None:
    paths = (
        "/api/v1/exercises",
        "/api/v1/assignments",
        f"/api/v1/exercises/{learner.exercise_id}/submissions",
        "/api/v1/conversations",
        f"/api/v1/conversations/{learner.conversation_id}",
    )
    for path in paths:
        r = await client.get(path, headers=learner.headers, params={"cursor": cursor})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"] == "BadCursor", (path, r.text)


@pytest.mark.parametrize("bound", ["to", "from"])
@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
async def test_a_history_at_the_ends_of_the_calendar_is_refused(
    client: httpx.AsyncClient, learner: Learner, bound: str, day: str
) -> None:
    r = await client.get("/api/v1/progress/history", headers=learner.headers, params={bound: day})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "ValidationError"
    assert "years of today" in r.json()["detail"]


async def test_a_nul_character_is_refused_the_same_way_wherever_it_is_sent(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # PostgreSQL's text cannot hold a NUL, SQLite's can: without one rule for every input, the
    # same request was a 400 on one backend and a 200 (or a 404) on the other.
    ops = await create_user(session, resources, onboarded=True, role="admin")
    headers = await bearer(session, resources, ops)
    api = [
        await client.get("/api/v1/admin/users", params={"q": "a\x00b"}, headers=headers),
        await client.post("/api/v1/classes/join", json={"code": "AB\x00CD"}, headers=headers),
    ]
    for response, field in zip(api, ("q", "code"), strict=True):
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "ValidationError"
        assert response.json()["detail"] == f"'{field}': must not contain NUL characters"

    await log_in(client, ops)
    search = await client.get("/admin", params={"q": "\x00"}, headers={"Accept": "text/html"})
    form = await post_form(client, "/classes", "/classes", {"name": "Tea\x00m"})
    for response in (search, form):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("text/html")
        assert "must not contain NUL characters" in response.text
        assert f'data-owner="{ops.id}"' in response.text  # the page still says whose it is


def test_every_route_of_the_app_refuses_a_nul_before_its_work(app: FastAPI) -> None:
    # The rule is the route class's: a router made another way would let a NUL through to
    # one backend's queries and not the other's.
    unchecked = sorted(
        f"{sorted(context.methods or ())} {context.path}"
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        and not isinstance(context.original_route, CheckedRoute)
    )
    assert unchecked == []
