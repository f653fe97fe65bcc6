"""A class presses "Run tests" at once: N learners submit to the same exercise within one second.

    .venv/bin/python bench/class_burst.py [--learners 100,200] [--workers 2] [--slots 1]
        [--queue 32] [--rounds 2] [--write]

The same private PostgreSQL, Redis and `koan serve --workers N` as bench/class_load.py. Every
learner is logged in and has opened the exercise beforehand; then each sends the exercise's
reference solution at a moment drawn uniformly from one second. Reported per class size (the
median over `--rounds` bursts, each on an exercise of its own, the same ones for the same
`--seed`): when the last verdict came (from the burst's start) with the burst's exercise and
the median time of its runs in the sandbox (the exercise's tests set much of a burst's length;
docs/benchmarks.md), the median and p95 answer time, how many got a verdict, the statuses
other than 201 (a `503 GraderBusy` is a refusal), and the most PostgreSQL connections open at
once during the burst.
Target: 200 learners all get verdicts within 3 s, and none gets 503.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, percentile, write_section  # noqa: E402
from class_load import (  # noqa: E402
    DATABASE,
    Connection,
    Learner,
    log_in_all,
    setup,
    start_redis,
)
from tests.fixtures.llm_server import FakeLLMServer, Reply  # noqa: E402
from tests.scale.servers import (  # noqa: E402
    KoanServer,
    PrivatePostgres,
    create_database,
    server_env,
)

from koan.db import create_engine  # noqa: E402


@dataclass
class Burst:
    learners: int
    answers: list[float] = field(default_factory=list)  # seconds from the burst's start
    statuses: Counter[str] = field(default_factory=Counter)
    peak_connections: int = 0
    exercise: str = ""  # the slug
    runs_ms: list[int] = field(default_factory=list)  # each verdict's run in the sandbox

    def run_ms(self) -> float:
        return statistics.median(self.runs_ms) if self.runs_ms else float("nan")

    def verdicts(self) -> int:
        return self.statuses.get("201", 0)

    def last_s(self) -> float:
        return max(self.answers) if self.answers else float("nan")


async def watch_connections(admin_url: str, stop: asyncio.Event, burst: Burst) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db")
    try:
        async with engine.connect() as conn:
            while not stop.is_set():
                count = (await conn.execute(query, {"db": DATABASE})).scalar_one()
                burst.peak_connections = max(burst.peak_connections, int(count))
                await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


async def one_burst(
    port: int,
    admin_url: str,
    learners: list[Learner],
    exercise_id: str,
    solution: str,
    rng: random.Random,
) -> Burst:
    burst = Burst(len(learners))
    conns = [Connection("127.0.0.1", port) for _ in learners]
    path = f"/api/v1/exercises/{exercise_id}"
    # Open the exercise first (as a learner reading it would), so only the gradings remain.
    opened = await asyncio.gather(
        *(c.request("GET", path, who.token) for c, who in zip(conns, learners, strict=True))
    )
    _, exercise = opened[0]
    burst.exercise = str(exercise.get("slug", "?")) if isinstance(exercise, dict) else "?"
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_connections(admin_url, stop, burst))
    started = time.perf_counter()

    async def submit(conn: Connection, who: Learner) -> None:
        await asyncio.sleep(rng.random())
        try:
            status, body = await conn.request(
                "POST", f"{path}/submissions", who.token, {"code": solution}
            )
        except (OSError, asyncio.IncompleteReadError, ValueError):
            burst.statuses["transport"] += 1
            return
        burst.answers.append(time.perf_counter() - started)
        code = str(status)
        if status != 201 and isinstance(body, dict):
            code += f" {body.get('error')}"
        elif isinstance(body, dict):
            burst.runs_ms.append(int(body.get("duration_ms", 0)))
        burst.statuses[code] += 1

    await asyncio.gather(*(submit(c, who) for c, who in zip(conns, learners, strict=True)))
    stop.set()
    await watcher
    for conn in conns:
        conn.close()
    return burst


async def bench(args: argparse.Namespace) -> list[list[Burst]]:
    sizes = [int(x) for x in args.learners.split(",")]
    work = Path(tempfile.mkdtemp(prefix="koan-bench-burst-"))
    fake = FakeLLMServer(default=Reply(text="unused")).start()
    pg = PrivatePostgres().init()
    redis_proc: subprocess.Popen[bytes] | None = None
    server: KoanServer | None = None
    results: list[list[Burst]] = []
    try:
        pg.start()
        redis_proc, redis_port = await start_redis(work)
        db_url = await create_database(pg.admin_url, DATABASE)
        learners, solutions, languages = await setup(db_url, max(sizes))
        env = server_env(
            work,
            KOAN_DATABASE_URL=db_url,
            KOAN_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            KOAN_LOG_LEVEL="INFO",
            KOAN_LOG_FORMAT="json",  # as in production
            KOAN_SANDBOX_SLOTS=str(args.slots),
            KOAN_SANDBOX_QUEUE_SIZE=str(args.queue),
            KOAN_LLM_PROVIDER="openai",
            KOAN_LLM_BASE_URL=fake.openai_base_url,
            KOAN_LLM_API_KEY="bench",
            KOAN_LLM_MODEL="bench-model",
            KOAN_ACCESS_TOKEN_TTL_S="86400",
            KOAN_LOGIN_LIMIT_PER_ADDRESS="100000/minute",
        )
        server = KoanServer(env, work, name="koan-burst", workers=args.workers).start()
        await server.wait_live()
        await log_in_all(server.port, learners)
        # Python exercises (the class's language), a fresh one for every burst: the same ones,
        # in the same order, for the same --seed (ordered by their solutions, not their ids,
        # which are new in every run), so that two versions can be compared burst by burst.
        exercises = sorted(
            (e for e, language in languages.items() if language == "python"),
            key=lambda e: solutions[e][0],
        )
        rng = random.Random(args.seed)
        rng.shuffle(exercises)
        for n in sizes:
            rounds = []
            for _ in range(args.rounds):
                exercise_id = exercises.pop()
                burst = await one_burst(
                    server.port, pg.admin_url, learners[:n], exercise_id,
                    solutions[exercise_id][0], rng,
                )  # fmt: skip
                rounds.append(burst)
                print(  # noqa: T201
                    f"{n:>4} learners on {burst.exercise} (a run {burst.run_ms():.0f} ms): "
                    f"last verdict {burst.last_s():.2f} s, {dict(burst.statuses)}, "
                    f"peak PostgreSQL connections {burst.peak_connections}",
                    flush=True,
                )
                await asyncio.sleep(args.pause)
            results.append(rounds)
    finally:
        if server is not None:
            server.stop()
        fake.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=30)
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)
    return results


def report(results: list[list[Burst]], args: argparse.Namespace) -> str:
    out = [
        f"`koan serve --workers {args.workers}`, {args.slots} sandbox slot(s) and a queue of "
        f"{args.queue} per worker, private PostgreSQL (fsync off) and Redis; every learner "
        "submits the reference solution of one exercise at a moment drawn from one second; "
        f"{args.rounds} bursts per size (each on its own exercise).\n",
        "| learners | last verdict s (each burst: exercise, its median run in the sandbox) | "
        "median answer s | p95 answer s | verdicts | other statuses | "
        "peak PostgreSQL connections |",
        "|---:|---|---:|---:|---:|---|---:|",
    ]
    for rounds in results:
        answers = [a for b in rounds for a in b.answers]
        others: Counter[str] = Counter()
        for b in rounds:
            others.update({k: v for k, v in b.statuses.items() if k != "201"})
        out.append(
            f"| {rounds[0].learners} | "
            f"{', '.join(f'{b.last_s():.2f} ({b.exercise}, {b.run_ms():.0f} ms)' for b in rounds)}"
            " | "
            f"{statistics.median(answers):.2f} | {percentile(answers, 95):.2f} | "
            f"{sum(b.verdicts() for b in rounds)} of {sum(b.learners for b in rounds)} | "
            f"{', '.join(f'{n}× {k}' for k, n in sorted(others.items())) or 'none'} | "
            f"{max(b.peak_connections for b in rounds)} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", default="100,200")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1, help="sandbox slots per worker")
    parser.add_argument("--queue", type=int, default=32, help="sandbox queue per worker")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between bursts")
    parser.add_argument("--seed", type=int, default=7, help="which exercises, and arrivals")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    results = asyncio.run(bench(args))
    body = report(results, args)
    print(f"\n## Capacity: a class submitting at once\n\n{body}\n\n_{machine()}_")  # noqa: T201
    if args.write:
        write_section("Capacity: a class submitting at once", body)


if __name__ == "__main__":
    main()
