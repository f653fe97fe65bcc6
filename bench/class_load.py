"""A class of learners with think time against `koan serve --workers 2` on PostgreSQL + Redis.

    .venv/bin/python bench/class_load.py [--levels 300,600,1000] [--duration 60]
        [--think 5 20] [--workers 2] [--slots 1] [--seed 7] [--write]

Everything runs on this machine and is measured: a private PostgreSQL cluster and a private
Redis server (free loopback ports, so their CPU is this benchmark's alone), the loopback fake
OpenAI-compatible provider (tests/fixtures/llm_server.py), `koan serve --workers N` with its
sandbox, and the load generator (a small keep-alive HTTP/1.1 client on asyncio streams: an
httpx client would spend a core of its own at a thousand learners).

Each learner logs in once before the first level, then loops, thinking 5-20 s (uniform) before
every step: today's exercise, a wrong submission (the starter), a hint, the right submission
(the reference solution), a tutor question, their progress. Learners start spread over the
first think time. Every level warms up for one think time, then measures `--duration` s.

Reported per level: per-route p50/p95/p99 and errors; the CPU seconds per learner loop of each
process (Koan's workers, the sandbox, PostgreSQL, Redis, the load generator), a loop being six
requests; and the largest class served well: p95 under 300 ms for pages, under 1 s for
submissions, and no errors. Only loopback traffic; bounded; stops what it started by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as redis_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, percentile, tree_cpu_seconds, write_section  # noqa: E402
from tests.fixtures.llm_server import FakeLLMServer, Reply  # noqa: E402
from tests.scale.servers import (  # noqa: E402
    PASSWORD,
    KoanServer,
    PrivatePostgres,
    add_user,
    create_database,
    free_port,
    server_env,
)

from koan.db import create_engine, transactional  # noqa: E402
from koan.exercises.bank import import_specs  # noqa: E402
from koan.exercises.pack import builtin_pack_path, check_unique, read_pack  # noqa: E402
from koan.models import Exercise  # noqa: E402

DATABASE = "koan_bench_class"
QUESTIONS = [
    "Why does my loop stop one item early?",
    "What is the difference between return and print?",
    "How do I test this function by hand?",
    "Can you explain what the second test checks?",
]
DAILY = "GET /exercises/daily"
WRONG = "POST /exercises/{id}/submissions (wrong)"
HINT = "POST /exercises/{id}/hints"
RIGHT = "POST /exercises/{id}/submissions (right)"
TUTOR = "POST /conversations/{id}/messages"
PROGRESS = "GET /progress"
ROUTES = [DAILY, WRONG, HINT, RIGHT, TUTOR, PROGRESS]
SUBMISSIONS = {WRONG, RIGHT}
REQUESTS_PER_LOOP = len(ROUTES)
PAGE_P95_MS = 300.0
SUBMISSION_P95_MS = 1000.0


# --- a small HTTP/1.1 client ----------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection to Koan (JSON in, JSON out, Content-Length bodies)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                return await self._exchange(method, path, token, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, path: str, token: str | None, body: Any
    ) -> tuple[int, Any]:
        assert self.reader is not None
        assert self.writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + payload)
        status_line = await self.reader.readuntil(b"\r\n")
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        length, chunked, closing = 0, False, False
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and "close" in value.lower():
                closing = True
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                data += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            data = await self.reader.readexactly(length)
        if closing:
            self.close()
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# --- the class ------------------------------------------------------------------------------


@dataclass
class Stats:
    measuring: bool = False
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    def record(self, route: str, seconds: float, status: int | None, body: Any) -> None:
        if not self.measuring:
            return
        self.latencies[route].append(seconds)
        if status is None:
            self.errors[route]["transport"] += 1
        elif status >= 400:
            code = str(status)
            if isinstance(body, dict) and body.get("error"):
                code += f" {body['error']}"
            self.errors[route][code] += 1


@dataclass
class Learner:
    email: str
    token: str = ""
    conversation: str | None = None


async def call(
    stats: Stats, route: str, conn: Connection, method: str, path: str, token: str, body: Any = None
) -> tuple[int | None, Any]:
    started = time.perf_counter()
    try:
        status, data = await conn.request(method, path, token, body)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        conn.close()
        stats.record(route, time.perf_counter() - started, None, None)
        return None, None
    stats.record(route, time.perf_counter() - started, status, data)
    return status, data


async def learner_loop(
    who: Learner,
    conn: Connection,
    solutions: dict[str, tuple[str, str]],
    stats: Stats,
    stop: asyncio.Event,
    rng: random.Random,
    think: tuple[float, float],
) -> None:
    async def pause() -> bool:
        try:
            await asyncio.wait_for(stop.wait(), rng.uniform(*think))
        except TimeoutError:
            return True
        return False

    # Spread the class over the first think time.
    try:
        await asyncio.wait_for(stop.wait(), rng.uniform(0, think[1]))
        return
    except TimeoutError:
        pass
    token = who.token
    while not stop.is_set():
        status, daily = await call(stats, DAILY, conn, "GET", "/api/v1/exercises/daily", token)
        if status == 200 and isinstance(daily, dict):
            exercise_id = daily["exercise"]["id"]
            solution, starter = solutions[exercise_id]
            base = f"/api/v1/exercises/{exercise_id}"
            if not await pause():
                return
            await call(stats, WRONG, conn, "POST", f"{base}/submissions", token, {"code": starter})
            if not await pause():
                return
            await call(stats, HINT, conn, "POST", f"{base}/hints", token, {})
            if not await pause():
                return
            await call(stats, RIGHT, conn, "POST", f"{base}/submissions", token, {"code": solution})
        if not await pause():
            return
        if who.conversation:
            path = f"/api/v1/conversations/{who.conversation}/messages"
            await call(stats, TUTOR, conn, "POST", path, token, {"content": rng.choice(QUESTIONS)})
            if not await pause():
                return
        await call(stats, PROGRESS, conn, "GET", "/api/v1/progress", token)
        if not await pause():
            return


async def log_in_all(port: int, learners: list[Learner]) -> None:
    """Log every learner in and open their conversation (before measuring; 8 at a time)."""
    gate = asyncio.Semaphore(8)

    async def one(who: Learner) -> None:
        async with gate:
            conn = Connection("127.0.0.1", port)
            try:
                status, data = await conn.request(
                    "POST", "/api/v1/auth/login", None, {"email": who.email, "password": PASSWORD}
                )
                if status != 200:
                    raise RuntimeError(f"login of {who.email} answered {status}: {data}")
                who.token = data["access_token"]
                status, data = await conn.request("POST", "/api/v1/conversations", who.token, {})
                who.conversation = data.get("id") if status == 201 else None
            finally:
                conn.close()

    await asyncio.gather(*(one(who) for who in learners))


# --- processes and their CPU ----------------------------------------------------------------


def own_cpu_seconds(pid: int) -> float:
    """CPU of one process alone (utime + stime), without its children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


