"""Time to first token through Koan's streaming tutor endpoint vs straight from the provider.

    .venv/bin/python bench/tutor.py [--runs 200] [--concurrent 50] [--workers 1] [--think 5 15]
        [--database-url postgresql://... --redis-url redis://...] [--write]

A real `koan serve` (uvicorn) process on loopback with SQLite, its KOAN_LLM_BASE_URL pointed
at a fake OpenAI-compatible server (tests/fixtures/llm_server.py) in a process of its own.
Each sample is the time from sending the request to reading the first text delta: "direct" is
an SSE chat completion from the fake provider; "Koan" is
`POST /api/v1/conversations/{id}/messages` with `Accept: text/event-stream` (auth, rate limit,
reply lock, the prompt from profile and history, the budget reservation, storing and
committing the learner's message while the provider is asked, then the provider's stream
relayed). Three loads, each measured straight from the provider and then through Koan:

- sequential: one question at a time, each in a new conversation;
- N questions sent at the same instant (`--concurrent`, one learner each), the worst case;
- N learners chatting at once: each asks, reads the reply to its end while the provider
  streams it at a model's pace (`--token-interval`), thinks (`--think MIN MAX` seconds,
  uniform), and asks again in the same conversation (`--messages` times).

`--concurrent 0` runs the sequential load only. The server's CPU per streamed reply is read
from /proc during the sequential load.

Target: Koan adds under 10 ms to the median time to first token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, percentile, tree_cpu_seconds  # noqa: E402
from tests.fixtures.llm_server import Reply  # noqa: E402
from tests.scale.servers import create_database, drop_database  # noqa: E402

from koan.auth import service as auth_service  # noqa: E402
from koan.config import Settings  # noqa: E402
from koan.db import transactional  # noqa: E402
from koan.migrate import upgrade  # noqa: E402
from koan.models import LearnerProfile, User  # noqa: E402
from koan.resources import Resources  # noqa: E402

BENCHMARKS_DOC = ROOT / "docs" / "benchmarks.md"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
REPLY = Reply(
    text="What does your loop do with an odd number? Try it with [1, 2, 3] by hand first.",
    input_tokens=400,
    output_tokens=30,
)
QUESTION = "Why does my sum come out too big?"
# With --database-url: created, then dropped; the pid keeps two runs on one server apart.
DATABASE = f"koan_bench_tutor_{os.getpid()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def seed(url: str, learners: int) -> list[str]:
    """Verified, onboarded learners and an access token for each (minted, not logged in:
    the login rate limit would otherwise be the thing measured)."""
    settings = Settings(database_url=url, secret_key=SECRET, _env_file=None)
    res = Resources.from_settings(settings)
    tokens: list[str] = []
    try:
        async with res.session_factory() as session, transactional(session):
            for n in range(learners):
                user = User(
                    email=f"bench-{n}@example.com",
                    name=f"Bench {n}",
                    password_hash="x",
                    preferences={},
                    email_verified_at=res.clock.now(),
                )
                session.add(user)
                await session.flush()
                session.add(
                    LearnerProfile(
                        user_id=user.id, answers={}, interests=[], goals="Learn Python",
                        onboarding_completed=True, language="python", experience="beginner",
                    )
                )  # fmt: skip
                issued = await auth_service.open_session(session, res, user, user_agent="bench")
                tokens.append(issued.access_token)
    finally:
        await res.close()
    return tokens


FAKE_SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.fixtures.llm_server import FakeLLMServer, Reply
def reply(interval):
    return Reply(text={text!r}, input_tokens=400, output_tokens=30, chunk_interval=interval)
server = FakeLLMServer(default=reply(0.0)).start()
print(server.openai_base_url, flush=True)
for line in sys.stdin:  # "pace <seconds>": stream at a model's pace; EOF: stop
    server.default = reply(float(line.split()[1]))
    print("ok", flush=True)
server.stop()
"""


def pace_provider(fake: subprocess.Popen[str], interval_s: float) -> None:
    """Make the fake provider wait `interval_s` between streamed chunks from now on."""
    assert fake.stdin is not None
    assert fake.stdout is not None
    fake.stdin.write(f"pace {interval_s}\n")
    fake.stdin.flush()
    assert fake.stdout.readline().strip() == "ok"


