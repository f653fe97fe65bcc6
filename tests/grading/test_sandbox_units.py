"""The sandbox's pure parts: verdict parsing and status rules, limits, filters, pool, uids."""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import sys
import types

import pytest

from koan.errors import GraderBusy
from koan.grading.sandbox import GradeReport, Limits, TestOutcome, Tier
from koan.grading.sandbox.features import Features
from koan.grading.sandbox.harness.run_python import library_state, restore_library
from koan.grading.sandbox.limits import address_space_mb, cpu_rlimit
from koan.grading.sandbox.pool import SlotPool
from koan.grading.sandbox.seccomp_filter import SELF_PID_PLACEHOLDER, build_filters
from koan.grading.sandbox.tiers import candidates
from koan.grading.sandbox.uids import claim_uids, release_all
from koan.grading.sandbox.verdict import (
    SetupFailed,
    decide,
    decide_trial,
    parse_verdict,
    trial_end,
)
from koan.grading.sandbox.zygote import RunResult

NONCE = "n" * 32


def channel(*records: dict[str, object], nonce: str = NONCE) -> bytes:
    return b"".join(f"{nonce} {json.dumps(r)}\n".encode() for r in records)


def judged(
    verdict: bytes, run: RunResult | None = None, limits: Limits | None = None
) -> GradeReport:
    run = run or RunResult(status=0, verdict=verdict)
    run.verdict = verdict
    return decide(
        run,
        parse_verdict(verdict, NONCE),
        language="python",
        limits=limits or Limits(),
        tier=Tier.FULL,
        duration_ms=3,
    )


READY = {"t": "ready"}
PLAN = {"t": "plan", "tests": ["test_a", "test_b"]}
PASS_A = {"t": "test", "name": "test_a", "status": "passed", "message": ""}
PASS_B = {"t": "test", "name": "test_b", "status": "passed", "message": ""}
END = {"t": "end", "phase": "tests"}


def test_all_reported_passes_make_a_pass() -> None:
    report = judged(channel(READY, PLAN, PASS_A, PASS_B, END))

    assert report.status == "passed"
    assert (report.passed, report.total) == (2, 2)
    assert report.tier == Tier.FULL


def test_only_a_run_that_ended_at_import_started_no_test() -> None:
    failed = {"t": "test", "name": "test_a", "status": "error", "message": "SyntaxError"}
    broken = {**failed, "name": "test_b"}
    at_import = judged(channel(READY, PLAN, failed, broken, {"t": "end", "phase": "import"}))
    assert (at_import.status, at_import.tests_ran) == ("error", False)
    in_a_test = judged(channel(READY, PLAN, failed, PASS_B, END))
    assert (in_a_test.status, in_a_test.tests_ran) == ("failed", True)


def test_records_without_the_nonce_make_the_run_an_error() -> None:
    forged = channel(PASS_B, END, nonce="x" * 32)

    report = judged(channel(READY, PLAN, PASS_A) + forged)

    assert report.status == "error"
    assert report.passed == 1
    assert report.tests[1].status == "error"


def test_records_out_of_plan_order_are_tampering() -> None:
    report = judged(channel(READY, PLAN, PASS_B, PASS_A, END))

    assert report.status == "error"
    assert report.tests[1].status == "error"


def test_a_missing_end_record_is_an_error_naming_the_crash() -> None:
    crashed = RunResult(status=signal.SIGSEGV)  # wait status of a SIGSEGV death

    report = judged(channel(READY, PLAN, PASS_A), crashed)

    assert report.status == "error"
    assert report.tests[1] == TestOutcome(
        "test_b", "error", "the program crashed (SIGSEGV) before this test finished"
    )


def test_a_memory_error_makes_the_status_memory() -> None:
    oom = {
        "t": "test",
        "name": "test_a",
        "status": "error",
        "message": "MemoryError",
        "exc": "MemoryError",
    }

    report = judged(channel(READY, PLAN, oom, PASS_B, END))

    assert report.status == "memory"


def test_cpu_limit_signals_make_a_timeout() -> None:
    for status, cpu in ((signal.SIGXCPU, 2.0), (signal.SIGKILL, 3.0)):
        report = judged(channel(READY, PLAN), RunResult(status=status, cpu_s=cpu), Limits(cpu_s=2))
        assert report.status == "timeout"


def test_output_overflow_wins_over_everything_else() -> None:
    run = RunResult(status=signal.SIGKILL, killed="output", output_overflow=True)

    report = judged(channel(READY, PLAN, PASS_A, PASS_B, END), run)

    assert report.status == "output_limit"


