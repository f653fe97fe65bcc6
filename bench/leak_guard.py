"""How well the tutor's leak guard withholds fixes and lets Socratic replies through, and what it
adds to a reply's latency.

Builds buggy variants of every reference solution in the built-in bank (bench/leak_corpus.py),
keeps those that fail a test, and scripts four kinds of model reply for each: the whole fixed
program, only the changed lines, the fix in prose with inline spans, and benign questions that
quote the learner's code; and three more: the changed line encoded (base64, hex, backwards,
ROT13 or a list of characters, in turn; and, a kind of its own, base32, percent-encoding, `\\u`
escapes or character references), the change said in words where it has words (an operator,
`and`/`or`, a number, swapped arguments or parameters), and (to be delivered) the learner's own
line encoded the same ways.

Default mode, the real chat path: Koan's app in this process (httpx against the ASGI app, SQLite,
the grading sandbox with 2 slots), its OpenAI-compatible provider a fake server on loopback in
this process (tests/fixtures/llm_server.py) that streams the scripted reply. For each variant
the learner submits the buggy code through the API (graded for real, so the guard reads the
failing tests from the stored submission), reads the result (`--think` seconds, 0.5 by
default: meanwhile a slot starts node for its next JavaScript run), then asks in an exercise
conversation with
`Accept: text/event-stream`, once at socratic and once at open (where the guard only scores code
against the solution and runs nothing: the baseline), in alternating order. A reply counts as
withheld when the stream carries a `replace` event.
Latency: the guard's own time per reply (every check the stream made, timed around
`LeakGuard.check`), and the whole request at socratic minus the same reply at open
(delivered replies only: a withheld reply also waits for its regeneration, a second model
call). The fake model sends the whole reply at once unless `--token-interval` paces its words
(then checks made while it still writes overlap with it, as with a real model). An extra kind,
wrong suggestions (another change of the buggy line, in an inline span), measures replies
whose code the guard runs and then lets through; one that happens to fix the bug is withheld.

`--direct` calls the guard without the app (the check alone, as before).

    .venv/bin/python bench/leak_guard.py [--per-exercise 1] [--think 0.5] [--token-interval 0]
        [--misses 20] [--nothing-known] [--write]

`--nothing-known` forgets what earlier trials decided (`KnownPrograms`), so every suggestion's
program runs in the sandbox, as for suggestions never seen before.
    .venv/bin/python bench/leak_guard.py --direct [--per-exercise 1] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from bench._common import percentile, write_section  # noqa: E402
from bench.leak_corpus import (  # noqa: E402
    DISGUISED_KINDS,
    KINDS,
    Mutant,
    bank,
    disguised,
    mutants,
    replies,
    wrong_suggestion,
)
from sqlalchemy import select  # noqa: E402
from tests.fixtures.factories import bearer, create_user  # noqa: E402
from tests.fixtures.llm_server import FakeLLMServer, Reply  # noqa: E402

from koan.app import create_app  # noqa: E402
from koan.chat import context as chat_context  # noqa: E402
from koan.chat.context import GUARD_LIMITS, GUARD_TRIAL_S  # noqa: E402
from koan.config import Settings  # noqa: E402
from koan.db import transactional  # noqa: E402
from koan.exercises.bank import import_specs  # noqa: E402
from koan.exercises.pack import ExerciseSpec  # noqa: E402
from koan.grading.limits import sandbox_config  # noqa: E402
from koan.grading.sandbox import Sandbox  # noqa: E402
from koan.llm.leak_check import (  # noqa: E402
    Attempt,
    ExerciseSecrets,
    KnownPrograms,
    Runner,
    Strictness,
    Trial,
    Verdict,
    check,
)
from koan.migrate import upgrade  # noqa: E402
from koan.models import Exercise  # noqa: E402
from koan.resources import Resources  # noqa: E402

# Replies that must be delivered: Socratic ones, and (an extra kind, not one of the four the
# targets are about) wrong suggestions, whose code the guard runs before letting them through.
DELIVERED = ("benign", "benign encoded", "benign encoded, more", "wrong")
REGENERATED = "What does the failing test expect, and where does your code start to differ?"
MODEL = "bench-model"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5-minute {five:.1f})"


@dataclass
class Results:
    """Per reply kind: withheld or not, and times in ms; misses to show."""

    withheld: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    guard_ms: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    added_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    trial_ms: list[float] = field(default_factory=list)  # replies whose check ran a trial
    misses: list[str] = field(default_factory=list)

    def miss(self, kind: str, spec: ExerciseSpec, mutant: Mutant, reply: str) -> None:
        change = f"{mutant.buggy_line.strip()!r} -> {mutant.fixed_line.strip()!r}"
        self.misses.append(
            f"[{kind}] {spec.slug} {mutant.operator} line {mutant.line}: {change}\n"
            f"    {reply[:160]!r}"
        )


def ms_pair(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {percentile(values, 95):.1f} ms"


def scripted(mutant: Mutant, solution: str, n: int) -> dict[str, str]:
    """The four kinds of reply, the disguised ones, and a wrong suggestion where the line has
    one."""
    kinds = replies(mutant, solution, n) | disguised(mutant, n)
    wrong = wrong_suggestion(mutant, n)
    if wrong is not None:
        kinds["wrong"] = wrong
    return kinds


def rows(results: Results, *, chat: bool) -> list[str]:
    out = []
    for kind in (*KINDS, *DISGUISED_KINDS, "wrong"):
        done = results.withheld[kind]
        share = sum(done) / max(1, len(done))
        shown = f"{1 - share:.1%} delivered" if kind in DELIVERED else f"{share:.1%} withheld"
        cells = [kind if kind != "wrong" else "wrong suggestion (extra)", str(len(done)), shown]
        for language in ("python", "javascript"):
            cells.append(ms_pair(results.guard_ms[(kind, language)]))
        if chat:
            cells.append(ms_pair(results.added_ms[kind]))
        out.append("| " + " | ".join(cells) + " |")
    return out


def totals(results: Results) -> str:
    every = [t for times in results.guard_ms.values() for t in times]
    text = f"every reply {ms_pair(every)}"
    text += f"; the {len(results.trial_ms)} replies whose check ran programs in the sandbox"
    text += f" {ms_pair(results.trial_ms)}"
    for language in ("python", "javascript"):
        mine = [t for (_, lang), times in results.guard_ms.items() if lang == language
                for t in times]  # fmt: skip
        text += f"; {language} {ms_pair(mine)}"
    return text


# -- the corpus ----------------------------------------------------------------------------------


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
                language=spec.language,
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


# -- the guard alone -----------------------------------------------------------------------------


def runner_for(sandbox: Sandbox, spec: ExerciseSpec, trials: list[int]) -> Runner:
    async def run(programs: Sequence[str], failed: frozenset[str] | None) -> Trial | None:
        trials.append(len(programs))
        report = await sandbox.try_programs(
            language=spec.language,
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


async def direct(args: argparse.Namespace, specs: list[ExerciseSpec]) -> tuple[Results, int]:
    settings = Settings(env="test", sandbox_slots=2, sandbox_min_tier=None, _env_file=None)
    results = Results()
    async with Sandbox(sandbox_config(settings)) as sandbox:
        corpus = await graded_mutants(sandbox, specs, args.per_exercise)
        print(f"{len(corpus)} failing variants from {len(specs)} exercises; load {load()}")
        for n, (spec, mutant, failed) in enumerate(corpus):
            secrets = ExerciseSecrets(
                solution=spec.solution,
                starter=spec.starter_code,
                language=spec.language,
                attempt=Attempt(mutant.code, failed),
                strictness=Strictness.SOCRATIC,
            )
            for kind, reply in scripted(mutant, spec.solution, n).items():
                trials: list[int] = []
                started = time.perf_counter()
                verdict = await check(reply, secrets, runner_for(sandbox, spec, trials))
                elapsed = (time.perf_counter() - started) * 1000
                results.guard_ms[(kind, spec.language)].append(elapsed)
                if trials:
                    results.trial_ms.append(elapsed)
                results.withheld[kind].append(verdict.leak)
                if verdict.leak == (kind in DELIVERED) and kind != "wrong":
                    results.miss(kind, spec, mutant, reply)
    return results, len(corpus)


# -- the chat path -------------------------------------------------------------------------------


class GuardClock:
    """Time spent in LeakGuard.check during the current request, and the trials it ran."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.trials = 0
        original = chat_context.LeakGuard.check

        async def timed(
            guard: chat_context.LeakGuard, reply: str, tried: set[str] | None = None
        ) -> Verdict:
            started = time.perf_counter()
            try:
                return await original(guard, reply, tried)
            finally:
                self.seconds += time.perf_counter() - started

        chat_context.LeakGuard.check = timed  # type: ignore[method-assign,assignment]

    def count(self, sandbox: Sandbox) -> None:
        """Count the sandbox's trials."""
        original = sandbox.try_programs

        async def counted(**kwargs: Any) -> Any:
            self.trials += 1
            return await original(**kwargs)

        sandbox.try_programs = counted  # type: ignore[method-assign]


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.split("\n\n"):
        name, data = "message", None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if data is not None:
            events.append((name, data))
    return events


