"""Who may call what: every API route × (anonymous, disabled, unverified, learner A, learner B,
admin).

The routes are enumerated from the app itself, so a route added without an entry in ACCESS
fails this test: deciding who may call it is part of adding it.

- anonymous: 401 NotAuthenticated everywhere but the public auth routes and health checks;
- disabled: an account an administrator disabled, holding a token: 401 InvalidToken on the
  same routes (its session is refused with the account, whatever route it calls);
- unverified: its own account only; 403 EmailNotVerified on every learning route;
- learners: never an administrator's route (403 Forbidden); never another learner's data
  (404, exactly as if it did not exist: ids of others' assignments and conversations);
- admin: everything an administrator route offers, but no learner's private data through the
  learner routes either;
- classes: learner A is the instructor of a class; to everyone else (learner B, the admin)
  that class and everything under it answers 404, as if it did not exist. The roles within a
  class (TA, learner, a classmate) are checked in tests/classes.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import User
from koan.resources import Resources
from tests.fixtures.factories import ADD_SOLUTION, PASSWORD, bearer, create_exercise, create_user


class Access(Enum):
    PUBLIC = "anyone"
    ACCOUNT = "any signed-in user, verified or not"
    VERIFIED = "a verified user"
    ADMIN = "a verified administrator"


@dataclass(frozen=True)
class Rule:
    access: Access
    body: dict[str, Any] | None = None
    query: dict[str, str] = field(default_factory=dict)
    # The path names learner A's own assignment/conversation/class: only A may see it.
    owned_by_a: bool = False
    # Sent as a multipart file upload (a CSV of addresses) instead of a JSON body.
    upload: bool = False


P, A, V, ADM = Access.PUBLIC, Access.ACCOUNT, Access.VERIFIED, Access.ADMIN
STRONG = "a long passphrase 0xC0FFEE"

ACCESS: dict[str, Rule] = {
    # health
    "GET /health/live": Rule(P),
    "GET /health/ready": Rule(P),
    # auth
    "POST /api/v1/auth/register": Rule(
        P, {"email": "matrix-new@example.com", "password": STRONG, "name": "New"}
    ),
    "POST /api/v1/auth/login": Rule(P, {"email": "nobody@example.com", "password": "wrong one!"}),
    "POST /api/v1/auth/refresh": Rule(P, {"refresh_token": "not-a-real-token"}),
    "POST /api/v1/auth/verify-email": Rule(P, {"token": "not-a-real-token"}),
    "POST /api/v1/auth/password-reset": Rule(P, {"email": "nobody@example.com"}),
    "POST /api/v1/auth/password-reset/confirm": Rule(
        P, {"token": "not-a-real-token", "new_password": STRONG}
    ),
    # A web page (under the refresh cookie's path) that renews a lapsed browser session from
    # the koan_refresh cookie, else redirects to /login: it needs no access token by design.
    # The GET only shows the form; the POST (with the session's CSRF token) rotates.
    "GET /api/v1/auth/resume": Rule(P, query={"next": "/dashboard"}),
    "POST /api/v1/auth/resume": Rule(P),
    # The pages' log-out form (under the refresh cookie's path, so it ends a session whose
    # access cookie lapsed); the session's own CSRF token is its key.
    "POST /api/v1/auth/end-session": Rule(P),
    "POST /api/v1/auth/logout": Rule(A),
    "POST /api/v1/auth/logout-all": Rule(A),
    "POST /api/v1/auth/resend-verification": Rule(A),
    # the account itself
    "GET /api/v1/users/me": Rule(A),
    "PATCH /api/v1/users/me": Rule(A, {"name": "Renamed"}),
    "DELETE /api/v1/users/me": Rule(A, {"password": "not the password"}),
    "POST /api/v1/users/me/password": Rule(
        A, {"current_password": "not the password", "new_password": STRONG}
    ),
    "GET /api/v1/users/me/usage": Rule(A),
    "GET /api/v1/users/me/profile": Rule(V),
    "PATCH /api/v1/users/me/profile": Rule(V, {"minutes_per_day": 30}),
    # onboarding
    "GET /api/v1/onboarding/questions": Rule(V),
    "PUT /api/v1/onboarding/answers": Rule(V, {"language": "python"}),
    "POST /api/v1/onboarding/complete": Rule(V),
    "GET /api/v1/onboarding/status": Rule(V),
    # exercises and assignments
    "GET /api/v1/exercises": Rule(V),
    "GET /api/v1/exercises/daily": Rule(V),
    "POST /api/v1/exercises/generate": Rule(
        V, {"language": "python", "skill": "loops", "difficulty": 1}
    ),
    "GET /api/v1/exercises/{exercise_id}": Rule(V),
    "POST /api/v1/exercises/{exercise_id}/start": Rule(V),
    # An admin shares a learner's generated exercise with everyone.
    "POST /api/v1/exercises/{exercise_id}/approve": Rule(ADM),
    # The learner's own unsaved code for an exercise (keyed by the caller, never another's).
    "GET /api/v1/drafts/{exercise_id}": Rule(V),
    "PUT /api/v1/drafts/{exercise_id}": Rule(V, {"code": "print(1)"}),
    "DELETE /api/v1/drafts/{exercise_id}": Rule(V),
    "POST /api/v1/exercises/{exercise_id}/submissions": Rule(V, {"code": ADD_SOLUTION}),
    "GET /api/v1/exercises/{exercise_id}/submissions": Rule(V),
    "POST /api/v1/exercises/{exercise_id}/hints": Rule(V),
    # The hints the caller has taken on the exercise (their own assignment's, never another's).
    "GET /api/v1/exercises/{exercise_id}/hints": Rule(V),
    "POST /api/v1/exercises/{exercise_id}/skip": Rule(V),
    "GET /api/v1/assignments": Rule(V),
    "GET /api/v1/assignments/{assignment_id}": Rule(V, owned_by_a=True),
    # the tutor
    "POST /api/v1/conversations": Rule(V, {}),
    "GET /api/v1/conversations": Rule(V),
    "GET /api/v1/conversations/{conversation_id}": Rule(V, owned_by_a=True),
    "DELETE /api/v1/conversations/{conversation_id}": Rule(V, owned_by_a=True),
    "POST /api/v1/conversations/{conversation_id}/messages": Rule(
        V, {"content": "What is a loop?"}, owned_by_a=True
    ),
    # progress
    "GET /api/v1/progress": Rule(V),
    "GET /api/v1/progress/history": Rule(V),
    "GET /api/v1/progress/achievements": Rule(V),
    "GET /api/v1/progress/export": Rule(V, query={"format": "json"}),
    # classes (the {class_id} is a class learner A teaches)
    "POST /api/v1/classes": Rule(V, {"name": "Matrix class"}),
    "GET /api/v1/classes": Rule(V),
    "GET /api/v1/classes/preview": Rule(V, query={"code": "NOPE2345"}),
    "POST /api/v1/classes/join": Rule(V, {"code": "NOPE2345"}),
    "POST /api/v1/classes/invites/accept": Rule(V, {"token": "not-a-real-token"}),
    "GET /api/v1/classes/assignments": Rule(V),
    "GET /api/v1/classes/{class_id}": Rule(V, owned_by_a=True),
    "PATCH /api/v1/classes/{class_id}": Rule(V, {"name": "Renamed"}, owned_by_a=True),
    "DELETE /api/v1/classes/{class_id}": Rule(V, owned_by_a=True),
    "POST /api/v1/classes/{class_id}/join-code": Rule(V, owned_by_a=True),
    "POST /api/v1/classes/{class_id}/leave": Rule(V, owned_by_a=True),
    "GET /api/v1/classes/{class_id}/members": Rule(V, owned_by_a=True),
    "DELETE /api/v1/classes/{class_id}/members/{user_id}": Rule(V, owned_by_a=True),
    "PATCH /api/v1/classes/{class_id}/members/{user_id}": Rule(V, {"role": "ta"}, owned_by_a=True),
    "GET /api/v1/classes/{class_id}/invites": Rule(V, owned_by_a=True),
    # {exercise_id} is an authored exercise: 409 AlreadyShared to A, 404 to anyone else.
    "GET /api/v1/classes/{class_id}/generated-exercises": Rule(V, owned_by_a=True),
    "POST /api/v1/classes/{class_id}/generated-exercises/{exercise_id}/approve": Rule(
        V, owned_by_a=True
    ),
    "POST /api/v1/classes/{class_id}/generated-exercises/{exercise_id}/reject": Rule(
        V, owned_by_a=True
    ),
    "POST /api/v1/classes/{class_id}/invites": Rule(
        V, {"emails": "matrix-invitee@example.com"}, owned_by_a=True
    ),
    "POST /api/v1/classes/{class_id}/invites/csv": Rule(V, owned_by_a=True, upload=True),
    "GET /api/v1/classes/{class_id}/assignments": Rule(V, owned_by_a=True),
    "POST /api/v1/classes/{class_id}/assignments": Rule(
        V,
        {
            "title": "Matrix",
            "skill": "functions",
            "level": 1,
            "count": 1,
            "opens_at": "2026-01-01T00:00:00",
            "due_at": "2030-01-01T00:00:00",
        },
        owned_by_a=True,
    ),  # fmt: skip
    "DELETE /api/v1/classes/{class_id}/assignments/{class_assignment_id}": Rule(V, owned_by_a=True),
    "GET /api/v1/classes/{class_id}/dashboard/roster": Rule(V, owned_by_a=True),
    "GET /api/v1/classes/{class_id}/dashboard/gradebook": Rule(V, owned_by_a=True),
    "GET /api/v1/classes/{class_id}/dashboard/needs-help": Rule(V, owned_by_a=True),
    "GET /api/v1/classes/{class_id}/dashboard/exercises": Rule(V, owned_by_a=True),
    "GET /api/v1/classes/{class_id}/dashboard/usage": Rule(V, owned_by_a=True),
    # {user_id} here is a learner in A's class, {conversation_id} theirs about its exercise.
    "GET /api/v1/classes/{class_id}/learners/{user_id}/submissions": Rule(V, owned_by_a=True),
    "GET /api/v1/classes/{class_id}/learners/{user_id}/conversations": Rule(V, owned_by_a=True),
    "GET /api/v1/classes/{class_id}/learners/{user_id}/conversations/{conversation_id}": Rule(
        V, owned_by_a=True
    ),
    # administration
    "GET /api/v1/admin/usage": Rule(ADM),
    "GET /api/v1/admin/usage/users/{user_id}/budget": Rule(ADM),
    "PUT /api/v1/admin/usage/users/{user_id}/budget": Rule(ADM, {"daily_budget_usd": "1.25"}),
    # {user_id} here is a bystander's account, so disabling it takes nobody's access away.
    "GET /api/v1/admin/users": Rule(ADM, query={"q": "example.com"}),
    "POST /api/v1/admin/users/{user_id}/disable": Rule(ADM),
    "POST /api/v1/admin/users/{user_id}/enable": Rule(ADM),
}


def _routes(app: FastAPI) -> Iterator[tuple[str, set[str]]]:
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route.path, set(route.methods)
        # FastAPI >= 0.16x keeps included routers as branches that resolve their full paths.
        for context in getattr(route, "effective_route_contexts", list)():
            yield context.path, set(getattr(context.original_route, "methods", None) or ())


def api_routes(app: FastAPI) -> list[str]:
    """Every API and health route of the app, documented or not ("METHOD /path")."""
    found = {
        f"{method} {path}"
        for path, methods in _routes(app)
        if path.startswith(("/api/", "/health"))
        for method in methods - {"HEAD"}
    }
    # The published schema too, in case a route is mounted some way the walk above misses.
    for path, operations in app.openapi()["paths"].items():
        found.update(f"{method.upper()} {path}" for method in operations)
    assert found, "no API routes found: has the way FastAPI lists routes changed?"
    return sorted(found)


def test_every_api_route_has_an_access_rule(app: FastAPI) -> None:
    missing = [route for route in api_routes(app) if route not in ACCESS]
    assert not missing, f"add these routes to ACCESS (who may call them?): {missing}"


@dataclass
class World:
    client: httpx.AsyncClient
    session: AsyncSession
    resources: Resources
    users: dict[str, User]
    exercise_id: uuid.UUID
    a_assignment: uuid.UUID
    a_conversation: uuid.UUID
    a_class: uuid.UUID
    # A learner in A's class, and their conversation about the class's exercise.
    classmate: uuid.UUID
    classmate_conversation: uuid.UUID
    # An account the administrators' account routes act on.
    bystander: uuid.UUID

    async def headers(self, persona: str) -> dict[str, str]:
        if persona == "anonymous":
            return {}
        # A fresh session per request: logout routes end only that one.
        return await bearer(self.session, self.resources, self.users[persona])

    async def new_conversation_of_a(self) -> uuid.UUID:
        r = await self.client.post(
            "/api/v1/conversations", json={}, headers=await self.headers("learner_a")
        )
        assert r.status_code == 201, r.text
        return uuid.UUID(r.json()["id"])

    async def new_class_of_a(self) -> uuid.UUID:
        r = await self.client.post(
            "/api/v1/classes", json={"name": "A's class"}, headers=await self.headers("learner_a")
        )
        assert r.status_code == 201, r.text
        return uuid.UUID(r.json()["id"])

    async def new_class_assignment(self, class_id: uuid.UUID) -> uuid.UUID:
        r = await self.client.post(
            f"/api/v1/classes/{class_id}/assignments",
            json={"title": "To withdraw", "exercise_ids": [str(self.exercise_id)],
                  "opens_at": "2026-01-01T00:00:00", "due_at": "2030-01-01T00:00:00"},
            headers=await self.headers("learner_a"),
        )  # fmt: skip
        assert r.status_code == 201, r.text
        return uuid.UUID(r.json()["id"])


async def _world(client: httpx.AsyncClient, session: AsyncSession, res: Resources) -> World:
    users = {
        "unverified": await create_user(session, res, verified=False),
        "learner_a": await create_user(session, res, onboarded=True),
        "learner_b": await create_user(session, res, onboarded=True),
        "admin": await create_user(session, res, onboarded=True, role="admin"),
        "disabled": await create_user(session, res, onboarded=True),
    }
    users["disabled"].disabled_at = res.clock.now()
    exercise = await create_exercise(session)
    a = await bearer(session, res, users["learner_a"])
    started = await client.post(f"/api/v1/exercises/{exercise.id}/start", headers=a)
    assert started.status_code == 200, started.text
    conversation = await client.post("/api/v1/conversations", json={}, headers=a)
    assert conversation.status_code == 201, conversation.text
    taught = await client.post("/api/v1/classes", json={"name": "A teaches"}, headers=a)
    assert taught.status_code == 201, taught.text
    set_work = await client.post(
        f"/api/v1/classes/{taught.json()['id']}/assignments",
        json={"title": "Set", "exercise_ids": [str(exercise.id)],
              "opens_at": "2026-01-01T00:00:00", "due_at": "2030-01-01T00:00:00"},
        headers=a,
    )  # fmt: skip
    assert set_work.status_code == 201, set_work.text
    classmate = await create_user(session, res, onboarded=True)
    c = await bearer(session, res, classmate)
    joined = await client.post(
        "/api/v1/classes/join", json={"code": taught.json()["join_code"]}, headers=c
    )
    assert joined.status_code == 200, joined.text
    about = await client.post(
        "/api/v1/conversations", json={"exercise_id": str(exercise.id)}, headers=c
    )
    assert about.status_code == 201, about.text
    bystander = await create_user(session, res)
    return World(
        client, session, res, users, exercise.id,
        uuid.UUID(started.json()["id"]), uuid.UUID(conversation.json()["id"]),
        uuid.UUID(taught.json()["id"]), classmate.id, uuid.UUID(about.json()["id"]), bystander.id,
    )  # fmt: skip


async def _call(world: World, route: str, persona: str) -> httpx.Response:
    method, template = route.split(" ", 1)
    rule = ACCESS[route]
    conversation = world.a_conversation
    if method == "DELETE" and "{conversation_id}" in template:
        # Deleting must not take A's conversation away from the routes checked after it.
        conversation = await world.new_conversation_of_a()
    taught = world.a_class
    if method == "DELETE" and template.endswith("{class_id}"):
        taught = await world.new_class_of_a()  # the class itself goes: use a fresh one
    class_assignment = uuid.uuid4()
    if "{class_assignment_id}" in template:
        class_assignment = await world.new_class_assignment(taught)
    user_id = world.users["learner_a"].id
    if "/learners/{user_id}" in template:
        user_id, conversation = world.classmate, world.classmate_conversation
    if template.startswith("/api/v1/admin/users/"):
        user_id = world.bystander
    path = template.format(
        exercise_id=world.exercise_id,
        assignment_id=world.a_assignment,
        conversation_id=conversation,
        user_id=user_id,
        class_id=taught,
        class_assignment_id=class_assignment,
    )
    headers = await world.headers(persona)
    if rule.upload:
        files = {"file": ("roster.csv", b"email\nmatrix-csv@example.com\n", "text/csv")}
        return await world.client.request(method, path, files=files, headers=headers)
    return await world.client.request(
        method, path, json=rule.body, params=rule.query, headers=headers
    )


Check = Callable[[httpx.Response], Awaitable[None] | None]


def _expectation(rule: Rule, persona: str) -> tuple[int | None, str | None]:
    """(status, error code) the persona must get, or (None, None) for "let in"."""
    if rule.access is P:
        return None, None
    if persona == "anonymous":
        return 401, "NotAuthenticated"
    if persona == "disabled":
        return 401, "InvalidToken"
    if persona == "unverified" and rule.access in (V, ADM):
        return 403, "EmailNotVerified"
    if rule.access is ADM and persona != "admin":
        return 403, "Forbidden"
    if rule.owned_by_a and persona != "learner_a":
        return 404, "NotFound"
    return None, None


# What the access checks answer; an endpoint's own 401 (a wrong password on /auth/login, an
# unknown refresh token) is its answer to the input, not a refusal to let the caller in.
REFUSALS = {"NotAuthenticated", "EmailNotVerified", "Forbidden", "CSRFFailed"}


def _refused(response: httpx.Response, rule: Rule) -> bool:
    if response.status_code >= 500 and response.status_code != 501:  # 501: no AI configured
        return True
    is_json = response.headers.get("content-type", "").startswith("application/json")
    code = response.json().get("error") if is_json and response.content else None
    return code in REFUSALS or (rule.owned_by_a and response.status_code == 404)


async def test_each_persona_gets_exactly_the_access_its_role_allows(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, app: FastAPI
) -> None:
    world = await _world(client, session, resources)
    personas = ["anonymous", "disabled", "unverified", "learner_a", "learner_b", "admin"]
    problems: list[str] = []
    for route in api_routes(app):
        rule = ACCESS[route]
        for persona in personas:
            response = await _call(world, route, persona)
            status, code = _expectation(rule, persona)
            if status is not None:
                body = response.json()
                if response.status_code != status or body.get("error") != code:
                    problems.append(
                        f"{route} as {persona}: expected {status} {code}, "
                        f"got {response.status_code} {response.text[:200]}"
                    )
            elif _refused(response, rule):
                problems.append(
                    f"{route} as {persona}: should be let in, got "
                    f"{response.status_code} {response.text[:200]}"
                )
    assert not problems, "\n".join(problems)


async def test_learner_b_sees_nothing_of_learner_as_work(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    world = await _world(client, session, resources)
    a = await world.headers("learner_a")
    b = await world.headers("learner_b")
    submitted = await client.post(
        f"/api/v1/exercises/{world.exercise_id}/submissions", headers=a, json={"code": ADD_SOLUTION}
    )
    assert submitted.status_code == 201, submitted.text
    asked = await client.post(
        f"/api/v1/conversations/{world.a_conversation}/messages",
        headers=a,
        json={"content": "my secret question"},
    )
    assert asked.status_code == 201, asked.text

    # B's own lists do not contain A's things.
    subs = await client.get(f"/api/v1/exercises/{world.exercise_id}/submissions", headers=b)
    assert subs.status_code == 200
    assert subs.json()["items"] == []
    assignments = await client.get("/api/v1/assignments", headers=b)
    assert world.a_assignment not in {uuid.UUID(i["id"]) for i in assignments.json()["items"]}
    conversations = await client.get("/api/v1/conversations", headers=b)
    assert world.a_conversation not in {uuid.UUID(i["id"]) for i in conversations.json()["items"]}
    assert "my secret question" not in conversations.text

    # A's ids answer 404 to B, the same as ids that exist nowhere, and change nothing.
    unknown = uuid.uuid4()
    for template in ("/api/v1/assignments/{}", "/api/v1/conversations/{}"):
        for target in (world.a_assignment if "assign" in template else world.a_conversation,
                       unknown):  # fmt: skip
            r = await client.get(template.format(target), headers=b)
            assert r.status_code == 404
            assert r.json() == {"error": "NotFound", "detail": r.json()["detail"]}
    for target in (world.a_conversation, unknown):
        posted = await client.post(
            f"/api/v1/conversations/{target}/messages", headers=b, json={"content": "hi"}
        )
        deleted = await client.delete(f"/api/v1/conversations/{target}", headers=b)
        assert (posted.status_code, deleted.status_code) == (404, 404)
    still = await client.get(f"/api/v1/conversations/{world.a_conversation}", headers=a)
    assert still.status_code == 200
    assert [m["content"] for m in still.json()["messages"]][0] == "my secret question"
    assert len(still.json()["messages"]) == 2

    # Nor may B set budgets (an administrator's job), A's or anyone's.
    budget = await client.put(
        f"/api/v1/admin/usage/users/{world.users['learner_a'].id}/budget",
        headers=b,
        json={"daily_budget_usd": "100"},
    )
    assert budget.status_code == 403
    assert budget.json()["error"] == "Forbidden"


async def test_a_deleted_account_s_token_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    gone = await client.request(
        "DELETE", "/api/v1/users/me", headers=headers, json={"password": PASSWORD}
    )
    assert gone.status_code == 200, gone.text
    r = await client.get("/api/v1/users/me", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "InvalidToken"
