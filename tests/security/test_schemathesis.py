"""Property-based API fuzzing with Schemathesis: every operation of /openapi.json, anonymous and
as a verified, onboarded learner, positive and negative inputs. No answer may be a 5xx, and
every answer must match what the OpenAPI document says (status code and body schema).

The app runs in-process (ASGI) with its real lifespan: its own engine on a migrated SQLite file
committed for real (thousands of requests; nothing to roll back), its own grading sandbox, the
offline tutor. Examples are derandomized and bounded, so the run is the same every time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.ext.asyncio import AsyncSession

from koan.app import create_app
from koan.config import Settings
from koan.db import create_engine, transactional
from koan.exercises.bank import import_specs
from koan.exercises.repository import exercises_by_slug
from koan.migrate import upgrade
from tests.fixtures.factories import exercise_spec
from tests.scale.servers import PASSWORD, SECRET_KEY, add_user
from tests.security.test_authorization_matrix import ACCESS, Access

MAX_EXAMPLES = 5
# Anonymous cases of an operation only a signed-in user may call: the app parses the body (a
# malformed one is a 422 for anyone, fuzzed in depth as the learner) and then refuses with 401
# whatever else the input holds, so a few cases check that answer against the schema.
SIGNED_IN_ONLY_EXAMPLES = 1


def no_undocumented_server_error(ctx: Any, response: Any, case: Any) -> None:
    """not_a_server_error, except for a 5xx the operation documents itself (e.g. 501 from
    /exercises/generate when no AI model is configured, which is the answer, not a crash)."""
    status = response.status_code
    if status >= 500 and str(status) not in case.operation.responses.status_codes:
        not_a_server_error(ctx, response, case)


CHECKS = [no_undocumented_server_error, response_schema_conformance, status_code_conformance]
# Run last: they end the learner's sessions or would delete the account.
SESSION_ENDERS = ("/api/v1/auth/logout", "/api/v1/users/me")
OPEN = "100000/minute"


def _in_thread(fn: Any, *args: Any) -> Any:
    # Alembic and the seeding run their own event loop; keep them off pytest-asyncio's.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


async def _seed(url: str) -> tuple[str, list[uuid.UUID]]:
    engine = create_engine(url)
    try:
        user = await add_user(engine)
        specs = [exercise_spec(), exercise_spec(difficulty=2)]
        async with AsyncSession(engine) as session, transactional(session):
            await import_specs(session, specs, source="imported")
        async with AsyncSession(engine) as session:
            found = await exercises_by_slug(session, [s.slug for s in specs])
        return user.email, [found[s.slug].id for s in specs]
    finally:
        await engine.dispose()


# One xdist worker builds the target app once for the module (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("schemathesis")


@dataclass
class Target:
    app: FastAPI
    schema: Any
    email: str
    exercise_ids: list[uuid.UUID]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root: Path = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite+aiosqlite:///{root / 'koan.db'}"
    _in_thread(upgrade, url)
    email, exercise_ids = _in_thread(asyncio.run, _seed(url))
    settings_ = Settings(
        env="test",
        secret_key=SECRET_KEY,
        database_url=url,
        data_dir=root,
        password_time_cost=1,
        password_memory_kib=8,
        password_parallelism=1,
        login_slowdown_step_s=0,
        sandbox_slots=1,
        # Limits are tested elsewhere; here they would only turn deep inputs into 429s.
        login_limit_per_account=OPEN,
        login_limit_per_account_client=OPEN,
        login_limit_per_address=OPEN,
        register_limit_per_address=OPEN,
        resend_verification_limit=OPEN,
        password_reset_limit=OPEN,
        llm_chat_limit=OPEN,
        _env_file=None,
    )
    app = create_app(settings_)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    yield Target(app, schema, email, exercise_ids)
    asgi.shutdown_lifespans()


class Learner:
    """A verified, onboarded learner's bearer token, renewed whenever a case ended it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.client = asgi.get_client(target.app)
        self.token = ""
        self.conversation_id = ""
        self.login()
        # The fuzzing before may have left the profile on a language with no exercises.
        r = self.client.patch(
            "/api/v1/users/me/profile", json={"language": "python"}, headers=self.headers()
        )
        assert r.status_code == 200, r.text
        r = self.client.post("/api/v1/conversations", json={}, headers=self.headers())
        assert r.status_code == 201, r.text
        self.conversation_id = r.json()["id"]
        r = self.client.get("/api/v1/exercises/daily", headers=self.headers())
        assert r.status_code == 200, r.text
        self.assignment_id = r.json()["assignment_id"]

    def login(self) -> None:
        r = self.client.post(
            "/api/v1/auth/login", json={"email": self.target.email, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        self.token = r.json()["access_token"]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def still_valid(self) -> None:
        if self.client.get("/api/v1/users/me", headers=self.headers()).status_code == 401:
            self.login()


def _operations(target: Target) -> list[Any]:
    operations = [result.ok() for result in target.schema.get_all_operations()]
    assert len(operations) > 30
    # Whatever ends the session goes last, so it does not starve the rest of a signed-in user.
    return sorted(operations, key=lambda op: op.path in SESSION_ENDERS)


def _fuzz(
    operation: Any, mode: GenerationMode, headers: Any, path_parameters: Any, examples: int
) -> None:
    known = {k: v for k, v in path_parameters.items() if k in operation.path}

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=known or None))
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers(), checks=CHECKS)

    run()


