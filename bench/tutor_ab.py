"""Time to first token of two versions of Koan, side by side: a git ref against the checkout.

    .venv/bin/python bench/tutor_ab.py --baseline main~3 [--runs 500] [--learners 50]
        [--messages 6] [--database-url postgresql://... --redis-url redis://...]

On a shared machine whose speed drifts by half between runs, two runs of bench/tutor.py
cannot show a change worth a few tenths of a millisecond. Here both versions serve at once
(each a `koan serve` with its own database, against one fake provider) and take turns:

- sequential: question n goes to one version and then the other (alternating which goes first),
  each in a new conversation;
- learners chatting (with `--learners`): each learner alternates between the two versions
  from one message to the next, with the provider streaming at a model's pace.

The baseline's code comes from `git worktree add` of `--baseline` (its `src/` first on the
PYTHONPATH; the installed packages are the checkout's). It reports the medians and their
difference; the same code on both sides (`--baseline HEAD` with nothing uncommitted) shows the
method's noise, about 0.1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tutor  # noqa: E402
from tutor import DATABASE, ROOT, free_port, koan_ttft, pace_provider, seed  # noqa: E402

from koan.migrate import upgrade  # noqa: E402


@dataclass
class Version:
    name: str
    http: httpx.AsyncClient
    tokens: list[str]
    proc: subprocess.Popen[bytes]
    database: str

    async def conversation(self, token: str) -> str:
        r = await self.http.post(
            "/api/v1/conversations", headers={"Authorization": f"Bearer {token}"}, json={}
        )
        r.raise_for_status()
        return str(r.json()["id"])


@contextlib.contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """The tree of `ref`, checked out beside the repository for the run."""
    where = Path(tempfile.mkdtemp(prefix="koan-bench-ab-")) / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(where), ref], check=True
    )
    try:
        yield where
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False
        )
        shutil.rmtree(where.parent, ignore_errors=True)


async def start(
    name: str, args: argparse.Namespace, llm_url: str, learners: int, pythonpath: str
) -> Version:
    tmp = tempfile.mkdtemp(prefix=f"koan-bench-ab-{name}-")
    database = f"{DATABASE}_{name}"
    if args.database_url:
        url = await tutor.create_database(args.database_url, database)
    else:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await asyncio.to_thread(upgrade, url)
    tokens = await seed(url, learners)
    env = {"KOAN_CACHE_PREFIX": f"koan-bench-ab-{os.getpid()}-{name}:"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    port = free_port()
    proc = tutor.start_koan(url, port, llm_url, tmp, 1, args.redis_url, env=env)
    limits = httpx.Limits(max_connections=2 * learners, max_keepalive_connections=2 * learners)
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits)
    await tutor.wait_ready(http, proc)
    return Version(name, http, tokens, proc, database)


async def stop(version: Version, args: argparse.Namespace) -> None:
    version.proc.terminate()
    version.proc.wait(timeout=15)
    await version.http.aclose()
    if args.database_url:
        await tutor.drop_database(args.database_url, version.database)


async def sequential(versions: list[Version], runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {v.name: [] for v in versions}
    for v in versions:  # warm up: pools, the SDK client, the database's pages
        for _ in range(20):
            await koan_ttft(v.http, v.tokens[0], await v.conversation(v.tokens[0]))
    fresh = {v.name: [await v.conversation(v.tokens[0]) for _ in range(runs)] for v in versions}
    for n in range(runs):
        for v in versions if n % 2 else versions[::-1]:
            samples[v.name].append(await koan_ttft(v.http, v.tokens[0], fresh[v.name][n]))
    return samples


async def chatting(
    versions: list[Version], args: argparse.Namespace, fake: subprocess.Popen[str]
) -> dict[str, list[float]]:
    pace_provider(fake, args.token_interval)
    rng = random.Random(7)
    chats = {v.name: [await v.conversation(t) for t in v.tokens] for v in versions}
    samples: dict[str, list[float]] = {v.name: [] for v in versions}

    async def learner(n: int) -> None:
        low, high = args.think
        await asyncio.sleep(rng.uniform(0, high))  # not all at once
        for m in range(args.messages):
            v = versions[(m + n) % 2]
            samples[v.name].append(await koan_ttft(v.http, v.tokens[n], chats[v.name][n]))
            await asyncio.sleep(rng.uniform(low, high))

    await asyncio.gather(*(learner(n) for n in range(args.learners)))
    return samples


def report(label: str, samples: dict[str, list[float]]) -> str:
    base, head = (statistics.median(s) * 1000 for s in samples.values())
    count = len(next(iter(samples.values())))
    return f"| {label} | {count} | {base:.2f} ms | {head:.2f} ms | {head - base:+.2f} ms |"


async def run(args: argparse.Namespace) -> str:
    fake, llm_url = tutor.start_fake_provider()
    learners = max(1, args.learners)
    versions: list[Version] = []
    try:
        with worktree(args.baseline) as baseline:
            versions.append(await start("base", args, llm_url, learners, str(baseline / "src")))
            versions.append(await start("head", args, llm_url, learners, ""))
            rows = [
                f"| load | samples each | {args.baseline} | checkout | difference |",
                "|---|---|---|---|---|",
                report("sequential", await sequential(versions, args.runs)),
            ]
            if args.learners:
                low, high = args.think
                label = f"{args.learners} learners chatting (think {low:g}-{high:g} s)"
                rows.append(report(label, await chatting(versions, args, fake)))
    finally:
        for version in versions:
            await stop(version, args)
        fake.communicate("", timeout=15)
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="git ref to compare the checkout with")
    parser.add_argument("--runs", type=int, default=500, help="sequential questions per version")
    parser.add_argument("--learners", type=int, default=0, help="0: sequential only")
    parser.add_argument("--messages", type=int, default=6, help="each learner asks")
    parser.add_argument("--think", type=float, nargs=2, default=(5.0, 15.0), metavar=("MIN", "MAX"))
    parser.add_argument("--token-interval", type=float, default=0.02)
    parser.add_argument("--database-url", default="", help="PostgreSQL server (admin) URL")
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()
    print(asyncio.run(run(args)))  # noqa: T201


if __name__ == "__main__":
    main()
