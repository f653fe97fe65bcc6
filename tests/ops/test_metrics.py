"""GET /metrics: access modes, what the instruments count, and what they must never label."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from koan.config import Settings
from koan.ops import metrics
from koan.ops.metrics import Metrics
from koan.ops.metrics_router import install_observability, metrics_access
from koan.resources import Resources
from tests.fixtures.factories import PASSWORD, create_exercise, create_user

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def observed(app: FastAPI) -> FastAPI:
    """The test app with metrics and the request log (create_app adds them when wired in)."""
    if not hasattr(app.state, "metrics"):
        install_observability(app)
    return app


def set_access(resources: Resources, value: str) -> None:
    # A copy, so the setting applies whether or not Settings declares it yet.
    resources.settings = resources.settings.model_copy(update={"metrics": value})


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    return parse(r.text)


async def test_open_serves_prometheus_text(
    observed: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    set_access(resources, "open")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = parse(r.text)
    assert value(samples, "koan_build_info", version=observed.version) == 1
    # Rejection and cache series exist before anything happens, so alerts read 0, not "no data".
    assert ("koan_rejections_total", frozenset({("kind", "budget")})) in samples
    assert ("koan_cache_lookups_total", frozenset({("result", "miss")})) in samples
    assert ("koan_grader_queue_depth", frozenset()) in samples
    assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]


async def test_off_looks_like_no_endpoint(
    observed: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    set_access(resources, "off")
    r = await client.get("/metrics")
    assert r.status_code == 404
    assert r.json() == (await client.get("/no-such-page")).json()
    assert set(r.json()) == {"error", "detail"}


async def test_token_mode_needs_the_bearer_token(
    observed: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    token = "scrape-token-0123456789abcdef"
    set_access(resources, token)
    missing = await client.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["error"] == "NotAuthenticated"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "InvalidToken"
    assert set(wrong.json()) == {"error", "detail"}
    ok = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert "koan_http_requests_total" in ok.text


def test_unset_means_open_in_development_and_off_in_production() -> None:
    secret = "x" * 40
    assert metrics_access(Settings(env="development", _env_file=None)) == "open"
    assert metrics_access(Settings(env="production", secret_key=secret, _env_file=None)) == "off"
    chosen = Settings(env="production", secret_key=secret, _env_file=None).model_copy(
        update={"metrics": "OPEN"}
    )
    assert metrics_access(chosen) == "open"


async def test_each_request_s_wait_for_its_turn_is_recorded_the_probes_take_none(
    observed: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    set_access(resources, "open")
    for _ in range(3):
        assert (await client.get("/wp-login.php")).status_code == 404
    assert (await client.get("/health/live")).status_code == 200
    samples = await scrape(client)  # /metrics, like the probes, takes no turn
    assert value(samples, "koan_request_turn_wait_seconds_count") == 3


async def test_requests_are_counted_under_their_route_template(
    observed: FastAPI,
    client: httpx.AsyncClient,
    resources: Resources,
    session: AsyncSession,
) -> None:
    set_access(resources, "open")
    user = await create_user(session, resources)
    exercise = await create_exercise(session)
    login = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await client.get(f"/api/v1/exercises/{exercise.id}", headers=headers)).is_success
    assert (await client.get(f"/api/v1/exercises/{missing}", headers=headers)).status_code == 404
    assert (await client.head(f"/api/v1/exercises/{exercise.id}", headers=headers)).is_success
    assert (await client.get("/wp-login.php?token=abc")).status_code == 404
    assert (await client.get("/api/v1/auth/login")).status_code == 405

    r = await client.get("/metrics")
    samples = parse(r.text)
    template = "/api/v1/exercises/{exercise_id}"
    total = "koan_http_requests_total"
    assert value(samples, total, method="GET", route=template, status="200") == 1
    assert value(samples, total, method="GET", route=template, status="404") == 1
    assert value(samples, total, method="HEAD", route=template, status="200") == 1
    assert value(samples, total, method="POST", route="/api/v1/auth/login", status="200") == 1
    assert value(samples, total, method="GET", route="/api/v1/auth/login", status="405") == 1
    assert value(samples, total, method="GET", route="unmatched", status="404") == 1
    latency = "koan_http_request_duration_seconds_count"
    assert value(samples, latency, method="GET", route=template) == 2
    # Raw paths would make one series per exercise (and per scanner guess).
    assert str(exercise.id) not in r.text
    assert missing not in r.text
    assert "wp-login" not in r.text


async def test_no_user_identity_or_secret_in_any_label(
    observed: FastAPI, client: httpx.AsyncClient, resources: Resources, session: AsyncSession
) -> None:
    set_access(resources, "open")
    user = await create_user(session, resources)
    login = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    tokens = login.json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=headers)).is_success
    assert (await client.get(f"/api/v1/users/me?email={user.email}", headers=headers)).is_success
    text = (await client.get("/metrics")).text
    for private in (user.email, str(user.id), user.id.hex, PASSWORD, tokens["access_token"]):
        assert private not in text
    labels = {name for (_, pairs) in parse(text) for name, _ in pairs}
    assert not labels & {"user", "user_id", "email", "path"}


async def test_grader_queue_depth_reads_the_running_sandbox(
    observed: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    set_access(resources, "open")
    samples = await scrape(client)
    assert value(samples, "koan_grader_queue_depth") == resources.sandbox.queue_depth()


def test_helpers_record_into_the_bound_app_and_do_nothing_outside_one() -> None:
    metrics.grading_finished("passed", "full", 1.0)  # no app: a no-op, never an error
    first, second = Metrics(), Metrics()
    with metrics.bound(first):
        metrics.grading_finished("passed", "full", 1.5)
        metrics.grading_finished("timeout", "full", 5.0)
        metrics.llm_call("openai", "gpt-4o-mini", 1200, 300, 0.00036, 2.5)
        metrics.llm_call("openai", "gpt-4o-mini", 0, 0, 0, 30.0, ok=False)
        metrics.cache_lookup(hit=True)
        metrics.cache_lookup(hit=True)
        metrics.cache_lookup(hit=False)
        metrics.rejected("budget")
        metrics.rejected("rate_limit")
        metrics.leak_caught()
    samples = parse(first.render()[0].decode())
    assert value(samples, "koan_gradings_total", status="passed", tier="full") == 1
    assert value(samples, "koan_gradings_total", status="timeout", tier="full") == 1
    assert value(samples, "koan_grading_duration_seconds_count", tier="full") == 2
    assert value(samples, "koan_grading_duration_seconds_sum", tier="full") == 6.5
    llm = {"provider": "openai", "model": "gpt-4o-mini"}
    assert value(samples, "koan_llm_calls_total", outcome="ok", **llm) == 1
    assert value(samples, "koan_llm_calls_total", outcome="error", **llm) == 1
    assert value(samples, "koan_llm_tokens_total", direction="input", **llm) == 1200
    assert value(samples, "koan_llm_tokens_total", direction="output", **llm) == 300
    assert value(samples, "koan_llm_cost_usd_total", **llm) == pytest.approx(0.00036)
    assert value(samples, "koan_llm_call_duration_seconds_count", **llm) == 2
    assert value(samples, "koan_cache_lookups_total", result="hit") == 2
    assert value(samples, "koan_cache_lookups_total", result="miss") == 1
    assert value(samples, "koan_rejections_total", kind="budget") == 1
    assert value(samples, "koan_rejections_total", kind="rate_limit") == 1
    assert value(samples, "koan_rejections_total", kind="grader_busy") == 0
    assert value(samples, "koan_leak_guard_catches_total") == 1
    # Apps do not share counts: each has its own registry.
    assert value(parse(second.render()[0].decode()), "koan_leak_guard_catches_total") == 0


def test_queue_depth_callback_errors_read_as_zero() -> None:
    m = Metrics()

    def broken() -> int:
        raise RuntimeError("sandbox closed")

    m.watch_grader_queue(broken)
    assert value(parse(m.render()[0].decode()), "koan_grader_queue_depth") == 0
    m.watch_grader_queue(lambda: 3)
    assert value(parse(m.render()[0].decode()), "koan_grader_queue_depth") == 3


_WORKER = textwrap.dedent(
    """
    import sys
    from koan.ops.metrics import Metrics, multiprocess_enabled
    assert multiprocess_enabled()
    m = Metrics(version="t")
    if sys.argv[1] == "record":
        m.request_finished("GET", "/health/live", 200, 0.01)
        m.cache_lookup(hit=True)
    else:
        sys.stdout.write(m.render()[0].decode())
    """
)


def test_workers_share_counts_in_multiprocess_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `koan serve --workers N`, any worker's /metrics adds up all of them."""
    # monkeypatch restores this process's environment after the test.
    monkeypatch.delenv(metrics.MULTIPROCESS_ENV, raising=False)
    (tmp_path / "prom").mkdir()
    (tmp_path / "prom" / "counter_1.db").write_bytes(b"left by an earlier run")
    (tmp_path / "prom" / "README").write_text("the operator's own file")
    metrics.prepare_multiprocess_dir(tmp_path / "prom")
    assert [p.name for p in (tmp_path / "prom").iterdir()] == ["README"]
    env = {**os.environ}

    def run(role: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _WORKER, role],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout

    run("record")
    run("record")
    samples = parse(run("render"))
    total = "koan_http_requests_total"
    assert value(samples, total, method="GET", route="/health/live", status="200") == 2
    assert value(samples, "koan_cache_lookups_total", result="hit") == 2
