"""Request ids, the access log, and what logs must never contain."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest
import structlog
from fastapi import Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Message, Receive, Scope, Send

from koan.config import Settings
from koan.deps import SessionDep
from koan.logs import configure_logging
from koan.ops.metrics import Metrics
from koan.ops.metrics_router import install_observability
from koan.ops.request_log import REDACTED, RequestLog, bind_user, redact_secrets
from koan.resources import Resources
from tests.fixtures.factories import PASSWORD, create_exercise, create_user, unique_email
from tests.fixtures.smtp import SMTPServer

Events = list[dict[str, Any]]


@pytest.fixture
def observed(app: FastAPI) -> FastAPI:
    """The test app with metrics and the request log (create_app adds them when wired in)."""
    if not hasattr(app.state, "metrics"):
        install_observability(app)
    return app


@pytest.fixture
def events(observed: FastAPI) -> Iterator[Events]:
    """Every event as the renderer receives it, after Koan's own processors have run."""
    original = list(structlog.get_config()["processors"])
    processors = list(original)
    if redact_secrets not in processors:  # until koan.logs adds it itself
        processors.insert(len(processors) - 1, redact_secrets)
    seen: Events = []

    def keep(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        seen.append(dict(event_dict))
        return event_dict

    structlog.configure(processors=[*processors[:-1], keep, processors[-1]])
    yield seen
    structlog.configure(processors=original)


def access_lines(events: Events) -> Events:
    return [e for e in events if e.get("event") == "http.request"]


def is_generated_id(value: str) -> bool:
    return len(value) == 32 and uuid.UUID(hex=value).hex == value


async def test_a_request_id_is_generated_echoed_and_logged(
    client: httpx.AsyncClient, events: Events
) -> None:
    r = await client.get("/openapi.json")
    request_id = r.headers["X-Request-ID"]
    assert is_generated_id(request_id)
    (line,) = access_lines(events)
    assert line["request_id"] == request_id
    assert line["route"] == "/openapi.json"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    other = await client.get("/openapi.json")
    assert other.headers["X-Request-ID"] != request_id


async def test_a_valid_incoming_request_id_is_kept(
    client: httpx.AsyncClient, events: Events
) -> None:
    given = "edge-7f3a.42_b"
    r = await client.get("/no-such-page", headers={"X-Request-ID": given})
    assert r.status_code == 404
    assert r.headers["X-Request-ID"] == given
    (line,) = access_lines(events)
    assert line["request_id"] == given
    assert line["route"] == "unmatched"


@pytest.mark.parametrize(
    "given", ["has space", "x" * 129, "<script>", "a;b", "", "ünïcode", "id\tTAB"]
)
async def test_an_unsafe_incoming_request_id_is_replaced(
    client: httpx.AsyncClient, events: Events, given: str
) -> None:
    r = await client.get("/no-such-page", headers=[(b"x-request-id", given.encode())])
    assert is_generated_id(r.headers["X-Request-ID"])
    assert access_lines(events)[0]["request_id"] == r.headers["X-Request-ID"]


async def test_responses_of_other_middleware_carry_the_id_too(
    client: httpx.AsyncClient, events: Events
) -> None:
    r = await client.post(
        "/api/v1/auth/login",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": str(10**9)},
    )
    assert r.status_code == 413
    assert is_generated_id(r.headers["X-Request-ID"])
    assert access_lines(events)[0]["status"] == 413


async def test_the_access_line_names_the_user_a_dependency_bound(
    observed: FastAPI, client: httpx.AsyncClient, events: Events
) -> None:
    async def authenticated() -> None:
        bind_user("user-42")

    async def probe() -> dict[str, bool]:
        return {"ok": True}

    observed.add_api_route("/probe/{item}", probe, dependencies=[Depends(authenticated)])
    assert (await client.get("/probe/1")).is_success
    (line,) = access_lines(events)
    assert line["user_id"] == "user-42"
    assert line["route"] == "/probe/{item}"
    # The next request starts clean: no user carried over.
    await client.get("/no-such-page")
    assert "user_id" not in access_lines(events)[1]


async def test_the_access_line_names_the_logged_in_user(
    client: httpx.AsyncClient, events: Events, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    login = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=headers)).is_success
    line = access_lines(events)[-1]
    assert line["route"] == "/api/v1/users/me"
    assert line["user_id"] == str(user.id)


