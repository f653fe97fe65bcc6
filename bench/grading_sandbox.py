"""Benchmark: grading latency and throughput of the sandbox, Python and JavaScript.

A small exercise (a function and five asserts) is graded sequentially on a warm sandbox (median
and p95 latency, end to end through Sandbox.grade), then many at once across every slot
(throughput). Prints a Markdown table.

    .venv/bin/python bench/grading_sandbox.py [--runs 300] [--js-runs 40] [--slots N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass

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


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measure(sandbox: Sandbox, language: str, runs: int) -> Row:
    code, tests = EXERCISES[language]

    async def grade() -> None:
        report = await sandbox.grade(language=language, code=code, tests=tests)  # type: ignore[arg-type]
        if report.status != "passed":
            raise SystemExit(f"benchmark exercise did not pass: {report}")

    for _ in range(3):  # warm-up
        await grade()
    latencies = []
    for _ in range(runs):
        started = time.perf_counter()
        await grade()
        latencies.append((time.perf_counter() - started) * 1000)

    batch = runs * 2
    started = time.perf_counter()
    await asyncio.gather(*(grade() for _ in range(batch)))
    per_second = batch / (time.perf_counter() - started)
    return Row(
        language,
        statistics.median(latencies),
        percentile(latencies, 0.95),
        per_second,
        runs,
    )


async def main(runs: int, js_runs: int, slots: int) -> None:
    config = SandboxConfig(slots=slots, queue_size=max(runs, js_runs) * 2, min_tier=Tier.RLIMITS)
    async with Sandbox(config) as sandbox:
        rows = [await measure(sandbox, "python", runs)]
        if os.access(config.node, os.X_OK):
            rows.append(await measure(sandbox, "javascript", js_runs))
        tier = sandbox.tier.name
    out = sys.stdout
    out.write(f"Tier {tier}, {slots} slots, {os.cpu_count()} CPUs\n\n")
    out.write("| language | sequential median | sequential p95 | throughput (all slots) |\n")
    out.write("|---|---|---|---|\n")
    for row in rows:
        out.write(
            f"| {row.language} | {row.median_ms:.1f} ms | {row.p95_ms:.1f} ms "
            f"| {row.per_second:.0f} gradings/s |\n"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="sequential Python gradings")
    parser.add_argument("--js-runs", type=int, default=40, help="sequential JavaScript gradings")
    parser.add_argument("--slots", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.js_runs, args.slots))