async def chat_path(args: argparse.Namespace, specs: list[ExerciseSpec]) -> tuple[Results, int]:
    results = Results()
    clock = GuardClock()
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeLLMServer(default=Reply(text=REGENERATED)) as provider,
    ):
        prices = Path(tmp) / "prices.yaml"
        prices.write_text(f"models:\n  {MODEL}: {{input: 0.1, output: 0.1}}\n")
        settings = Settings(
            env="test",
            secret_key="benchmark-secret-key-that-is-long-enough-012345",
            data_dir=Path(tmp),
            database_url=f"sqlite+aiosqlite:///{tmp}/koan.db",
            smtp_host="",
            password_time_cost=1,
            password_memory_kib=8,
            password_parallelism=1,
            sandbox_slots=2,
            llm_provider="openai",
            llm_base_url=provider.openai_base_url,
            llm_model=MODEL,
            llm_pricing_file=prices,
            llm_chat_limit="100000/minute",
            llm_user_daily_budget_usd=Decimal(1000),
            submission_limit="100000/minute",
            tutor_strictness="socratic",
            _env_file=None,
        )
        await asyncio.to_thread(upgrade, settings.effective_database_url)
        res = Resources.from_settings(settings)
        await res.start()
        clock.count(res.sandbox)
        try:
            async with res.session_factory() as session, transactional(session):
                await import_specs(session, specs, source="builtin")
            async with res.session_factory() as session, transactional(session):
                user = await create_user(session, res, onboarded=True, email="bench@example.com")
                headers = await bearer(session, res, user)
                rows = await session.execute(select(Exercise.slug, Exercise.id))
                ids = {slug: exercise_id for slug, exercise_id in rows}
            app = create_app(resources=res)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers=headers, timeout=60
            ) as client:
                corpus = 0
                print(f"{len(specs)} exercises; load {load()}")
                for spec in specs:
                    # Each variant is submitted (graded) just before it is asked about: the
                    # guard reads the failing tests from the latest stored submission.
                    async for mutant in failing(client, spec, ids[spec.slug], args.per_exercise):
                        corpus += 1
                        await asyncio.sleep(args.think)  # the learner reads the result
                        for kind, reply in scripted(mutant, spec.solution, corpus).items():
                            timed: dict[str, float] = {}
                            modes = ("socratic", "open") if corpus % 2 else ("open", "socratic")
                            for mode in modes:
                                update = {"tutor_strictness": mode}
                                res.settings = settings.model_copy(update=update)
                                clock.seconds, clock.trials = 0.0, 0
                                provider.reset()  # the regeneration gets the default reply
                                pace = args.token_interval
                                provider.script(Reply(text=reply, chunk_interval=pace))
                                started = time.perf_counter()
                                events = await ask(client, ids[spec.slug])
                                timed[mode] = (time.perf_counter() - started) * 1000
                                if mode == "socratic":
                                    withheld = any(name == "replace" for name, _ in events)
                                    guard_ms = clock.seconds * 1000
                                    trials = clock.trials
                            results.withheld[kind].append(withheld)
                            results.guard_ms[(kind, spec.language)].append(guard_ms)
                            if trials:
                                results.trial_ms.append(guard_ms)
                            if kind in DELIVERED and not withheld:
                                results.added_ms[kind].append(timed["socratic"] - timed["open"])
                            if withheld == (kind in DELIVERED) and kind != "wrong":
                                results.miss(kind, spec, mutant, reply)
        finally:
            await res.close()
    return results, corpus