@dataclass
class Processes:
    koan: int  # `koan serve`: the supervisor, its workers, their sandboxes below them
    postgres: int
    redis: int

    def sample(self) -> dict[str, float]:
        """CPU seconds so far per component."""
        workers = children(self.koan)
        koan = own_cpu_seconds(self.koan) + sum(own_cpu_seconds(w) for w in workers)
        below = sum(tree_cpu_seconds(w) - own_cpu_seconds(w) for w in workers)
        load = os.times()
        return {
            "Koan workers": koan,
            "sandbox": below,
            "PostgreSQL": tree_cpu_seconds(self.postgres),
            "Redis": tree_cpu_seconds(self.redis),
            "load generator": load.user + load.system,
        }


COMPONENTS = ["Koan workers", "sandbox", "PostgreSQL", "Redis", "load generator"]


@dataclass
class Level:
    learners: int
    seconds: float
    stats: Stats
    cpu: dict[str, float]
    workers_requests: dict[str, int] = field(default_factory=dict)

    def requests(self) -> int:
        return sum(len(v) for v in self.stats.latencies.values())

    def loops(self) -> float:
        return self.requests() / REQUESTS_PER_LOOP

    def errors(self) -> int:
        return sum(sum(v.values()) for v in self.stats.errors.values())

    def p95_ms(self, routes: set[str]) -> float:
        values = [x * 1000 for r in routes for x in self.stats.latencies.get(r, [])]
        return percentile(values, 95) if values else 0.0

    def served_well(self) -> bool:
        pages = set(ROUTES) - SUBMISSIONS
        return (
            self.errors() == 0
            and self.p95_ms(pages) < PAGE_P95_MS
            and self.p95_ms(SUBMISSIONS) < SUBMISSION_P95_MS
        )


