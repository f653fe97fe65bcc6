"""Koan's own CPU per request on the learner's loop, one request at a time, and where it goes.

    .venv/bin/python bench/request_cpu.py [--learners 80] [--warmup 10] [--profile FILE]
        [--top 30] [--route ROUTE] [--write]

The same private PostgreSQL, Redis and fake provider as bench/class_load.py, with
`koan serve --workers 1`. Each learner (logged in beforehand) runs the loop once, one request
at a time with no think time: their account (`GET /users/me`), today's exercise, a wrong
submission, a hint, the right submission, a tutor question, their progress. The worker's CPU
time (all its threads, read from /proc/<pid>/task/*/schedstat in nanoseconds; the sandbox's
processes are not counted) is taken around every request; the first `--warmup` learners only
warm the caches. Reported per route: the mean, median and 10th percentile of the CPU ms, and
the loop's total (the six requests bench/class_load.py sends, `users/me` left out). Other work
on the machine makes every request cost more (caches, frequency), never less, so on a busy
machine the p10s move less from run to run than the means.

`--profile FILE` runs the worker under yappi on the CPU clock (`make bench` installs it; it slows
the worker about threefold, so that run's CPU figures are not comparable) and prints where the
time went: own time by package, then the functions with the most own time. The profiler
starts once the warm-up loops are done, so start-up and first-request work are left out.
With `--route` (one of the routes in the table, for example "GET /users/me"), the profiler
runs only while that route's requests are answered.
The profile is kept in FILE in pstats format (`python -m pstats FILE`: `sort cumulative`,
`callees <name>`). Time spent inside SQLAlchemy's greenlets is not added to the cumulative
time of the coroutines that awaited them; own time is exact.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write_section  # noqa: E402
from class_load import (  # noqa: E402
    QUESTIONS,
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

DATABASE = "koan_bench_request_cpu"
ME = "GET /users/me"
DAILY = "GET /exercises/daily"
WRONG = "POST submissions (wrong)"
HINT = "POST hints"
RIGHT = "POST submissions (right)"
TUTOR = "POST conversations/{id}/messages"
PROGRESS = "GET /progress"
ROUTES = [ME, DAILY, WRONG, HINT, RIGHT, TUTOR, PROGRESS]
LOOP = [DAILY, WRONG, HINT, RIGHT, TUTOR, PROGRESS]


def worker_cpu_ns(pid: int) -> int:
    """CPU time of every thread of one process, in nanoseconds (children not included)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total


# yappi on the CPU clock, each greenlet its own context: cProfile measures wall time (uvloop
# waits in C, so idle time lands on whatever frame was entered last), and SQLAlchemy's
# greenlets leave frames on its stack, which mixes up its call tree.
PROFILED = """
import signal, sys, yappi
from koan.cli import app
yappi.set_clock_type("cpu")
yappi.set_context_backend("greenlet")
sys.argv = ["koan", *sys.argv[1:]]
# Started by the bench once the warm-up loops are done, so start-up is left out.
signal.signal(signal.SIGUSR1, lambda *_: yappi.start())
# With --route, paused between that route's requests.
signal.signal(signal.SIGUSR2, lambda *_: yappi.stop())
try:
    app()
except (SystemExit, KeyboardInterrupt):
    pass
finally:
    yappi.stop()
    yappi.get_func_stats().save({out!r}, type="pstat")
"""