def start_fake_provider() -> tuple[subprocess.Popen[str], str]:
    """The fake provider in its own process, so it does not share a GIL with the clients."""
    code = FAKE_SERVER.format(root=str(ROOT), text=REPLY.text)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def start_koan(
    url: str,
    port: int,
    llm_url: str,
    data_dir: str,
    workers: int,
    redis_url: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`koan serve` on loopback; `env` adds to (or overrides) its environment."""
    env = {
        **os.environ,
        "KOAN_ENV": "development",
        "KOAN_DATABASE_URL": url,
        "KOAN_DATA_DIR": data_dir,
        "KOAN_SECRET_KEY": SECRET,
        "KOAN_LOG_LEVEL": "WARNING",
        "KOAN_LLM_PROVIDER": "openai",
        "KOAN_LLM_BASE_URL": llm_url,
        "KOAN_LLM_MODEL": "gpt-4o-mini",
        "KOAN_LLM_CHAT_LIMIT": "1000000/minute",
        "KOAN_LLM_USER_DAILY_BUDGET_USD": "1000",
        "KOAN_REDIS_URL": redis_url,
        "KOAN_CACHE_PREFIX": f"koan-bench-tutor-{os.getpid()}:",
        **(env or {}),
    }
    koan = Path(sys.executable).parent / "koan"
    return subprocess.Popen(
        [str(koan), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(Path(data_dir) / "koan.log").open("wb"),
    )


async def wait_ready(http: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("koan serve exited; its log is in the run's data folder")
        try:
            if (await http.get("/health/live")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("koan serve did not start")


async def direct_ttft(http: httpx.AsyncClient, llm_url: str) -> float:
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": QUESTION}],
    }
    started = time.perf_counter()
    first = None
    async with http.stream("POST", f"{llm_url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():  # read to the end, as a client would
            if first is None and line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    first = time.perf_counter() - started
    assert first is not None
    return first


async def koan_ttft(http: httpx.AsyncClient, token: str, conversation_id: str) -> float:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    started = time.perf_counter()
    first = None
    async with http.stream(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        headers=headers,
        json={"content": QUESTION},
    ) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {(await response.aread()).decode()}")
        async for line in response.aiter_lines():
            if first is None and line == "event: token":
                first = time.perf_counter() - started
    assert first is not None
    return first


def stats(samples: list[float]) -> tuple[float, float]:
    ms = [s * 1000 for s in samples]
    return statistics.median(ms), percentile(ms, 95)


async def run(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    runs, concurrent = args.runs, args.concurrent
    tmp = tempfile.mkdtemp(prefix="koan-bench-tutor-")
    if args.database_url:
        url = await create_database(args.database_url, DATABASE)
    else:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await asyncio.to_thread(upgrade, url)
    tokens = await seed(url, max(1, concurrent))
    fake, llm_url = start_fake_provider()
    port = free_port()
    proc = start_koan(url, port, llm_url, tmp, args.workers, args.redis_url)
    pool = max(2, concurrent * 2)
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits
        ) as http:
            await wait_ready(http, proc)

            async def conversation(token: str) -> str:
                r = await http.post(
                    "/api/v1/conversations", headers={"Authorization": f"Bearer {token}"}, json={}
                )
                r.raise_for_status()
                return str(r.json()["id"])

            # Every sample asks in a fresh conversation, so the history (and with it the
            # prompt) has the same size throughout the run.
            # Warm up both paths (connection pools, SDK client, SQLite pages).
            for _ in range(10):
                await direct_ttft(http, llm_url)
                await koan_ttft(http, tokens[0], await conversation(tokens[0]))

            results: dict[str, tuple[float, float]] = {}
            fresh_ids = [await conversation(tokens[0]) for _ in range(runs)]
            # Interleaved, so drift (other load on the machine) hits both paths alike.
            direct_seq: list[float] = []
            koan_seq: list[float] = []
            cpu_before = tree_cpu_seconds(proc.pid)
            for fresh in fresh_ids:
                direct_seq.append(await direct_ttft(http, llm_url))
                koan_seq.append(await koan_ttft(http, tokens[0], fresh))
            cpu_ms = (tree_cpu_seconds(proc.pid) - cpu_before) * 1000 / runs
            results["direct_seq"] = stats(direct_seq)
            results["koan_seq"] = stats(koan_seq)
            results["cpu"] = (cpu_ms, cpu_ms)

            if not concurrent:
                return results
            rounds = max(1, runs // concurrent) * 2
            direct_conc: list[float] = []
            koan_conc: list[float] = []
            for _ in range(rounds):
                fresh_ids = [await conversation(t) for t in tokens]
                direct_conc += await asyncio.gather(
                    *(direct_ttft(http, llm_url) for _ in range(concurrent))
                )
                koan_conc += await asyncio.gather(
                    *(koan_ttft(http, t, c) for t, c in zip(tokens, fresh_ids, strict=True))
                )
            results["direct_conc"] = stats(direct_conc)
            results["koan_conc"] = stats(koan_conc)

            # Learners chatting: each asks, reads the reply to its end as the model streams
            # it, thinks, and asks again in the same conversation.
            pace_provider(fake, args.token_interval)
            low, high = args.think
            rng = random.Random(7)
            thinking = [[rng.uniform(low, high) for _ in range(args.messages + 1)] for _ in tokens]

            async def learner(ask: Callable[[int], Awaitable[float]], n: int) -> list[float]:
                await asyncio.sleep(thinking[n][0] * rng.random())  # not all at once
                samples = []
                for pause in thinking[n][1:]:
                    samples.append(await ask(n))
                    await asyncio.sleep(pause)
                return samples

            async def ask_direct(_: int) -> float:
                return await direct_ttft(http, llm_url)

            chats = [await conversation(t) for t in tokens]

            async def ask_koan(n: int) -> float:
                return await koan_ttft(http, tokens[n], chats[n])

            for key, ask in (("direct_paced", ask_direct), ("koan_paced", ask_koan)):
                per_learner = await asyncio.gather(*(learner(ask, n) for n in range(concurrent)))
                results[key] = stats([s for samples in per_learner for s in samples])
    except Exception:
        log = (Path(tmp) / "koan.log").read_text(errors="replace")
        print(f"koan serve's log (last lines):\n{log[-4000:]}", file=sys.stderr)  # noqa: T201
        raise
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        fake.communicate("", timeout=15)
        if args.database_url:
            await drop_database(args.database_url, DATABASE)
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def table(
    results: dict[str, tuple[float, float]], concurrent: int, args: argparse.Namespace
) -> str:
    rows = [
        "| load | direct from the provider, median / p95 | through Koan, median / p95 "
        "| Koan adds (median) |",
        "|---|---|---|---|",
    ]
    loads = (
        ("sequential", "seq"),
        (f"{concurrent} questions sent at the same instant", "conc"),
        (
            f"{concurrent} learners chatting at once (think {args.think[0]:g}-{args.think[1]:g} s, "
            f"a chunk every {args.token_interval * 1000:g} ms)",
            "paced",
        ),
    )
    for label, key in loads:
        if f"koan_{key}" not in results:
            continue
        d_med, d_p95 = results[f"direct_{key}"]
        k_med, k_p95 = results[f"koan_{key}"]
        rows.append(
            f"| {label} | {d_med:.1f} / {d_p95:.1f} ms | {k_med:.1f} / {k_p95:.1f} ms "
            f"| {k_med - d_med:+.1f} ms |"
        )
    cpu_ms = results["cpu"][0]
    rows.append("")
    rows.append(
        f"Koan's CPU per streamed reply (sequential, the server's processes): {cpu_ms:.1f} ms"
    )
    return "\n".join(rows) + "\n"


def write_doc(body: str) -> None:
    """Replace the latest run in docs/benchmarks.md (between its markers)."""
    start, end = "<!-- bench:tutor -->", "<!-- /bench:tutor -->"
    text = BENCHMARKS_DOC.read_text()
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    BENCHMARKS_DOC.write_text(f"{head}{start}\n{body}{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=50, help="0: sequential only")
    parser.add_argument("--workers", type=int, default=1, help="koan serve --workers")
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(5.0, 15.0),
        metavar=("MIN", "MAX"),
        help="learners chatting: seconds between reading a reply and asking again",
    )
    parser.add_argument(
        "--token-interval",
        type=float,
        default=0.02,
        help="learners chatting: seconds between the provider's streamed chunks",
    )
    parser.add_argument("--messages", type=int, default=6, help="learners chatting: each asks")
    parser.add_argument("--database-url", default="", help="PostgreSQL server (admin) URL")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    markdown = table(results, args.concurrent, args)
    print(markdown)  # noqa: T201
    if args.write:
        backend = ""
        if args.database_url:
            backend = f" --database-url {args.database_url}"
        if args.redis_url:
            backend += f" --redis-url {args.redis_url}"
        write_doc(
            f"Command: `.venv/bin/python bench/tutor.py --runs {args.runs} "
            f"--concurrent {args.concurrent} --workers {args.workers}{backend} --write`\n\n"
            f"{markdown}\n_Measured on {machine()}._\n"
        )


if __name__ == "__main__":
    main()