async def run_level(
    port: int,
    learners: list[Learner],
    solutions: dict[str, tuple[str, str]],
    args: argparse.Namespace,
    procs: Processes,
) -> Level:
    stats = Stats()
    stop = asyncio.Event()
    think = (args.think[0], args.think[1])
    conns = [Connection("127.0.0.1", port) for _ in learners]
    tasks = [
        asyncio.create_task(
            learner_loop(who, conn, solutions, stats, stop, random.Random(args.seed + i), think)
        )
        for i, (who, conn) in enumerate(zip(learners, conns, strict=True))
    ]
    await asyncio.sleep(think[1])  # everyone has started and is mid-loop
    stats.measuring = True
    before = procs.sample()
    started = time.perf_counter()
    await asyncio.sleep(args.duration)
    after = procs.sample()
    seconds = time.perf_counter() - started
    stats.measuring = False
    stop.set()
    await asyncio.gather(*tasks)
    for conn in conns:
        conn.close()
    return Level(len(learners), seconds, stats, {k: after[k] - before[k] for k in COMPONENTS})


async def start_redis(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis_asyncio.Redis(port=port)
    try:
        for _ in range(100):
            try:
                await client.ping()
                return proc, port
            except (ConnectionError, OSError, redis_asyncio.ConnectionError):
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise RuntimeError("redis-server did not start")


async def setup(db_url: str, learners: int) -> tuple[list[Learner], dict, dict[str, str]]:
    """Load the built-in bank and add the learners: (learners, solution and starter by
    exercise id, language by exercise id)."""
    engine = create_engine(db_url)
    try:
        specs = [e.spec for e in check_unique(read_pack(builtin_pack_path())) if e.spec]
        async with AsyncSession(engine) as session, transactional(session):
            await import_specs(session, specs, source="builtin")
        async with AsyncSession(engine) as session:
            rows = (await session.execute(select(Exercise))).scalars().all()
            solutions = {str(e.id): (e.solution, e.starter_code) for e in rows}
            languages = {str(e.id): e.language for e in rows}
        gate = asyncio.Semaphore(8)

        async def one(i: int) -> Learner:
            async with gate:
                user = await add_user(engine, email=f"class-{i:05d}@example.com")
            return Learner(user.email)

        people = await asyncio.gather(*(one(i) for i in range(learners)))
    finally:
        await engine.dispose()
    return list(people), solutions, languages


def postmaster_pid(pg: PrivatePostgres) -> int:
    return int((pg.data / "postmaster.pid").read_text().split()[0])


async def bench(args: argparse.Namespace) -> tuple[list[Level], dict[str, Any]]:
    levels = [int(x) for x in args.levels.split(",")]
    work = Path(tempfile.mkdtemp(prefix="koan-bench-class-"))
    fake = FakeLLMServer(
        default=Reply(text="Good question. What do you expect the loop to do on its last turn?")
    ).start()
    pg = PrivatePostgres().init()
    redis_proc: subprocess.Popen[bytes] | None = None
    server: KoanServer | None = None
    results: list[Level] = []
    info: dict[str, Any] = {}
    try:
        pg.start()
        redis_proc, redis_port = await start_redis(work)
        db_url = await create_database(pg.admin_url, DATABASE)
        learners, solutions, _ = await setup(db_url, max(levels))
        env = server_env(
            work,
            KOAN_DATABASE_URL=db_url,
            KOAN_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            KOAN_LOG_LEVEL="INFO",
            KOAN_LOG_FORMAT="json",  # as in production
            KOAN_SANDBOX_SLOTS=str(args.slots),
            KOAN_LLM_PROVIDER="openai",
            KOAN_LLM_BASE_URL=fake.openai_base_url,
            KOAN_LLM_API_KEY="bench",
            KOAN_LLM_MODEL="bench-model",
            KOAN_LLM_CACHE_TTL_S="0",  # every question reaches the provider
            KOAN_ACCESS_TOKEN_TTL_S="86400",  # logged in once for the whole run
            # The whole class logs in from one address, before measuring.
            KOAN_LOGIN_LIMIT_PER_ADDRESS="100000/minute",
        )
        server = KoanServer(env, work, name="koan-class", workers=args.workers).start()
        await server.wait_live()
        assert server.proc is not None
        procs = Processes(server.proc.pid, postmaster_pid(pg), redis_proc.pid)
        await log_in_all(server.port, learners)
        for n in levels:
            level = await run_level(server.port, learners[:n], solutions, args, procs)
            results.append(level)
            loops = max(level.loops(), 1e-9)
            print(  # noqa: T201
                f"{n:>5} learners: {level.requests() / level.seconds:6.1f} req/s, "
                f"errors {level.errors()}, p95 pages "
                f"{level.p95_ms(set(ROUTES) - SUBMISSIONS):.0f} ms, submissions "
                f"{level.p95_ms(SUBMISSIONS):.0f} ms, Koan CPU/loop "
                f"{1000 * level.cpu['Koan workers'] / loops:.1f} ms",
                flush=True,
            )
    finally:
        if server is not None:
            server.stop()
            if args.keep_log is not None:
                args.keep_log.write_text(server.log())
        fake.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=30)
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)
    return results, info