def test_a_run_that_never_got_ready_is_a_sandbox_failure() -> None:
    with pytest.raises(SetupFailed):
        judged(b"", RunResult(status=70 << 8))
    with pytest.raises(SetupFailed, match="mount"):
        judged(channel({"t": "fatal", "message": "OSError: mount"}))


def test_no_tests_is_an_error() -> None:
    report = judged(channel(READY, {"t": "plan", "tests": []}, END))

    assert report.status == "error"


def trial(verdict: bytes, programs: int = 3, stop: str = "any"):  # type: ignore[no-untyped-def]
    return decide_trial(
        RunResult(status=0, verdict=verdict), verdict, NONCE, programs=programs, stop=stop,
        tier=Tier.FULL, duration_ms=3,
    )  # fmt: skip


def case(index: int, passed: list[str], status: str = "tests") -> dict[str, object]:
    return {"t": "case", "index": index, "status": status, "plan": ["a", "b"], "passed": passed}


def test_a_trial_reports_each_program_and_where_it_stopped() -> None:
    report = trial(channel(READY, case(0, []), case(1, ["b"]), {"t": "end", "phase": "trial"}))

    assert [o.status for o in report.outcomes] == ["tests", "tests", "not_run"]
    assert report.outcomes[1].passed == frozenset({"b"})
    assert report.stopped_at == 1


def test_a_trial_stops_reading_at_a_forged_or_misplaced_record() -> None:
    forged = channel(case(1, ["a", "b"]), nonce="x" * 32)
    report = trial(channel(READY, case(0, [])) + forged + channel(case(2, ["a"])))
    assert [o.status for o in report.outcomes] == ["tests", "not_run", "not_run"]
    assert report.stopped_at is None

    skipped = trial(channel(READY, case(1, ["a"])))
    assert [o.status for o in skipped.outcomes] == ["not_run"] * 3


def test_a_trials_verdict_is_complete_at_its_own_end_record_not_a_forged_one() -> None:
    end = {"t": "end", "phase": "trial"}
    first = channel(READY, case(0, []))
    read, ended = trial_end(first, NONCE)
    assert (read, ended) == (len(first), False)

    forged = first + channel(end, nonce="x" * 32)
    assert trial_end(forged, NONCE, read) == (len(forged), False)

    cut = forged + channel(case(1, ["a"])) + channel(end)[:-1]  # the end's line is not whole
    assert trial_end(cut, NONCE, read)[1] is False
    whole = cut + b"\n"
    assert trial_end(whole, NONCE, read) == (len(whole), True)
    assert trial(whole).stopped_at is None  # the forged end stops the reading, as before


def test_a_trial_counts_only_planned_tests_and_nothing_from_a_tampered_program() -> None:
    report = trial(channel(READY, case(0, ["zzz"]), case(1, ["a"], status="tampered")))

    assert report.outcomes[0].passed == frozenset()
    assert report.outcomes[1].passed == frozenset()
    assert report.stopped_at is None


def test_a_trial_with_stop_all_stops_only_where_everything_passed() -> None:
    report = trial(channel(READY, case(0, ["a"]), case(1, ["a", "b"])), stop="all")

    assert report.stopped_at == 1


def test_a_trial_that_never_got_ready_is_a_sandbox_failure() -> None:
    with pytest.raises(SetupFailed):
        trial(b"")
    with pytest.raises(SetupFailed, match="mount"):
        trial(channel({"t": "fatal", "message": "mount: EPERM"}))


def test_limits_are_capped_and_validated() -> None:
    capped = Limits(cpu_s=100, memory_mb=8).capped(Limits(cpu_s=5, memory_mb=512))

    assert (capped.cpu_s, capped.memory_mb) == (5, 8)
    with pytest.raises(ValueError, match="cpu_s"):
        Limits(cpu_s=0)


def test_rlimits_round_cpu_up_and_give_node_room() -> None:
    assert cpu_rlimit(0.2) == (1, 2)
    assert cpu_rlimit(2.5) == (3, 4)
    assert address_space_mb("python", Limits(memory_mb=256), 1024) == 256
    assert address_space_mb("javascript", Limits(memory_mb=256), 1024) == 1024
    assert address_space_mb("javascript", Limits(memory_mb=900), 1024) == 900 + 768


def test_filters_compile_with_a_self_pid_slot_in_the_run_programs() -> None:
    filters = build_filters()

    for program in (filters.zygote, filters.python, filters.javascript):
        assert len(program) % 8 == 0
        assert len(program) > 8
    for program, expected in ((filters.zygote, False), (filters.python, True)):
        constants = {struct.unpack_from("<HBBI", program, i)[3] for i in range(0, len(program), 8)}
        assert (SELF_PID_PLACEHOLDER in constants) is expected
    assert filters.python != filters.javascript  # python also refuses execve