async def test_an_unhandled_error_is_logged_with_the_request_id(
    observed: FastAPI, client: httpx.AsyncClient, events: Events
) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    observed.add_api_route("/broken", broken)
    r = await client.get("/broken", headers={"X-Request-ID": "trace-500"})
    assert r.status_code == 500
    assert r.json()["error"] == "InternalError"
    line = access_lines(events)[0]
    assert line["status"] == 500
    assert line["route"] == "/broken"
    failure = next(e for e in events if e.get("event") == "request.failed")
    assert failure["request_id"] == "trace-500"


async def test_an_unhandled_error_answers_with_the_security_headers_and_goes_no_further(
    observed: FastAPI, events: Events
) -> None:
    """The 500 is an answer like any other (the headers every answer carries, kept by no
    cache); and once answered and logged, the error does not reach the server, which would
    log it a second time, as plain text and unredacted."""

    async def broken() -> None:
        raise RuntimeError("boom")

    observed.add_api_route("/broken", broken)
    # raise_app_exceptions: an error leaving the app fails the request, as it reaches uvicorn.
    transport = httpx.ASGITransport(app=observed, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.get("/broken", headers={"X-Request-ID": "trace-500"})
    assert r.status_code == 500
    assert r.json() == {
        "error": "InternalError",
        "detail": "Something went wrong on our side; it has been logged.",
    }
    assert r.headers["X-Request-ID"] == "trace-500"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    (failure,) = [e for e in events if e.get("event") == "request.failed"]
    assert failure["request_id"] == "trace-500"
    assert "RuntimeError: boom" in failure["exception"]
    (line,) = access_lines(events)
    assert line["status"] == 500
    assert line["route"] == "/broken"


async def test_a_failed_statement_is_logged_without_the_values_it_carried(
    observed: FastAPI, client: httpx.AsyncClient, events: Events
) -> None:
    """A statement's values are a learner's code, an address, a password's hash: the
    traceback of a statement the database refused names the statement, never them."""
    marker = f"MARKER_{uuid.uuid4().hex}"

    async def refused(session: SessionDep) -> None:
        # A column that must not be empty left empty: a fault of the server, not the client's.
        statement = text("INSERT INTO class_invites (id, class_id, email) VALUES (:id, NULL, :e)")
        await session.execute(statement, {"id": str(uuid.uuid4()), "e": marker})

    observed.add_api_route("/refused", refused)
    r = await client.get("/refused")
    assert r.status_code == 500
    assert marker not in r.text
    failure = next(e for e in events if e.get("event") == "request.failed")
    assert failure["error"] == "IntegrityError"
    assert "INSERT INTO class_invites" in failure["exception"]
    assert marker not in repr(events)


async def test_logs_hold_no_password_token_secret_or_code(
    client: httpx.AsyncClient,
    events: Events,
    smtp_server: SMTPServer,
    session: AsyncSession,
    resources: Resources,
) -> None:
    email = unique_email()
    password = f"hunter2-{uuid.uuid4().hex}"
    new_password = f"changed-{uuid.uuid4().hex}"
    r = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": "Ada"}
    )
    assert r.status_code == 201, r.text
    verify_token = smtp_server.last_to(email).link_token("/verify-email")
    # Also in the query string: the access log must not carry it from there either.
    r = await client.post(
        f"/api/v1/auth/verify-email?token={verify_token}", json={"token": verify_token}
    )
    assert r.is_success, r.text
    tokens = (
        await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    ).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refresh.is_success
    r = await client.post(
        "/api/v1/users/me/password",
        headers=headers,
        json={"current_password": password, "new_password": new_password},
    )
    assert r.is_success, r.text
    bad = await client.post(
        "/api/v1/auth/login", json={"email": "not-an-email", "password": new_password}
    )
    assert bad.status_code in {401, 422}
    cookie = await client.get(
        "/api/v1/users/me", headers={"Cookie": f"koan_access={tokens['access_token']}"}
    )
    assert cookie.status_code in {200, 401}

    learner = await create_user(session, resources, onboarded=True)
    exercise = await create_exercise(session)
    learner_tokens = (
        await client.post("/api/v1/auth/login", json={"email": learner.email, "password": PASSWORD})
    ).json()
    marker = f"MARKER_{uuid.uuid4().hex}"
    code = f"def add(a, b):\n    {marker} = a\n    return a + b\n"
    r = await client.post(
        f"/api/v1/exercises/{exercise.id}/submissions",
        headers={"Authorization": f"Bearer {learner_tokens['access_token']}"},
        json={"code": code},
    )
    assert r.status_code == 201, r.text

    routes = {line["route"] for line in access_lines(events)}
    assert {
        "/api/v1/auth/register",
        "/api/v1/auth/verify-email",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/users/me/password",
        "/api/v1/exercises/{exercise_id}/submissions",
    } <= routes
    logged = repr(events)
    secrets = {
        "password": password,
        "new password": new_password,
        "fixture password": PASSWORD,
        "verify token": verify_token,
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "rotated refresh token": refresh.json()["refresh_token"],
        "learner token": learner_tokens["access_token"],
        "code": marker,
        "secret key": resources.settings.signing_key,
    }
    leaked = [name for name, secret in secrets.items() if secret in logged]
    assert not leaked, f"logs hold: {leaked}"


