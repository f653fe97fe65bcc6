"""Grading from synchronous code (the `koan exercises validate` CLI): a Sandbox on its own loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from koan.grading.sandbox.config import SandboxConfig
from koan.grading.sandbox.limits import Language, Limits
from koan.grading.sandbox.report import GradeReport, Tier
from koan.grading.sandbox.sandbox import Sandbox


@dataclass(frozen=True)
class GradeJob:
    """One grading request for SyncSandbox.grade_many."""

    language: Language
    code: str
    tests: str
    limits: Limits | None = None


class SyncSandbox:
    """A Sandbox running on a private event loop thread; every method is thread-safe.

    Unlike Sandbox.grade, calls here wait for a slot instead of raising GraderBusy: a batch
    tool wants all its jobs done, not refused.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.sandbox = Sandbox(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="koan-sandbox-loop", daemon=True
        )
        self._admission: asyncio.Semaphore | None = None

    @property
    def tier(self) -> Tier:
        """The tier the sandbox runs at (after start)."""
        return self.sandbox.tier

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def start(self) -> None:
        """Start the loop thread and the sandbox on it."""
        self._thread.start()

        async def start() -> None:
            await self.sandbox.start()
            config = self.sandbox.config
            self._admission = asyncio.Semaphore(config.slots + config.queue_size)

        try:
            self._call(start())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the sandbox and the loop thread."""
        if self._thread.is_alive():
            try:
                self._call(self.sandbox.close())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> SyncSandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def _grade(self, job: GradeJob) -> GradeReport:
        assert self._admission is not None, "SyncSandbox.start() was not called"
        async with self._admission:
            return await self.sandbox.grade(
                language=job.language, code=job.code, tests=job.tests, limits=job.limits
            )

    def submit(self, job: GradeJob) -> Future[GradeReport]:
        """Queue a job; the future resolves to its report."""
        return asyncio.run_coroutine_threadsafe(self._grade(job), self._loop)

    def grade(
        self, *, language: Language, code: str, tests: str, limits: Limits | None = None
    ) -> GradeReport:
        """Grade one submission, waiting for a free slot."""
        return self.submit(GradeJob(language, code, tests, limits)).result()

    def grade_many(self, jobs: Iterable[GradeJob]) -> list[GradeReport]:
        """Grade many submissions across all slots; reports come back in the jobs' order."""
        futures: Sequence[Future[GradeReport]] = [self.submit(job) for job in jobs]
        return [future.result() for future in futures]


def grade_sync(
    *,
    language: Language,
    code: str,
    tests: str,
    limits: Limits | None = None,
    config: SandboxConfig | None = None,
) -> GradeReport:
    """Grade one submission with a one-slot sandbox started (and stopped) just for it."""
    base = config or SandboxConfig()
    one_slot = SandboxConfig(
        slots=1,
        queue_size=base.queue_size,
        min_tier=base.min_tier,
        python=base.python,
        node=base.node,
        max_limits=base.max_limits,
        js_memory_mb=base.js_memory_mb,
        base_uid=base.base_uid,
        uid_range=base.uid_range,
        default_limits=base.default_limits,
    )
    with SyncSandbox(one_slot) as sandbox:
        return sandbox.grade(language=language, code=code, tests=tests, limits=limits)