def test_candidates_go_strongest_first() -> None:
    found = candidates(root=True, bwrap="/usr/bin/bwrap", seccomp=True)

    assert found[0] == Features(True, "/usr/bin/bwrap", True)
    assert [f.tier for f in found] == sorted((f.tier for f in found), reverse=True)
    assert candidates(root=False, bwrap="/usr/bin/bwrap", seccomp=False) == [
        Features(False, None, False)
    ]


async def test_pool_refuses_beyond_the_queue_and_recovers() -> None:
    pool = SlotPool(["only"], queue_size=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with pool.acquire():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert pool.queue_depth() == 1
    with pytest.raises(GraderBusy):
        async with pool.acquire():
            pass
    release.set()
    await asyncio.gather(holder, waiter)
    assert pool.queue_depth() == 0


async def test_pool_serves_waiting_owners_round_robin() -> None:
    pool = SlotPool(["only"], queue_size=10)
    release = asyncio.Event()
    started: list[str] = []

    async def job(owner: str) -> None:
        async with pool.acquire(owner):
            started.append(owner)
            await release.wait()

    tasks = [asyncio.create_task(job(owner)) for owner in ["a", "a", "a", "a", "b", "c", "b"]]
    for _ in range(10):
        await asyncio.sleep(0)
    assert pool.queue_depth() == 6
    assert pool.waiting_for("a") == 3
    release.set()
    await asyncio.gather(*tasks)

    assert started == ["a", "a", "b", "c", "a", "b", "a"]


async def test_pool_forgets_a_cancelled_waiter_and_keeps_serving() -> None:
    pool = SlotPool(["only"], queue_size=10)
    release = asyncio.Event()

    async def hold(owner: str) -> str:
        async with pool.acquire(owner):
            await release.wait()
        return owner

    holder = asyncio.create_task(hold("a"))
    gone = asyncio.create_task(hold("b"))
    kept = asyncio.create_task(hold("c"))
    for _ in range(5):
        await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert pool.queue_depth() == 1
    release.set()

    assert await asyncio.gather(holder, kept) == ["a", "c"]
    assert pool.queue_depth() == 0
    assert pool.running() == 0


async def test_pool_capacity_follows_measured_throughput() -> None:
    pool = SlotPool(["x", "y"], queue_size=2, max_wait_s=10, queue_ceiling=50)
    assert pool.capacity() == 2  # nothing measured yet
    async with pool.acquire():
        pass  # an instant job: the ceiling bounds what the rate would allow
    assert pool.capacity() == 50
    pool._job_s = 4.0  # slow jobs: 2 slots / 4 s = 0.5 jobs/s, 5 within 10 s
    assert pool.capacity() == 5
    pool._job_s = 100.0  # slower still: never below the configured floor
    assert pool.capacity() == 2


def test_uid_claims_are_exclusive() -> None:
    first = claim_uids(2, base_uid=61900, span=4)
    try:
        second = claim_uids(2, base_uid=61900, span=4)
        try:
            assert {c.uid for c in first}.isdisjoint(c.uid for c in second)
            with pytest.raises(OSError, match="free"):
                claim_uids(1, base_uid=61900, span=4)
        finally:
            release_all(second)
    finally:
        release_all(first)


LIBRARY_MODULE = """
class Counter:
    def count(self, items, start=0):
        return start + len(items)

counter = Counter()


def total(items):
    return sum(items)
"""


def test_the_library_is_put_back_whatever_the_solution_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("koan_library_probe")
    exec(LIBRARY_MODULE, vars(module))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    original = dict(vars(module))
    count, total = module.Counter.count, module.total
    state = library_state([module.__name__])

    class Key(str):
        def __hash__(self) -> int:
            return str.__hash__(self)

    del module.counter  # one name fewer, one more: the same length
    module.len = lambda items: 0
    module.total = lambda items: 42
    module.Counter.count = lambda self, items, start=0: 42
    module.Counter.extra = 1
    total.__defaults__ = (1,)
    original["counter"].__dict__ = {"count": lambda items: 42}
    restore_library(state)

    assert vars(module) == original
    assert (module.Counter.count, module.total) == (count, total)
    assert not hasattr(module.Counter, "extra")
    assert total.__defaults__ is None
    assert module.counter.count([1, 2]) == 2

    vars(module)[Key("x")] = 1
    module.total = lambda items: 42
    restore_library(state)

    assert vars(module) == original
    assert all(type(key) is str for key in vars(module))