def report(levels: list[Level], args: argparse.Namespace) -> str:
    out = [
        f"`koan serve --workers {args.workers}`, {args.slots} sandbox slot(s) per worker, a "
        "private PostgreSQL (fsync off) and Redis, the tutor on the loopback fake provider; "
        f"think time {args.think[0]:g}-{args.think[1]:g} s before every step; "
        f"{args.duration:.0f} s measured per level after a warm-up of one think time. "
        f"A loop is {REQUESTS_PER_LOOP} requests (daily, wrong submission, hint, right "
        "submission, tutor question, progress), 2 of them gradings.\n",
        "| learners | req/s | pages p95 ms | submissions p95 ms | errors | "
        + " | ".join(f"{c} ms/loop" for c in COMPONENTS)
        + " | served well |",
        "|---:|---:|---:|---:|---:|" + "---:|" * len(COMPONENTS) + "---|",
    ]
    pages = set(ROUTES) - SUBMISSIONS
    for lv in levels:
        loops = max(lv.loops(), 1e-9)
        out.append(
            f"| {lv.learners} | {lv.requests() / lv.seconds:.1f} | {lv.p95_ms(pages):.0f} | "
            f"{lv.p95_ms(SUBMISSIONS):.0f} | {lv.errors()} | "
            + " | ".join(f"{1000 * lv.cpu[c] / loops:.1f}" for c in COMPONENTS)
            + f" | {'yes' if lv.served_well() else 'no'} |"
        )
    good = [lv.learners for lv in levels if lv.served_well()]
    out += [
        "",
        f"Largest class served well (pages p95 < {PAGE_P95_MS:.0f} ms, submissions p95 < "
        f"{SUBMISSION_P95_MS:.0f} ms, no errors): "
        + (f"**{max(good)} learners**." if good else "**none of these levels**."),
    ]
    for lv in levels:
        out += [
            "",
            f"**{lv.learners} learners**, per route:",
            "",
            "| route | requests | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for route in ROUTES:
            values = [x * 1000 for x in lv.stats.latencies.get(route, [])]
            if not values:
                continue
            errors = lv.stats.errors.get(route, {})
            shown = ", ".join(f"{n}× {code}" for code, n in sorted(errors.items())) or "0"
            out.append(
                f"| {route} | {len(values)} | {percentile(values, 50):.0f} | "
                f"{percentile(values, 95):.0f} | {percentile(values, 99):.0f} | {shown} |"
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="300,600,1000")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per level")
    parser.add_argument("--think", type=float, nargs=2, default=[5.0, 20.0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1, help="sandbox slots per worker")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-log", type=Path, help="copy the server's log here at the end")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    levels, info = asyncio.run(bench(args))
    body = report(levels, args)
    print(f"\n## Capacity: a class with think time\n\n{body}\n\n_{machine()}_")  # noqa: T201
    if args.write:
        write_section("Capacity: a class with think time", body)


if __name__ == "__main__":
    main()
