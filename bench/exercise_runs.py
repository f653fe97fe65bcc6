"""What one grading of each built-in exercise costs: its reference solution run against its tests.

    .venv/bin/python bench/exercise_runs.py [--runs 3] [--top 15] [--language python]

A warm sandbox with one slot grades every exercise's reference solution `--runs` times, one
at a time; reported per exercise is the fastest run (end to end through Sandbox.grade). The
tests decide most of it, and a class that submits together pays it once per learner: the
heaviest exercises set how long a burst of submissions takes (bench/class_burst.py). Prints the
median over the bank, then the `--top` heaviest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from koan.exercises.pack import builtin_pack_path, read_pack
from koan.grading.sandbox import Sandbox, SandboxConfig, Tier


async def bench(args: argparse.Namespace) -> list[tuple[float, str, str]]:
    box = Sandbox(SandboxConfig(slots=1, min_tier=Tier.RLIMITS))
    await box.start()
    rows: list[tuple[float, str, str]] = []
    try:
        for entry in read_pack(builtin_pack_path()):
            spec = entry.spec
            if spec is None or spec.language != args.language:
                continue
            best = float("inf")
            status = ""
            for _ in range(args.runs):
                started = time.perf_counter()
                report = await box.grade(
                    language=spec.language, code=spec.solution, tests=spec.tests
                )
                best = min(best, time.perf_counter() - started)
                status = report.status
            rows.append((best * 1000, spec.slug, status))
    finally:
        await box.close()
    return sorted(rows, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--language", default="python", choices=["python", "javascript"])
    args = parser.parse_args()
    rows = asyncio.run(bench(args))
    median = statistics.median(ms for ms, _, _ in rows)
    print(f"{len(rows)} {args.language} exercises, median run {median:.1f} ms\n")  # noqa: T201
    print("| exercise | fastest run ms | verdict |\n|---|---:|---|")  # noqa: T201
    for ms, slug, status in rows[: args.top]:
        print(f"| {slug} | {ms:.1f} | {status} |")  # noqa: T201


if __name__ == "__main__":
    main()
