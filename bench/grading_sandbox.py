"""Benchmark: grading latency and throughput of the sandbox, Python and JavaScript.

A small exercise (a function and five asserts) is graded sequentially on a warm sandbox (median
and p95 latency, end to end through Sandbox.grade), then many at once across every slot
(throughput). A last pass counts the CPU time the whole process tree spends per grading
(server, launchers, runs): a busy machine does not distort it the way it distorts latency.
Prints a Markdown table.

    .venv/bin/python bench/grading_sandbox.py [--runs 300] [--js-runs 40] [--slots N] [--pause S]

`--pause S` waits S seconds between the sequential gradings (a learner reading a result): a
slot then has node started for its next JavaScript run (docs/sandbox.md, spare node), which
back-to-back gradings leave no time for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass

from _common import tree_cpu_seconds

from koan.grading.sandbox import Sandbox, SandboxConfig, Tier

PYTHON_CODE = """\
def fizzbuzz(n):
    if n % 15 == 0:
        return "FizzBuzz"
    if n % 3 == 0:
        return "Fizz"
    if n % 5 == 0:
        return "Buzz"
    return str(n)
"""
PYTHON_TESTS = """\
from solution import fizzbuzz


def test_fizzbuzz():
    assert fizzbuzz(1) == "1"
    assert fizzbuzz(3) == "Fizz"
    assert fizzbuzz(5) == "Buzz"
    assert fizzbuzz(15) == "FizzBuzz"
    assert fizzbuzz(98) == "98"
"""
JS_CODE = """\
function fizzbuzz(n) {
  if (n % 15 === 0) return 'FizzBuzz';
  if (n % 3 === 0) return 'Fizz';
  if (n % 5 === 0) return 'Buzz';
  return String(n);
}
module.exports = { fizzbuzz };
"""
JS_TESTS = """\
const assert = require('node:assert');
const { fizzbuzz } = require('./solution.js');

test('fizzbuzz', () => {
  assert.strictEqual(fizzbuzz(1), '1');
  assert.strictEqual(fizzbuzz(3), 'Fizz');
  assert.strictEqual(fizzbuzz(5), 'Buzz');
  assert.strictEqual(fizzbuzz(15), 'FizzBuzz');
  assert.strictEqual(fizzbuzz(98), '98');
});
"""
EXERCISES = {"python": (PYTHON_CODE, PYTHON_TESTS), "javascript": (JS_CODE, JS_TESTS)}


@dataclass
class Row:
    language: str
    median_ms: float
    p95_ms: float
    per_second: float
    runs: int
    cpu_ms: float = 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def grade(sandbox: Sandbox, language: str) -> None:
    code, tests = EXERCISES[language]
    report = await sandbox.grade(language=language, code=code, tests=tests)  # type: ignore[arg-type]
    if report.status != "passed":
        raise SystemExit(f"benchmark exercise did not pass: {report}")


def sandbox_cpu_seconds(sandbox: Sandbox) -> float:
    """CPU used so far by this process and every launcher tree of the sandbox."""
    launchers = [slot.zygote._process for slot in sandbox._slots]  # noqa: SLF001
    return time.process_time() + sum(tree_cpu_seconds(p.pid) for p in launchers if p)


async def cpu_per_grading(config: SandboxConfig, language: str, runs: int) -> float:
    """Milliseconds of CPU per grading, everything included: server, launchers, runs."""
    async with Sandbox(config) as sandbox:
        await grade(sandbox, language)
        before = sandbox_cpu_seconds(sandbox)
        for _ in range(runs):
            await grade(sandbox, language)
        return (sandbox_cpu_seconds(sandbox) - before) * 1000 / runs


async def measure(sandbox: Sandbox, language: str, runs: int, pause: float = 0.0) -> Row:
    async def one() -> None:
        await grade(sandbox, language)

    for _ in range(3):  # warm-up
        await one()
    latencies = []
    for _ in range(runs):
        await asyncio.sleep(pause)
        started = time.perf_counter()
        await one()
        latencies.append((time.perf_counter() - started) * 1000)

    batch = runs * 2
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(batch)))
    per_second = batch / (time.perf_counter() - started)
    return Row(
        language,
        statistics.median(latencies),
        percentile(latencies, 0.95),
        per_second,
        runs,
    )


async def main(runs: int, js_runs: int, slots: int, pause: float) -> None:
    config = SandboxConfig(slots=slots, queue_size=max(runs, js_runs) * 2, min_tier=Tier.RLIMITS)
    async with Sandbox(config) as sandbox:
        rows = [await measure(sandbox, "python", runs, pause)]
        if os.access(config.node, os.X_OK):
            rows.append(await measure(sandbox, "javascript", js_runs, pause))
        tier = sandbox.tier.name
    for row in rows:
        row.cpu_ms = await cpu_per_grading(config, row.language, row.runs)
    out = sys.stdout
    out.write(f"Tier {tier}, {slots} slots, {os.cpu_count()} CPUs\n\n")
    out.write(
        "| language | sequential median | sequential p95 | throughput (all slots) "
        "| CPU per grading |\n"
    )
    out.write("|---|---|---|---|---|\n")
    for row in rows:
        out.write(
            f"| {row.language} | {row.median_ms:.1f} ms | {row.p95_ms:.1f} ms "
            f"| {row.per_second:.0f} gradings/s | {row.cpu_ms:.1f} ms |\n"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="sequential Python gradings")
    parser.add_argument("--js-runs", type=int, default=40, help="sequential JavaScript gradings")
    parser.add_argument("--slots", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between gradings")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.js_runs, args.slots, args.pause))
