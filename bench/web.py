"""Web UI benchmark: server-side render time of the main pages and asset weight per page.

Runs Koan in-process (ASGI, no network) on a fresh SQLite database with the built-in exercise
bank, signs in a learner who has completed one exercise, then requests every main page many
times. Asset weight is what a first visit downloads: the HTML plus every script and stylesheet
it references (uncompressed bytes, since Koan serves them uncompressed).

    .venv/bin/python bench/web.py [--runs 40] [--no-write]

Targets: median render under 50 ms, under 200 KB of assets per page. Figures are written to
docs/benchmarks.md ("Web pages").
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi.routing import iter_route_contexts
from sqlalchemy import select

from koan.app import create_app
from koan.config import Settings
from koan.db import transactional
from koan.exercises.bank import import_specs
from koan.exercises.pack import builtin_pack_path, check_unique, read_pack
from koan.migrate import upgrade
from koan.models import Exercise, LearnerProfile, User
from koan.resources import Resources
from koan.web import mount_web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_section  # noqa: E402

PASSWORD = "benchmark passphrase 12345"
RENDER_TARGET_MS = 50.0
WEIGHT_TARGET_KB = 200.0
ASSET = re.compile(r'<(?:script[^>]+src|link[^>]+href)="(/static/[^"]+)"')


@dataclass
class Row:
    page: str
    median_ms: float
    p95_ms: float
    html_kb: float
    assets_kb: float

    @property
    def total_kb(self) -> float:
        return self.html_kb + self.assets_kb


async def _seed(res: Resources) -> tuple[str, str]:
    specs = [e.spec for e in check_unique(read_pack(builtin_pack_path())) if e.spec]
    async with res.session_factory() as session, transactional(session):
        await import_specs(session, specs, source="builtin")
    emails = (
        f"bench-{uuid.uuid4().hex[:8]}@example.com",
        f"new-{uuid.uuid4().hex[:8]}@example.com",
    )
    async with res.session_factory() as session, transactional(session):
        for email, onboarded in zip(emails, (True, False), strict=True):
            user = User(
                email=email,
                name="Bench Learner",
                password_hash=await res.hasher.hash(PASSWORD),
                role="admin" if onboarded else "learner",
                email_verified_at=res.clock.now(),
                timezone="Europe/Paris",
                preferences={},
            )
            session.add(user)
            await session.flush()
            session.add(
                LearnerProfile(
                    user_id=user.id,
                    answers={},
                    onboarding_completed=onboarded,
                    language="python" if onboarded else None,
                    experience="beginner" if onboarded else None,
                    goals="benchmarks",
                    interests=["automation"],
                    learning_style="mixed",
                    minutes_per_day=20,
                )
            )
    return emails


async def _login(client: httpx.AsyncClient, email: str) -> None:
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF token on /login"
    response = await client.post(
        "/login", data={"csrf_token": token.group(1), "email": email, "password": PASSWORD}
    )
    assert response.status_code == 303, response.text


async def _complete_daily(client: httpx.AsyncClient, res: Resources) -> str:
    """Open today's exercise and pass it, so progress and achievements have something."""
    dashboard = await client.get("/dashboard")
    found = re.search(r'href="/exercises/([0-9a-f-]{36})"', dashboard.text)
    assert found, "no daily exercise on the dashboard"
    exercise_id = found.group(1)
    async with res.session_factory() as session:
        exercise = await session.scalar(
            select(Exercise).where(Exercise.id == uuid.UUID(exercise_id))
        )
        assert exercise is not None
        solution = exercise.solution
    headers = {"HX-Request": "true", "X-CSRF-Token": client.cookies.get("koan_csrf") or ""}
    result = await client.post(
        f"/exercises/{exercise_id}/run", data={"code": solution}, headers=headers
    )
    assert 'data-status="passed"' in result.text, result.text[:500]
    return exercise_id


