"""Grading latency through the service layer, and `koan exercises validate` on the bank.

    .venv/bin/python bench/grading.py [--runs 100] [--concurrent 200] [--write]

Targets (2 cores): median under 30 ms per grading (under 10 ms with a warm fork-server),
at least 50 gradings/s at full concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import summary_ms, write_section  # noqa: E402

from koan.config import Settings  # noqa: E402
from koan.db import transactional  # noqa: E402
from koan.exercises.bank import import_specs  # noqa: E402
from koan.exercises.pack import ExerciseSpec  # noqa: E402
from koan.exercises.repository import exercises_by_slug  # noqa: E402
from koan.exercises.submit import submit  # noqa: E402
from koan.migrate import upgrade  # noqa: E402
from koan.models import User  # noqa: E402
from koan.resources import Resources  # noqa: E402
from koan.users import service as users  # noqa: E402

SPEC = ExerciseSpec(
    slug="bench-add",
    title="Add",
    language="python",
    difficulty=1,
    skills=["functions"],
    statement="add",
    starter_code="def add(a, b):\n    pass\n",
    solution="def add(a, b):\n    return a + b\n",
    tests="from solution import add\n\n"
    + "".join(f"def test_{i}():\n    assert add({i}, 1) == {i + 1}\n\n" for i in range(5)),
    hints=["+"],
)
CODE = "def add(a, b):\n    return a + b\n"


async def run(runs: int, concurrent: int) -> dict[str, float]:
    tmp = tempfile.mkdtemp(prefix="koan-bench-")
    url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    await asyncio.to_thread(upgrade, url)
    # One learner sends every submission here: lift the per-learner cap and rate limit.
    settings = Settings(
        database_url=url,
        data_dir=Path(tmp),
        sandbox_queue_size=concurrent,
        submissions_in_flight=concurrent,
        submission_limit=f"{10 * (runs + concurrent)}/minute",
    )
    res = Resources.from_settings(settings)
    await res.start()
    async with res.session_factory() as session, transactional(session):
        await import_specs(session, [SPEC], source="imported")
        user = await users.create_user(
            session, email="bench@example.com", name="Bench", password_hash="x"
        )
        user_id = user.id
    async with res.session_factory() as session:
        exercise = (await exercises_by_slug(session, [SPEC.slug]))[SPEC.slug]
        user = await session.get(User, user_id)
        assert user is not None

    async def one() -> float:
        started = time.perf_counter()
        async with res.session_factory() as session, transactional(session):
            submission = (await submit(session, res, user, exercise, CODE)).submission
            assert submission.status == "passed", submission.stderr
        return time.perf_counter() - started

    for _ in range(5):  # warm-up
        await one()
    sequential = [await one() for _ in range(runs)]
    started = time.perf_counter()
    together = await asyncio.gather(*(one() for _ in range(concurrent)))
    elapsed = time.perf_counter() - started
    tier = res.sandbox.tier.name.lower()
    await res.close()
    med, p95 = summary_ms(sequential)
    cmed, cp95 = summary_ms(list(together))
    return {
        "tier": tier,  # type: ignore[dict-item]
        "seq_median": med,
        "seq_p95": p95,
        "conc_median": cmed,
        "conc_p95": cp95,
        "throughput": concurrent / elapsed,
    }


def validate_time() -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "koan"), "exercises", "validate", "--builtin"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    return time.perf_counter() - started, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    r = asyncio.run(run(args.runs, args.concurrent))
    seconds, code = validate_time()
    table = (
        "| measure | value |\n|---|---|\n"
        f"| sandbox tier | {r['tier']} |\n"
        f"| sequential grading, median | {r['seq_median']:.1f} ms |\n"
        f"| sequential grading, p95 | {r['seq_p95']:.1f} ms |\n"
        f"| {args.concurrent} concurrent gradings, median latency | {r['conc_median']:.1f} ms |\n"
        f"| {args.concurrent} concurrent gradings, p95 latency | {r['conc_p95']:.1f} ms |\n"
        f"| throughput at full concurrency | {r['throughput']:.0f} gradings/s |\n"
        f"| `koan exercises validate --builtin` (exit {code}) | {seconds:.1f} s |\n"
    )
    print(table)
    if args.write:
        body = (
            "A Python exercise (a function and 5 asserts) graded through the service layer "
            "(record the submission, commit, grade in the sandbox, record the verdict) on "
            "SQLite, then the whole built-in bank validated (reference solution and starter "
            "of every exercise).\n\n"
            f"Command: `.venv/bin/python bench/grading.py --runs {args.runs} "
            f"--concurrent {args.concurrent} --write`\n\n" + table
        )
        write_section("Grading", body)


if __name__ == "__main__":
    main()
