"""Simulated learners against two Koan workers on PostgreSQL + Redis, at rising concurrency.

    .venv/bin/python bench/load.py [--levels 10,25,50,100] [--duration 60]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--seed 7] [--write]

`koan serve --workers 2` on a throwaway PostgreSQL database (`koan_bench_load`, created and
dropped) loaded with the built-in exercise bank, Redis under a key prefix of its own, the tutor
pointed at the loopback fake OpenAI-compatible server (tests/fixtures/llm_server.py). Each
virtual learner logs in once, then loops: fetch today's exercise, submit wrong code (the
starter), submit the reference solution, ask the tutor a question, read their progress. Every
level runs `--duration` seconds with that many learners at once; no think time, so each
learner is a closed loop and the offered load grows with the level.

Reported per level and route: requests, throughput, p50/p95/p99 and errors (non-2xx), and the
level where latency degrades (p95 over twice the first level's, or more than 1% errors).
Only loopback traffic; bounded; stops by itself. Password hashing uses the test suite's cheap
Argon2 parameters (logins are a one-off per learner here; see bench/http.py for the rest).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis.asyncio as redis_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, percentile, write_section  # noqa: E402
from tests.fixtures.llm_server import FakeLLMServer, Reply  # noqa: E402
from tests.scale.servers import (  # noqa: E402
    PASSWORD,
    KoanServer,
    add_user,
    create_database,
    drop_database,
    server_env,
)

from koan.db import create_engine, transactional  # noqa: E402
from koan.exercises.bank import import_specs  # noqa: E402
from koan.exercises.pack import builtin_pack_path, check_unique, read_pack  # noqa: E402
from koan.models import Exercise  # noqa: E402

DATABASE = "koan_bench_load"
PREFIX = "koan-bench-load:"
QUESTIONS = [
    "Why does my loop stop one item early?",
    "What is the difference between return and print?",
    "How do I test this function by hand?",
    "Can you explain what the second test checks?",
]
ROUTES = [
    "POST /auth/login",
    "GET /exercises/daily",
    "POST /exercises/{id}/submissions (wrong)",
    "POST /exercises/{id}/submissions (right)",
    "POST /conversations/{id}/messages",
    "GET /progress",
]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    def record(self, route: str, started: float, response: httpx.Response | None) -> None:
        self.latencies[route].append(time.perf_counter() - started)
        if response is None:
            self.errors[route]["transport"] += 1
        elif response.status_code >= 400:
            code = str(response.status_code)
            if response.headers.get("content-type", "").startswith("application/json"):
                code += " " + str(response.json().get("error"))
            self.errors[route][code] += 1


@dataclass
class Level:
    users: int
    seconds: float
    stats: Stats

    def total(self) -> int:
        return sum(len(v) for v in self.stats.latencies.values())

    def error_count(self) -> int:
        return sum(sum(v.values()) for v in self.stats.errors.values())

    def p95_ms(self) -> float:
        return percentile([x * 1000 for v in self.stats.latencies.values() for x in v], 95)


async def call(
    stats: Stats, route: str, client: httpx.AsyncClient, method: str, url: str, **kw: object
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kw)  # type: ignore[arg-type]
    except httpx.HTTPError:
        stats.record(route, started, None)
        return None
    stats.record(route, started, response)
    return response


async def learner(
    client: httpx.AsyncClient,
    email: str,
    solutions: dict[str, tuple[str, str]],
    stats: Stats,
    deadline: float,
    rng: random.Random,
) -> None:
    login = await call(
        stats, ROUTES[0], client, "POST", "/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
    )  # fmt: skip
    if login is None or login.status_code != 200:
        return
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    conversation = await client.post("/api/v1/conversations", json={}, headers=auth)
    conversation_id = conversation.json().get("id") if conversation.status_code == 201 else None
    while time.perf_counter() < deadline:
        daily = await call(stats, ROUTES[1], client, "GET", "/api/v1/exercises/daily", headers=auth)
        if daily is not None and daily.status_code == 200:
            exercise_id = daily.json()["exercise"]["id"]
            solution, starter = solutions[exercise_id]
            url = f"/api/v1/exercises/{exercise_id}/submissions"
            await call(stats, ROUTES[2], client, "POST", url, headers=auth, json={"code": starter})
            await call(stats, ROUTES[3], client, "POST", url, headers=auth, json={"code": solution})
        if conversation_id:
            await call(
                stats, ROUTES[4], client, "POST",
                f"/api/v1/conversations/{conversation_id}/messages",
                headers=auth, json={"content": rng.choice(QUESTIONS)},
            )  # fmt: skip
        await call(stats, ROUTES[5], client, "GET", "/api/v1/progress", headers=auth)


async def run_level(
    base_url: str,
    emails: list[str],
    solutions: dict[str, tuple[str, str]],
    seconds: float,
    seed: int,
) -> Level:
    stats = Stats()
    limits = httpx.Limits(max_connections=len(emails) + 8, max_keepalive_connections=len(emails))
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(
                learner(client, email, solutions, stats, deadline, random.Random(seed + i))
                for i, email in enumerate(emails)
            )
        )
        elapsed = time.perf_counter() - started
    return Level(len(emails), elapsed, stats)


async def setup(args: argparse.Namespace, users: int) -> tuple[str, list[str], dict]:
    url = await create_database(args.database_url, DATABASE)
    engine = create_engine(url)
    try:
        specs = [e.spec for e in check_unique(read_pack(builtin_pack_path())) if e.spec]
        async with AsyncSession(engine) as session, transactional(session):
            await import_specs(session, specs, source="builtin")
        async with AsyncSession(engine) as session:
            rows = (await session.execute(select(Exercise))).scalars().all()
            solutions = {str(e.id): (e.solution, e.starter_code) for e in rows}
        emails = [
            (await add_user(engine, email=f"bench-{i:04d}@example.com")).email for i in range(users)
        ]
    finally:
        await engine.dispose()
    return url, emails, solutions


async def forget_redis_keys(redis_url: str) -> None:
    client = redis_asyncio.Redis.from_url(redis_url)
    try:
        async for key in client.scan_iter(match=f"{PREFIX}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


async def bench(args: argparse.Namespace) -> list[Level]:
    levels = [int(x) for x in args.levels.split(",")]
    work = Path(tempfile.mkdtemp(prefix="koan-bench-load-"))
    fake = FakeLLMServer(
        default=Reply(text="Good question. What do you expect the loop to do on its last turn?")
    ).start()
    server = None
    results: list[Level] = []
    try:
        url, emails, solutions = await setup(args, max(levels))
        env = server_env(
            work,
            KOAN_DATABASE_URL=url,
            KOAN_REDIS_URL=args.redis_url,
            KOAN_CACHE_PREFIX=PREFIX,
            KOAN_LOG_LEVEL="INFO",
            KOAN_LOG_FORMAT="json",  # as in production
            KOAN_SANDBOX_SLOTS="1",  # cores ÷ workers, as docs/operations.md advises
            KOAN_LLM_PROVIDER="openai",
            KOAN_LLM_BASE_URL=fake.openai_base_url,
            KOAN_LLM_API_KEY="bench",
            KOAN_LLM_MODEL="bench-model",
            KOAN_LLM_CACHE_TTL_S="0",  # every question reaches the provider
            KOAN_LLM_CHAT_LIMIT="100000/minute",  # learners here ask far faster than people
        )
        server = KoanServer(env, work, name="koan-load", workers=2).start()
        await server.wait_live()
        for users in levels:
            level = await run_level(server.url, emails[:users], solutions, args.duration, args.seed)
            results.append(level)
            print(  # noqa: T201
                f"{users:>4} learners: {level.total() / level.seconds:7.1f} req/s, "
                f"p95 {level.p95_ms():7.1f} ms, errors {level.error_count()}",
                flush=True,
            )
    finally:
        if server is not None:
            server.stop()
        fake.stop()
        await drop_database(args.database_url, DATABASE)
        await forget_redis_keys(args.redis_url)
        shutil.rmtree(work, ignore_errors=True)
    return results


def report(levels: list[Level], args: argparse.Namespace) -> str:
    out = [
        f"`koan serve --workers 2`, PostgreSQL + Redis, sandbox 1 slot per worker, tutor on a "
        f"loopback fake provider; {args.duration:.0f} s per level, closed-loop learners with no "
        "think time (login once; then daily, wrong submission, right submission, tutor "
        "question, progress).\n",
        "| learners | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        every = [x * 1000 for v in lv.stats.latencies.values() for x in v]
        out.append(
            f"| {lv.users} | {lv.total() / lv.seconds:.1f} | {percentile(every, 50):.0f} | "
            f"{percentile(every, 95):.0f} | {percentile(every, 99):.0f} | "
            f"{lv.error_count()} ({100 * lv.error_count() / max(1, lv.total()):.1f}%) |"
        )
    base = levels[0].p95_ms()
    degraded = next(
        (lv for lv in levels
         if lv.p95_ms() > 2 * base or lv.error_count() > 0.01 * max(1, lv.total())),
        None,
    )  # fmt: skip
    out.append("")
    out.append(
        f"Latency degrades from **{degraded.users} learners** (p95 {degraded.p95_ms():.0f} ms "
        f"against {base:.0f} ms at {levels[0].users})."
        if degraded
        else "Latency did not degrade over these levels."
    )
    for lv in levels:
        out += [
            "",
            f"**{lv.users} learners**, per route:",
            "",
            "| route | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for route in ROUTES:
            values = [x * 1000 for x in lv.stats.latencies.get(route, [])]
            if not values:
                continue
            errors = lv.stats.errors.get(route, {})
            shown = ", ".join(f"{n}× {code}" for code, n in sorted(errors.items())) or "0"
            out.append(
                f"| {route} | {len(values)} | {len(values) / lv.seconds:.1f} | "
                f"{percentile(values, 50):.0f} | {percentile(values, 95):.0f} | "
                f"{percentile(values, 99):.0f} | {shown} |"
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="10,25,50,100")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per level")
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    levels = asyncio.run(bench(args))
    body = report(levels, args)
    print(f"\n## Load: simulated learners\n\n{body}\n\n_{machine()}_")  # noqa: T201
    if args.write:
        write_section("Load: simulated learners", body)


if __name__ == "__main__":
    main()