def test_redaction_blanks_secret_fields_at_any_depth_and_keeps_the_rest() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"
    event = {
        "event": "llm.call",
        "password": "hunter2",
        "new_password": "hunter3",
        "refresh_token": "rt",
        "api_key": "sk-live",
        "X-API-Key": "sk-live2",
        "code": "print(1)",
        "source_code": "print(2)",
        "headers": {
            "Authorization": "Bearer abc.def",
            "Cookie": "koan_access=xyz",
            "Accept": "*/*",
        },
        "attempts": [{"secret": "s1"}, {"ok": "fine"}],
        "error": f"GET /verify-email?token=tok123&x=1 failed with {jwt}",
        "note": "sent Authorization: Bearer zzz999",
        "status_code": 404,
        "tokens_in": 812,
        "password_changed": True,
        "api_key_configured": None,
        "route": "/api/v1/auth/login",
    }
    before = repr(event)
    out = redact_secrets(None, "info", event)
    assert repr(event) == before  # the caller's objects are untouched
    for key in ("password", "new_password", "refresh_token", "api_key", "X-API-Key", "code"):
        assert out[key] == REDACTED, key
    assert out["source_code"] == REDACTED
    assert out["headers"] == {"Authorization": REDACTED, "Cookie": REDACTED, "Accept": "*/*"}
    assert out["attempts"] == [{"secret": REDACTED}, {"ok": "fine"}]
    assert "tok123" not in out["error"]
    assert jwt not in out["error"]
    assert "x=1" in out["error"]
    assert "zzz999" not in out["note"]
    assert "Bearer" in out["note"]
    assert out["status_code"] == 404
    assert out["tokens_in"] == 812
    assert out["password_changed"] is True
    assert out["api_key_configured"] is None
    assert out["route"] == "/api/v1/auth/login"
    assert out["event"] == "llm.call"


async def test_streamed_responses_pass_through_chunk_by_chunk() -> None:
    """SSE must reach the client as it is produced, not when the stream ends."""
    delivered: list[Message] = []

    async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n in range(3):
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True}
            )
            # Delivered before the app produces the next event.
            assert delivered[-1]["body"] == b"data: %d\n\n" % n
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        delivered.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": "/stream", "headers": []}
    await RequestLog(streaming_app, metrics=Metrics())(scope, receive, send)
    assert [m["type"] for m in delivered] == ["http.response.start"] + ["http.response.body"] * 4
    assert dict(delivered[0]["headers"])[b"x-request-id"]


@pytest.mark.parametrize(
    ("env", "log_format", "json_lines"),
    [
        ("development", "auto", False),
        ("production", "auto", True),
        ("development", "json", True),
        ("production", "console", False),
    ],
)
def test_the_log_format_is_json_in_production_unless_set(
    env: str, log_format: str, json_lines: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        env=env,  # type: ignore[arg-type]
        log_format=log_format,  # type: ignore[arg-type]
        secret_key="x" * 40,
        _env_file=None,
    )
    original = structlog.get_config()
    try:
        configure_logging(json=settings.log_json)
        structlog.get_logger().info("format.checked", answer=42)
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        structlog.configure(**original)

    if json_lines:
        assert json.loads(line)["answer"] == 42
    else:
        assert "format.checked" in line
        assert "answer=42" in line
