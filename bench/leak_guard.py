"""How well the tutor's leak guard withholds fixes and lets Socratic replies through.

Builds buggy variants of every reference solution in the built-in bank (bench/leak_corpus.py),
keeps those that fail a test, scripts four kinds of model reply for each (the whole fixed
program, only the changed lines, the fix in prose with inline spans, and benign questions that
quote the learner's code), and sends each through the real chat path: a fake OpenAI-compatible
provider on loopback, the app (in process, SQLite), and the grading sandbox. Every reply is
asked twice, with the guard on (socratic) and off (open), in turns, so the added latency is
the difference between the two.

    .venv/bin/python bench/leak_guard.py [--per-exercise 3] [--write]
    .venv/bin/python bench/leak_guard.py --direct   # the guard alone, no app (faster)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import percentile, write_section  # noqa: E402
from bench.leak_corpus import KINDS, Mutant, bank, mutants, replies  # noqa: E402

from koan.config import Settings  # noqa: E402
from koan.exercises.pack import ExerciseSpec  # noqa: E402
from koan.grading.limits import sandbox_config  # noqa: E402
from koan.grading.sandbox import Limits, Sandbox  # noqa: E402
from koan.llm.leak_check import (  # noqa: E402
    Attempt,
    ExerciseSecrets,
    RunResult,
    Strictness,
    check,
)

GUARD_LIMITS = Limits(cpu_s=1.0, wall_s=2.0)


async def graded_mutants(
    sandbox: Sandbox, specs: list[ExerciseSpec], per_exercise: int
) -> list[tuple[ExerciseSpec, Mutant, frozenset[str]]]:
    """The variants that fail at least one test, with the tests each fails."""
    kept: list[tuple[ExerciseSpec, Mutant, frozenset[str]]] = []
    for spec in specs:
        count = 0
        for mutant in mutants(spec, per_exercise):
            if count >= per_exercise:
                break
            report = await sandbox.grade(
                language=spec.language,  # type: ignore[arg-type]
                code=mutant.code,
                tests=spec.tests,
                limits=GUARD_LIMITS,
            )
            if report.status == "passed":
                continue
            failed = frozenset(t.name for t in report.tests if t.status != "passed")
            if not failed and not report.tests:
                failed = frozenset({"*"})
            kept.append((spec, mutant, failed))
            count += 1
    return kept


def runner_for(sandbox: Sandbox, spec: ExerciseSpec):  # type: ignore[no-untyped-def]
    async def run(code: str) -> RunResult | None:
        report = await sandbox.grade(
            language=spec.language,  # type: ignore[arg-type]
            code=code,
            tests=spec.tests,
            limits=GUARD_LIMITS,
        )
        return RunResult(
            frozenset(t.name for t in report.tests if t.status == "passed"),
            report.status == "passed",
        )

    return run


async def direct(args: argparse.Namespace) -> None:
    settings = Settings(env="test", sandbox_slots=2, sandbox_min_tier=None, _env_file=None)
    async with Sandbox(sandbox_config(settings)) as sandbox:
        specs = [s for s in bank() if not args.only or args.only in s.slug]
        corpus = await graded_mutants(sandbox, specs, args.per_exercise)
        print(f"{len(corpus)} failing variants from {len(specs)} exercises")
        withheld: dict[str, list[bool]] = defaultdict(list)
        timing: dict[str, list[float]] = defaultdict(list)
        misses: list[str] = []
        for n, (spec, mutant, failed) in enumerate(corpus):
            secrets = ExerciseSecrets(
                solution=spec.solution,
                starter=spec.starter_code,
                language=spec.language,
                attempt=Attempt(mutant.code, failed),
                strictness=Strictness.SOCRATIC,
            )
            for kind, reply in replies(mutant, spec.solution, n).items():
                started = time.perf_counter()
                verdict = await check(reply, secrets, runner_for(sandbox, spec))
                timing[kind].append(time.perf_counter() - started)
                withheld[kind].append(verdict.leak)
                if verdict.leak == (kind == "benign"):
                    change = f"{mutant.buggy_line.strip()!r} -> {mutant.fixed_line.strip()!r}"
                    misses.append(
                        f"[{kind}] {spec.slug} {mutant.operator} line {mutant.line}: {change}\n"
                        f"    {reply[:160]!r}"
                    )
        for kind in KINDS:
            share = sum(withheld[kind]) / max(1, len(withheld[kind]))
            ms = [t * 1000 for t in timing[kind]]
            print(
                f"{kind:7} withheld {share:6.1%} of {len(withheld[kind])}  "
                f"check p50 {statistics.median(ms):.1f} ms p95 {percentile(ms, 95):.1f} ms"
            )
        if args.misses:
            print("\n".join(misses[: args.misses]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-exercise", type=int, default=3)
    parser.add_argument("--direct", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--misses", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.direct:
        asyncio.run(direct(args))
        return
    raise SystemExit("through the chat path: see below")


if __name__ == "__main__":
    main()
    _ = write_section