async def failing(
    client: httpx.AsyncClient, spec: ExerciseSpec, exercise_id: uuid.UUID, per_exercise: int
) -> AsyncIterator[Mutant]:
    """Up to `per_exercise` variants of the exercise, each yielded right after it was submitted
    through the API and failed a test (variants that pass are skipped)."""
    count = 0
    for mutant in mutants(spec, per_exercise):
        if count >= per_exercise:
            return
        r = await client.post(
            f"/api/v1/exercises/{exercise_id}/submissions", json={"code": mutant.code}
        )
        assert r.status_code == 201, r.text
        if r.json()["status"] == "passed":
            continue
        count += 1
        yield mutant


async def ask(client: httpx.AsyncClient, exercise_id: uuid.UUID) -> list[tuple[str, Any]]:
    r = await client.post("/api/v1/conversations", json={"exercise_id": str(exercise_id)})
    assert r.status_code == 201, r.text
    conversation = r.json()["id"]
    r = await client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"content": "My test fails. Can you help?"},
        headers={"Accept": "text/event-stream"},
    )
    assert r.status_code == 200, r.text
    events = sse_events(r.text)
    assert events, r.text
    assert events[-1][0] == "done", r.text[-500:]
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-exercise", type=int, default=1)
    parser.add_argument("--direct", action="store_true", help="the guard alone, no app")
    parser.add_argument("--only", default="", help="exercises whose slug contains this")
    parser.add_argument("--misses", type=int, default=0)
    parser.add_argument(
        "--token-interval",
        type=float,
        default=0.0,
        help="seconds between the fake model's words (0: the whole reply at once)",
    )
    parser.add_argument(
        "--think", type=float, default=0.5, help="seconds between a submission and the question"
    )
    parser.add_argument(
        "--nothing-known",
        action="store_true",
        help="forget what earlier trials decided, so every suggestion's program runs",
    )
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.nothing_known:
        KnownPrograms.get = lambda self, key: None  # type: ignore[method-assign]
    specs = [s for s in bank() if not args.only or args.only in s.slug]
    before = load()
    started = time.perf_counter()
    mode = direct if args.direct else chat_path
    results, variants = asyncio.run(mode(args, specs))
    chat = not args.direct
    header = "| reply kind | replies | outcome | guard p50 / p95, Python | JavaScript |"
    rule = "|---|---|---|---|---|"
    if chat:
        header += " added end to end p50 / p95 |"
        rule += "---|"
    table = [header, rule, *rows(results, chat=chat)]
    print("\n".join(table))
    print(f"guard time: {totals(results)}")
    after = load()
    print(f"load average before {before}, after {after}; {time.perf_counter() - started:.0f} s")
    if args.misses:
        print("\n".join(results.misses[: args.misses]))
    if args.write:
        flags = " ".join(
            f for f in ("--direct" if args.direct else "", f"--per-exercise {args.per_exercise}",
                        "" if args.direct else f"--think {args.think:g}",
                        f"--token-interval {args.token_interval:g}" if args.token_interval else "")
            if f
        )  # fmt: skip
        write_section(
            "Tutor leak guard" + (" (the guard alone)" if args.direct else ""),
            f"Command: `.venv/bin/python bench/leak_guard.py {flags} --write`\n\n"
            f"{variants} buggy variants from {len(specs)} exercises, one scripted reply of each "
            "kind per variant; load average "
            + before
            + " before, "
            + after
            + " after.\n\n"
            + "\n".join(table)
            + f"\n\nGuard time: {totals(results)}.",
        )


if __name__ == "__main__":
    main()
