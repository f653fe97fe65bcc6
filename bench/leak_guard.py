"""How well the tutor's leak guard withholds fixes and lets Socratic replies through.

Builds buggy variants of every reference solution in the built-in bank (bench/leak_corpus.py),
keeps those that fail a test, scripts four kinds of model reply for each (the whole fixed
program, only the changed lines, the fix in prose with inline spans, and benign questions that
quote the learner's code), and checks each with the guard, the grading sandbox running the
candidate programs. Prints the share withheld per kind, the benign share delivered, and the
check's time (the latency the guard adds) at p50 and p95. Sending the replies through the chat
path (fake provider, app, sandbox) is not written yet: `--direct` is the only mode.

    .venv/bin/python bench/leak_guard.py --direct [--per-exercise 1] [--misses 20] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import percentile, write_section  # noqa: E402
from bench.leak_corpus import KINDS, Mutant, bank, mutants, replies  # noqa: E402

from koan.chat.context import GUARD_LIMITS, GUARD_TRIAL_S  # noqa: E402
from koan.config import Settings  # noqa: E402
from koan.exercises.pack import ExerciseSpec  # noqa: E402
from koan.grading.limits import sandbox_config  # noqa: E402
from koan.grading.sandbox import Sandbox  # noqa: E402
from koan.llm.leak_check import (  # noqa: E402
    Attempt,
    ExerciseSecrets,
    Runner,
    Strictness,
    Trial,
    check,
)


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


def runner_for(sandbox: Sandbox, spec: ExerciseSpec) -> Runner:
    async def run(programs: Sequence[str], failed: frozenset[str] | None) -> Trial | None:
        report = await sandbox.try_programs(
            language=spec.language,  # type: ignore[arg-type]
            programs=programs,
            tests=spec.tests,
            only=failed,
            stop="all" if failed is None else "any",
            limits=GUARD_LIMITS,
            total_wall_s=GUARD_TRIAL_S,
        )
        tried = sum(1 for outcome in report.outcomes if outcome.status != "not_run")
        return Trial(report.stopped_at, tried)

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
        rows = []
        for kind in KINDS:
            share = sum(withheld[kind]) / max(1, len(withheld[kind]))
            ms = [t * 1000 for t in timing[kind]]
            shown = f"{1 - share:.1%} delivered" if kind == "benign" else f"{share:.1%} withheld"
            line = (
                f"| {kind} | {len(withheld[kind])} | {shown} | "
                f"{statistics.median(ms):.1f} / {percentile(ms, 95):.1f} ms |"
            )
            rows.append(line)
            print(line)
        everything = [t * 1000 for kind in KINDS for t in timing[kind]]
        overall = f"{statistics.median(everything):.1f} / {percentile(everything, 95):.1f} ms"
        print(f"all replies: check p50 / p95 {overall}")
        if args.misses:
            print("\n".join(misses[: args.misses]))
        if args.write:
            flags = f"--direct --per-exercise {args.per_exercise} --write"
            command = f"`.venv/bin/python bench/leak_guard.py {flags}`"
            write_section(
                "Tutor leak guard",
                f"Command: {command}\n\n"
                f"{len(corpus)} buggy variants (mutants of the bank's reference solutions that "
                f"fail a test) from {len(specs)} exercises; one scripted reply of each kind per "
                "variant, "
                "checked by the guard (socratic) with the grading sandbox (2 slots, full tier) "
                "running the candidate programs. Added latency is the guard's check.\n\n"
                "| reply kind | replies | outcome | check p50 / p95 |\n|---|---|---|---|\n"
                + "\n".join(rows)
                + f"\n\nAll replies together: check p50 / p95 {overall}.",
            )


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
    raise SystemExit("only --direct is implemented: the chat-path mode is still to be written")


if __name__ == "__main__":
    main()