class ProfiledServer(KoanServer):
    """`koan serve`, under the profiler if asked; SIGINT ends it cleanly (profile written)."""

    def __init__(self, *args: Any, profile: Path | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profile = profile

    def start(self) -> ProfiledServer:
        serve = ["serve", "--port", str(self.port), "--workers", "1"]
        argv = [sys.executable, "-m", "koan.cli", *serve]
        if self.profile is not None:
            argv = [sys.executable, "-c", PROFILED.format(out=str(self.profile)), *serve]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self

    def interrupt(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def one_loop(
    conn: Connection,
    who: Learner,
    pid: int,
    solutions: dict[str, tuple[str, str]],
    cpu: dict[str, list[float]] | None,
    index: int,
    profiled: str | None = None,
) -> None:
    async def timed(route: str, method: str, path: str, body: Any = None) -> Any:
        if route == profiled:
            os.kill(pid, signal.SIGUSR1)
            await asyncio.sleep(0.005)  # the handler runs when the worker's loop wakes
        before = worker_cpu_ns(pid)
        status, data = await conn.request(method, path, who.token, body)
        spent = (worker_cpu_ns(pid) - before) / 1e6
        if route == profiled:
            await asyncio.sleep(0.005)  # a stream's last work after its last byte
            os.kill(pid, signal.SIGUSR2)
        if status >= 300:
            raise RuntimeError(f"{route} answered {status}: {data}")
        if cpu is not None:
            cpu[route].append(spent)
        return data

    await timed(ME, "GET", "/api/v1/users/me")
    daily = await timed(DAILY, "GET", "/api/v1/exercises/daily")
    exercise_id = daily["exercise"]["id"]
    solution, starter = solutions[exercise_id]
    base = f"/api/v1/exercises/{exercise_id}"
    await timed(WRONG, "POST", f"{base}/submissions", {"code": starter})
    await timed(HINT, "POST", f"{base}/hints", {})
    await timed(RIGHT, "POST", f"{base}/submissions", {"code": solution})
    question = {"content": QUESTIONS[index % len(QUESTIONS)]}
    await timed(TUTOR, "POST", f"/api/v1/conversations/{who.conversation}/messages", question)
    await timed(PROGRESS, "GET", "/api/v1/progress")


async def bench(args: argparse.Namespace) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="koan-bench-cpu-"))
    fake = FakeLLMServer(
        default=Reply(text="Good question. What do you expect the loop to do on its last turn?")
    ).start()
    pg = PrivatePostgres().init()
    redis_proc: subprocess.Popen[bytes] | None = None
    server: ProfiledServer | None = None
    cpu: dict[str, list[float]] = defaultdict(list)
    try:
        pg.start()
        redis_proc, redis_port = await start_redis(work)
        db_url = await create_database(pg.admin_url, DATABASE)
        learners, solutions, _ = await setup(db_url, args.learners + args.warmup)
        env = server_env(
            work,
            KOAN_DATABASE_URL=db_url,
            KOAN_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            KOAN_LOG_LEVEL="INFO",
            KOAN_LOG_FORMAT="json",  # as in production
            KOAN_LLM_PROVIDER="openai",
            KOAN_LLM_BASE_URL=fake.openai_base_url,
            KOAN_LLM_API_KEY="bench",
            KOAN_LLM_MODEL="bench-model",
            KOAN_LLM_CACHE_TTL_S="0",
            KOAN_ACCESS_TOKEN_TTL_S="86400",
            KOAN_LOGIN_LIMIT_PER_ADDRESS="100000/minute",
        )
        server = ProfiledServer(env, work, name="koan-cpu", profile=args.profile)
        server.start()
        await server.wait_live()
        assert server.proc is not None
        await log_in_all(server.port, learners)
        conn = Connection("127.0.0.1", server.port)
        for i, who in enumerate(learners):
            measured = i >= args.warmup
            if measured and args.profile is not None and args.route is None and i == args.warmup:
                server.proc.send_signal(signal.SIGUSR1)
            profiled = args.route if measured and args.profile is not None else None
            await one_loop(
                conn, who, server.proc.pid, solutions, cpu if measured else None, i, profiled
            )
        conn.close()
    finally:
        if server is not None and server.proc is not None:
            server.interrupt()
            if server.proc.returncode not in (0, -signal.SIGINT, 130, 1):
                print(server.log()[-3000:])  # noqa: T201
        fake.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=30)
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)
    return cpu


def _p10(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[0] if len(values) > 1 else values[0]


def report(cpu: dict[str, list[float]], learners: int) -> str:
    out = [
        f"`koan serve --workers 1`, PostgreSQL + Redis (private, on loopback), {learners} "
        "learners one after another, one request at a time; the worker's CPU per request.\n",
        "| route | mean ms | median ms | p10 ms |",
        "|---|---:|---:|---:|",
    ]
    for route in ROUTES:
        values = cpu.get(route, [])
        if values:
            out.append(
                f"| {route} | {statistics.fmean(values):.1f} | {statistics.median(values):.1f} "
                f"| {_p10(values):.1f} |"
            )
    loop = sum(statistics.fmean(cpu[r]) for r in LOOP if cpu.get(r))
    low = sum(_p10(cpu[r]) for r in LOOP if cpu.get(r))
    out += [
        "",
        f"The loop (six requests, `users/me` left out): **{loop:.1f} ms** of CPU "
        f"(the sum of the p10s: {low:.1f} ms).",
    ]
    return "\n".join(out)


def _package(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/src/koan/" in filename:
        parts = filename.split("/src/koan/", 1)[1].split("/")
        return "koan." + parts[0].removesuffix(".py")
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    if "/lib/python3" in filename:
        return "stdlib." + filename.rsplit("/", 1)[1].removesuffix(".py")
    return filename


def profile_report(path: Path, top: int) -> str:
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_package[_package(filename)] += tottime
        total += tottime
    lines = ["Own time by package (share of the profiled process):", ""]
    for name, seconds in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * seconds / total:5.1f}%  {name}")
    lines += ["", f"Functions with the most own time (top {top}):", ""]
    ranked = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, name), (_cc, calls, tottime, _cum, _callers) in ranked:
        where = filename.split("site-packages/")[-1].split("/src/")[-1]
        lines.append(f"  {100 * tottime / total:5.1f}%  {calls:>8} calls  {name}  ({where}:{line})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=80, help="measured loops")
    parser.add_argument("--warmup", type=int, default=10, help="loops before measuring")
    parser.add_argument("--profile", type=Path, help="profile the worker (yappi), keep it here")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--route", choices=ROUTES, help="with --profile: profile only this route's requests"
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile = args.profile.resolve()
        try:
            import yappi  # noqa: F401
        except ImportError:
            parser.error("--profile needs yappi: make bench (or the [bench] extra) installs it")
    cpu = asyncio.run(bench(args))
    body = report(cpu, args.learners)
    print(f"\n## CPU per request on the learner's loop\n\n{body}\n\n_{machine()}_")  # noqa: T201
    if args.profile is not None:
        print("\n" + profile_report(args.profile, args.top))  # noqa: T201
    elif args.write:
        write_section("CPU per request on the learner's loop", body)


if __name__ == "__main__":
    main()