async def _measure(client: httpx.AsyncClient, path: str, runs: int, cache: dict[str, int]) -> Row:
    for _ in range(3):
        await client.get(path)
    times = []
    response = None
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    assert response is not None
    assets = 0
    for asset in sorted(set(ASSET.findall(response.text))):
        if asset not in cache:
            fetched = await client.get(asset)
            assert fetched.status_code == 200, asset
            cache[asset] = len(fetched.content)
        assets += cache[asset]
    times.sort()
    return Row(
        page=path,
        median_ms=statistics.median(times),
        p95_ms=times[max(0, int(len(times) * 0.95) - 1)],
        html_kb=len(response.content) / 1024,
        assets_kb=assets / 1024,
    )


async def run(runs: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            env="test",
            secret_key="benchmark-secret-key-that-is-long-enough-012345",
            data_dir=Path(tmp),
            database_url=f"sqlite+aiosqlite:///{tmp}/koan.db",
            smtp_host="",
            password_time_cost=1,
            password_memory_kib=8,
            password_parallelism=1,
            _env_file=None,
        )
        # Alembic's env runs its own event loop: migrate outside this one.
        await asyncio.to_thread(upgrade, settings.effective_database_url)
        res = Resources.from_settings(settings)
        await res.start()
        try:
            app = create_app(resources=res)
            if not any(c.path == "/dashboard" for c in iter_route_contexts(app.routes)):
                mount_web(app)
            emails = await _seed(res)
            transport = httpx.ASGITransport(app=app)
            cache: dict[str, int] = {}
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://bench") as anonymous,
                httpx.AsyncClient(transport=transport, base_url="http://bench") as learner,
                httpx.AsyncClient(transport=transport, base_url="http://bench") as newcomer,
            ):
                await _login(learner, emails[0])
                await _login(newcomer, emails[1])
                exercise_id = await _complete_daily(learner, res)
                rows = [
                    await _measure(anonymous, p, runs, cache) for p in ("/", "/login", "/register")
                ]
                rows.append(await _measure(newcomer, "/onboarding", runs, cache))
                for path in (
                    "/dashboard",
                    "/exercises",
                    f"/exercises/{exercise_id}",
                    "/chat",
                    "/progress",
                    "/settings",
                    "/admin",
                ):
                    rows.append(await _measure(learner, path, runs, cache))
                for row in rows:
                    if row.page.startswith("/exercises/"):
                        row.page = "/exercises/{id}"
                return rows
        finally:
            await res.close()


def table(rows: list[Row], runs: int) -> str:
    lines = [
        "| page | median render (ms) | p95 (ms) | HTML (KB) | scripts + CSS (KB) "
        "| first load (KB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r.page}` | {r.median_ms:.1f} | {r.p95_ms:.1f} | {r.html_kb:.1f} | "
            f"{r.assets_kb:.1f} | {r.total_kb:.1f} |"
        )
    worst_render = max(r.median_ms for r in rows)
    heaviest = max(r.total_kb for r in rows)
    lines.append("")
    lines.append(
        f"{runs} requests per page after 3 warm-ups, in-process (no network), SQLite, one core "
        f"of the 2-core reference machine. Slowest median: {worst_render:.1f} ms (target "
        f"< {RENDER_TARGET_MS:.0f} ms). Heaviest first load: {heaviest:.1f} KB uncompressed "
        f"(target < {WEIGHT_TARGET_KB:.0f} KB)."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows = asyncio.run(run(args.runs))
    text = table(rows, args.runs)
    print(text)  # noqa: T201
    if not args.no_write:
        command = (
            f"Command: `.venv/bin/python bench/web.py --runs {args.runs}` (every main page "
            "rendered in-process on SQLite, after a learner has passed one exercise)."
        )
        write_section("Web pages", f"{command}\n\n{text}")
    ok = all(r.median_ms < RENDER_TARGET_MS and r.total_kb < WEIGHT_TARGET_KB for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