def _fuzz_all(
    target: Target,
    headers: Any,
    path_parameters: Any,
    after: Any = None,
    examples: Any = lambda operation: MAX_EXAMPLES,
) -> None:
    failures: list[str] = []
    for operation in _operations(target):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, headers, path_parameters(), examples(operation))
            except Unsatisfiable:
                pass  # negative mode of an operation with no input to get wrong
            except Exception as exc:  # collect them all: one run reports every operation
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])
            if after:
                after()
    assert not failures, "\n\n".join(failures)


def _anonymous_examples(operation: Any) -> int:
    rule = ACCESS[operation.label]  # the authorization matrix gives every route a rule
    return MAX_EXAMPLES if rule.access is Access.PUBLIC else SIGNED_IN_ONLY_EXAMPLES


def test_anonymous_requests_never_fail_the_server_or_the_schema(target: Target) -> None:
    _fuzz_all(target, headers=dict, path_parameters=dict, examples=_anonymous_examples)


def test_a_learners_requests_never_fail_the_server_or_the_schema(target: Target) -> None:
    learner = Learner(target)
    _fuzz_all(
        target,
        headers=learner.headers,
        # Real ids for half the runs' path parameters: deeper than random ones (always 404).
        path_parameters=lambda: {
            "exercise_id": str(target.exercise_ids[0]),
            "conversation_id": learner.conversation_id,
            "assignment_id": learner.assignment_id,
        },
        after=learner.still_valid,
    )


def _forged(*values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode()


# Cursors a client can forge from the ones it is given: each page's own sort key with values
# out of range, without a time zone, of the wrong kind, or of the wrong shape.
FORGED_CURSORS = [
    _forged(10**30, "x"),
    _forged(2**40),
    _forged("2026-12-05T10:00:00"),
    _forged("2026-12-05T10:00:00", str(uuid.uuid4())),
    _forged("9999-12-31", str(uuid.uuid4())),
    _forged("0001-01-01T00:00:00+00:00", "not-a-uuid"),
    _forged(None),
    _forged([], {}),
    "not base64 at all",
]
EXTREME_DATES = ["0001-01-01", "9999-12-31", "2026-02-30", "1970-01-01"]


def test_forged_cursors_and_extreme_dates_never_fail_the_server(target: Target) -> None:
    learner = Learner(target)
    admin_or_learner = learner.headers()
    spec = target.app.openapi()
    path_values = {
        "exercise_id": str(target.exercise_ids[0]),
        "conversation_id": learner.conversation_id,
        "assignment_id": learner.assignment_id,
    }
    checked: list[str] = []
    failures: list[str] = []
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if get is None or not path.startswith("/api/"):
            continue
        params = get.get("parameters", [])
        if any(p["in"] == "path" and p["name"] not in path_values for p in params):
            continue
        url = path.format(**path_values)
        queries: list[dict[str, str]] = []
        for p in params:
            schema = json.dumps(p.get("schema", {}))
            if p["in"] == "query" and p["name"] == "cursor":
                queries += [{"cursor": c} for c in FORGED_CURSORS]
            elif p["in"] == "query" and '"format": "date"' in schema:
                queries += [{p["name"]: d} for d in EXTREME_DATES]
        for query in queries:
            r = learner.client.get(url, params=query, headers=admin_or_learner)
            checked.append(f"{url} {query}")
            if r.status_code >= 500:
                failures.append(f"{url} {query}: {r.status_code} {r.text[:200]}")
    assert len(checked) > 40, checked  # every paged list and dated report was reached
    assert not failures, "\n".join(failures)
