"""The grading sandbox: a warm launcher per slot, a bounded queue, a private verdict channel."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, get_args

import structlog

from koan import turns
from koan.errors import BadRequest, PayloadTooLarge
from koan.grading.sandbox.config import SandboxConfig
from koan.grading.sandbox.errors import SandboxUnavailable
from koan.grading.sandbox.features import Features
from koan.grading.sandbox.jobs import StopRule, build_job, build_trial_job
from koan.grading.sandbox.limits import Language, Limits, cpu_rlimit, run_plan
from koan.grading.sandbox.pool import SlotPool
from koan.grading.sandbox.report import GradeReport, Tier, TrialReport
from koan.grading.sandbox.seccomp_filter import FilterSet, build_filters
from koan.grading.sandbox.tiers import probe_features
from koan.grading.sandbox.uids import UidClaim, claim_uids, release_all
from koan.grading.sandbox.verdict import (
    SetupFailed,
    decide,
    decide_trial,
    parse_verdict,
    trial_end,
)
from koan.grading.sandbox.zygote import RunResult, Watch, Zygote, ZygoteLost

log = structlog.get_logger(__name__)

MAX_SOURCE_BYTES = 512 * 1024  # code and tests each; the API layer usually stops far smaller
# Graded once per slot at start, so the queue is sized from a measured throughput at once.
WARM_UP_CODE = "def answer():\n    return 42\n"
WARM_UP_TESTS = "from solution import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"


@dataclass
class _Slot:
    index: int
    uid: int | None
    zygote: Zygote


class Sandbox:
    """Grades submissions in isolated runs, `config.slots` at a time."""

    def __init__(
        self, config: SandboxConfig | None = None, *, features: Features | None = None
    ) -> None:
        """Configure; `features` skips probing and forces those mechanisms (tests, diagnosis)."""
        self.config = config or SandboxConfig()
        self.tier = Tier.NONE
        self.features: Features | None = features
        self._filters: FilterSet | None = None
        self._claims: list[UidClaim] = []
        self._slots: list[_Slot] = []
        self._pool: SlotPool[_Slot] | None = None
        self._workroot: str | None = None
        # Trials whose verdict is in, still holding their slot until their run has exited.
        self._ending: set[asyncio.Task[Any]] = set()

    @property
    def slot_uids(self) -> tuple[int, ...]:
        """The uids this sandbox's runs use (empty below the uid-switching tiers)."""
        return tuple(slot.uid for slot in self._slots if slot.uid is not None)

    async def start(self) -> None:
        """Probe the machine, refuse if below min_tier, warm one launcher per slot."""
        config = self.config
        features = self.features
        if features is None:
            features = await asyncio.to_thread(
                probe_features, config.python, config.base_uid, config.uid_range
            )
        tier = Tier.NONE if features is None else features.tier
        if features is None or tier < config.min_tier:
            raise SandboxUnavailable(
                f"The grader needs isolation tier {config.min_tier.name} but this machine "
                f"reaches {tier.name}; see docs/sandbox.md.",
                retry_after=60,
            )
        self.features, self.tier = features, tier
        self._filters = build_filters() if features.seccomp else None
        if features.uid_switch:
            try:
                self._claims = claim_uids(
                    config.slots, base_uid=config.base_uid, span=config.uid_range
                )
            except OSError as exc:
                raise SandboxUnavailable(f"No sandbox uids free: {exc}", retry_after=60) from exc
        if features.bubblewrap is None:
            self._workroot = tempfile.mkdtemp(prefix="koan-sandbox-")
            os.chmod(self._workroot, 0o711)
        for index in range(config.slots):
            uid = self._claims[index].uid if self._claims else None
            self._slots.append(_Slot(index, uid, self._new_zygote(uid)))
        try:
            await asyncio.gather(*(slot.zygote.start() for slot in self._slots))
        except ZygoteLost as exc:
            await self.close()
            raise SandboxUnavailable(f"The grader could not start: {exc}") from exc
        if self.config.js_spare and os.access(self.config.node, os.X_OK):
            default = self.config.default_limits.capped(self.config.max_limits)
            for slot in self._slots:
                await self._prepare_spare(slot, "javascript", default)
        self._pool = SlotPool(
            self._slots,
            queue_size=config.queue_size,
            max_wait_s=config.max_wait_s,
            queue_ceiling=config.queue_ceiling,
        )
        await self._warm_up()
        log.info(
            "sandbox.started",
            tier=tier.name,
            features=features.describe(),
            slots=config.slots,
            uids=self.slot_uids,
        )

    async def _warm_up(self) -> None:
        """Grade a small program once per slot. The queue holds what the slots can start
        within `max_wait_s` at the throughput they have shown; before any run it holds only
        `queue_size` jobs, and a class pressing "Run tests" together right after a restart
        would be refused. The times of these runs size it from the first request on."""
        try:
            await asyncio.gather(
                *(
                    self.grade(language="python", code=WARM_UP_CODE, tests=WARM_UP_TESTS)
                    for _ in self._slots
                )
            )
        except Exception as exc:  # graded again on the first request; it says what fails
            log.warning("sandbox.warm_up_failed", error=f"{type(exc).__name__}: {exc}")

    def _new_zygote(self, uid: int | None) -> Zygote:
        assert self.features is not None
        return Zygote(
            features=self.features,
            python=self.config.python,
            node=self.config.node,
            uid=uid,
            workroot=self._workroot,
            filters=self._filters,
        )

    async def close(self) -> None:
        """Stop every launcher (and with it every run) and free the slot uids, to the end even
        if the caller is cancelled meanwhile."""
        await asyncio.shield(self._close_now())

    async def _close_now(self) -> None:
        self._pool = None
        ending, self._ending = self._ending, set()
        for task in ending:
            task.cancel()
        await asyncio.gather(*ending, return_exceptions=True)
        await asyncio.gather(*(slot.zygote.close() for slot in self._slots))
        self._slots = []
        release_all(self._claims)
        self._claims = []
        if self._workroot is not None:
            shutil.rmtree(self._workroot, ignore_errors=True)
            self._workroot = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def spares_ready(self) -> int:
        """Slots whose next JavaScript run has node started already."""
        return sum(1 for slot in self._slots if slot.zygote.spare_key is not None)

    async def discard_spares(self) -> None:
        """End every slot's spare node, so that nothing runs as the slot uids (only while no
        run is in flight: tests that check exactly that). Trials still exiting (which may
        start a spare when they are done) are waited for first."""
        await asyncio.gather(*self._ending, return_exceptions=True)
        await asyncio.gather(*(slot.zygote.discard_spare() for slot in self._slots))

    def queue_depth(self) -> int:
        """Jobs waiting for a free slot right now."""
        return 0 if self._pool is None else self._pool.queue_depth()

    def running(self) -> int:
        """Jobs holding a slot right now."""
        return 0 if self._pool is None else self._pool.running()

    def queue_capacity(self) -> int:
        """How many jobs may wait before the next is refused (sized from throughput)."""
        return 0 if self._pool is None else self._pool.capacity()

    def _check_job(self, language: str, sources: Sequence[tuple[str, str]]) -> None:
        if self._pool is None:
            raise SandboxUnavailable("The grader is not running.")
        if language not in get_args(Language):
            raise BadRequest(f"Unsupported language: {language!r}.")
        if language == "javascript" and not os.access(self.config.node, os.X_OK):
            raise SandboxUnavailable(f"JavaScript grading needs node at {self.config.node}.")
        for name, text in sources:
            if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
                raise PayloadTooLarge(f"The {name} is larger than {MAX_SOURCE_BYTES} bytes.")

    async def grade(
        self,
        *,
        language: Language,
        code: str,
        tests: str,
        limits: Limits | None = None,
        owner: str | None = None,
    ) -> GradeReport:
        """Run tests against code in an isolated run and report the verdict.

        `owner` (the submitting learner) makes the queue fair: waiting jobs are served
        round-robin by owner. Jobs without one are each served as their own owner.
        """
        self._check_job(language, (("code", code), ("tests", tests)))
        assert self._pool is not None
        effective = (limits or self.config.default_limits).capped(self.config.max_limits)
        nonce = secrets.token_hex(16)
        job = build_job(
            nonce=nonce,
            language=language,
            code=code,
            tests=tests,
            limits=effective,
            js_memory_mb=self.config.js_memory_mb,
            native=self.config.python_native,
        )
        turns.give_back()  # the run and any wait for a slot are no work for this worker's CPU
        async with self._acquire(owner, language, effective) as slot:
            started = time.perf_counter()
            run = await self._run_in(slot, job, effective, nonce, language=language)
            duration_ms = round((time.perf_counter() - started) * 1000)
            await self._prepare_spare(slot, language, effective)
        try:
            return decide(
                run,
                parse_verdict(run.verdict, nonce),
                language=language,
                limits=effective,
                tier=self.tier,
                duration_ms=duration_ms,
            )
        except SetupFailed as exc:
            log.error("sandbox.setup_failed", error=str(exc), language=language)
            raise SandboxUnavailable(f"The grader failed to start the run: {exc}") from exc

    async def try_programs(
        self,
        *,
        language: Language,
        programs: Sequence[str],
        tests: str,
        only: Collection[str] | None = None,
        stop: StopRule = "never",
        limits: Limits | None = None,
        total_wall_s: float | None = None,
        owner: str | None = None,
    ) -> TrialReport:
        """Try several programs against the same tests in one run, one after another.

        Each program runs as isolated as a graded submission (Python: a locked-down child of
        its own; JavaScript: the run's one node process, every call under a deadline) within
        `limits`' CPU and wall time; `only` names the tests to run (all when None). With
        `stop` "any" the run ends at the first program that passes one of them (as soon as it
        passes one: its other tests are not run), with "all" at the first that passes all of
        them. `total_wall_s` bounds the whole run (default: every program's wall time);
        programs it leaves no time for are reported `not_run`. The report comes as soon as the
        harness has sent its last record; the run's exit (which still holds the slot) follows
        in the background.
        """
        if not programs:
            return TrialReport([], tier=self.tier)
        self._check_job(
            language, [("tests", tests), *(("program", program) for program in programs)]
        )
        assert self._pool is not None
        per_program = (limits or self.config.default_limits).capped(self.config.max_limits)
        caps = self.config.max_limits
        whole = total_wall_s if total_wall_s is not None else per_program.wall_s * len(programs)
        # One process may run them all (JavaScript): its CPU limit covers every program.
        run_limits = Limits(
            cpu_s=min(per_program.cpu_s * len(programs), caps.cpu_s),
            wall_s=min(whole, caps.wall_s),
            memory_mb=per_program.memory_mb,
            output_bytes=per_program.output_bytes,
            disk_mb=per_program.disk_mb,
        )
        nonce = secrets.token_hex(16)
        job = build_trial_job(
            nonce=nonce,
            language=language,
            programs=programs,
            tests=tests,
            only=only,
            stop=stop,
            limits=run_limits,
            case_wall_s=per_program.wall_s,
            js_memory_mb=self.config.js_memory_mb,
            native=self.config.python_native,
        )
        loop = asyncio.get_running_loop()
        verdict: asyncio.Future[bytes] = loop.create_future()
        started = [0.0]  # when the run got its slot

        async def run_trial() -> tuple[RunResult, int]:
            async with self._acquire(owner, language, run_limits) as slot:
                started[0] = time.perf_counter()
                run = await self._run_in(
                    slot, job, run_limits, nonce, language=language, stop_on_output=False,
                    watch_verdict=_end_watch(nonce, verdict),
                )  # fmt: skip
                duration_ms = round((time.perf_counter() - started[0]) * 1000)
                await self._prepare_spare(slot, language, run_limits)
            return run, duration_ms

        # The answer is in once the harness has sent its `end` record: the caller goes on
        # while the run exits, which still holds the slot and its limits until it has.
        turns.give_back()  # as for a grading: the trial is the sandbox's work
        task = asyncio.create_task(run_trial())
        try:
            waited: set[asyncio.Future[Any]] = {task, verdict}
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if not verdict.done():
                task.cancel()  # nobody waits for the verdict: the run is killed
            self._let_end(task)
            raise
        if task.done():
            run, duration_ms = task.result()
        else:
            self._let_end(task)
            run = RunResult(status=0, verdict=verdict.result())
            duration_ms = round((time.perf_counter() - started[0]) * 1000)
        try:
            return decide_trial(
                run, run.verdict, nonce, programs=len(programs), stop=stop, tier=self.tier,
                duration_ms=duration_ms,
            )  # fmt: skip
        except SetupFailed as exc:
            log.error("sandbox.setup_failed", error=str(exc), language=language)
            raise SandboxUnavailable(f"The grader failed to start the run: {exc}") from exc

    def _let_end(self, task: asyncio.Task[Any]) -> None:
        """Keep a trial's run task (whose verdict is in) until its run has exited."""
        self._ending.add(task)

        def ended(done: asyncio.Task[Any]) -> None:
            self._ending.discard(done)
            if not done.cancelled() and done.exception() is not None:
                log.warning("sandbox.trial_end_failed", error=str(done.exception()))

        task.add_done_callback(ended)

    def _spare_for(self, language: Language, limits: Limits) -> tuple[str, dict[str, Any]] | None:
        """The key of the spare that can take a run, and that spare's plan; None when spares
        of the language are off. JavaScript: the run's limits with the CPU limit at the
        server's cap (lowered when its job comes). Python: every limit at the server's caps
        but the disk (the run lowers them to its job's), so any Python job fits."""
        if language == "python" and self.config.python_spare:
            caps = self.config.max_limits
            ceiling = Limits(
                cpu_s=caps.cpu_s,
                wall_s=caps.wall_s,
                memory_mb=caps.memory_mb,
                output_bytes=caps.output_bytes,
                disk_mb=limits.disk_mb,
            )
            key = json.dumps({"language": language, "disk_mb": limits.disk_mb})
            return key, run_plan(language, ceiling, self.config.js_memory_mb)
        if language != "javascript" or not self.config.js_spare:
            return None
        plan = run_plan(language, limits, self.config.js_memory_mb)
        fixed = {k: v for k, v in plan.items() if not k.startswith("cpu_")}
        key = json.dumps({"language": language, **fixed}, sort_keys=True)
        soft, hard = cpu_rlimit(self.config.max_limits.cpu_s)
        return key, {**plan, "cpu_soft": soft, "cpu_hard": hard}

    def _acquire(self, owner: str | None, language: Language, limits: Limits) -> Any:
        """A slot for the run: one whose spare can take it (for JavaScript the one up
        longest), else one without a spare (ending one wastes its start-up)."""
        assert self._pool is not None
        spare = self._spare_for(language, limits)
        key = spare[0] if spare is not None else None

        def rank(slot: _Slot) -> float:
            held = slot.zygote.spare_key
            if held is None:
                return 1.0
            if held != key:
                return 0.0
            return 2.0 + time.monotonic() - slot.zygote.spare_since

        return self._pool.acquire(owner, rank=rank)

    async def _prepare_spare(self, slot: _Slot, language: Language, limits: Limits) -> None:
        """After a run, the slot's next one of the same language starts while it is idle."""
        spare = self._spare_for(language, limits)
        if spare is None or not slot.zygote.alive:
            return
        try:
            await slot.zygote.prepare(
                key=spare[0], plan=spare[1], disk_mb=limits.disk_mb, language=language
            )
        except ZygoteLost:
            log.warning("sandbox.spare_failed", slot=slot.index)

    async def _run_in(
        self,
        slot: _Slot,
        job: bytes,
        limits: Limits,
        nonce: str,
        *,
        language: Language,
        stop_on_output: bool = True,
        watch_verdict: Watch | None = None,
    ) -> RunResult:
        """Run a job on the slot's launcher, replacing a launcher that died in between.

        A job is retried once, and only if it never reached the learner's code (the launcher
        was found dead, or died before the run reported ready), so no code runs twice.
        """
        spare = self._spare_for(language, limits)
        lost_spare = False  # the spare was gone before its job: retried on the same launcher
        for attempt in range(2):
            if (attempt and not lost_spare) or not slot.zygote.alive:
                await self._restart(slot)
            try:
                run = await slot.zygote.run(
                    job,
                    wall_s=limits.wall_s,
                    output_bytes=limits.output_bytes,
                    disk_mb=limits.disk_mb,
                    spare_key=spare[0] if spare is not None and not lost_spare else None,
                    cpu=cpu_rlimit(limits.cpu_s),
                    stop_on_output=stop_on_output,
                    watch_verdict=watch_verdict,
                )
            except ZygoteLost:
                continue
            if run.status is not None:
                if run.spare and not attempt and not parse_verdict(run.verdict, nonce).ready:
                    log.warning("sandbox.spare_lost", slot=slot.index)
                    lost_spare = True
                    continue
                return run
            log.warning("sandbox.launcher_lost", slot=slot.index)
            if attempt or parse_verdict(run.verdict, nonce).ready:
                return run
        raise SandboxUnavailable("The grader's launcher keeps failing; try again shortly.")

    async def _restart(self, slot: _Slot) -> None:
        await slot.zygote.close()
        slot.zygote = self._new_zygote(slot.uid)
        try:
            await slot.zygote.start()
        except ZygoteLost as exc:
            raise SandboxUnavailable(f"The grader could not restart: {exc}") from exc
        log.info("sandbox.launcher_restarted", slot=slot.index)


def _end_watch(nonce: str, verdict: asyncio.Future[bytes]) -> Watch:
    """Resolves `verdict` with the trial's records once its `end` record has arrived."""
    read = 0

    def watch(data: bytearray) -> None:
        nonlocal read
        if verdict.done():
            return
        read, ended = trial_end(data, nonce, read)
        if ended:
            verdict.set_result(bytes(data[:read]))

    return watch
