"""Retries with backoff, per-provider circuit breakers, and the fallback chain.

Everything takes an injectable timer so tests (and the benchmarks) never sleep for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from koan import turns
from koan.errors import TutorUnavailable
from koan.llm.base import AsyncClosing, LLMProvider, aclose_quietly
from koan.llm.errors import ProviderError, TutorStreamInterrupted
from koan.llm.types import Completion, CompletionRequest, StreamChunk, StreamEnd, StreamItem

log = logging.getLogger("koan.llm")

CircuitState = Literal["closed", "open", "half_open"]


class Timer(Protocol):
    """Monotonic time and sleep, swappable in tests."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for `seconds`."""
        ...


class SystemTimer:
    """The real clock."""

    def monotonic(self) -> float:
        """Seconds on the process's monotonic clock."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep without blocking the event loop."""
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry one provider."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A learner is waiting: a provider asking for a longer pause than this is skipped (the
    # chain falls back) instead of being waited on.
    max_retry_after: float = 10.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Full-jitter exponential delay before retry number `retry_number` (0-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2**retry_number))
        return rng.uniform(0.0, ceiling)


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; probes once after `cooldown`."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        timer: Timer | None = None,
    ) -> None:
        self.failure_threshold = max(1, failure_threshold)
        self.cooldown = cooldown
        self._timer = timer or SystemTimer()
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        """closed (normal), open (skipping), or half_open (cool-down over, one probe allowed)."""
        if self._opened_at is None:
            return "closed"
        if self._timer.monotonic() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def retry_after(self) -> float:
        """Seconds until the cool-down ends (0 when not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self._timer.monotonic() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go through now; in half-open state only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        """Close the circuit."""
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        """Count a failure; open (or re-open after a failed probe) at the threshold."""
        self._failures += 1
        if self._probe_in_flight or self._failures >= self.failure_threshold:
            self._opened_at = self._timer.monotonic()
        self._probe_in_flight = False

    def release_probe(self) -> None:
        """Forget an unfinished probe (cancelled call, request-specific error)."""
        self._probe_in_flight = False


class ResilientProvider(AsyncClosing):
    """Wraps one provider with retries (before the first token) and a circuit breaker."""

    def __init__(
        self,
        inner: LLMProvider,
        *,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        timer: Timer | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.policy = policy or RetryPolicy()
        self._timer = timer or SystemTimer()
        self.breaker = breaker or CircuitBreaker(timer=self._timer)
        self._rng = rng or random.Random()

    async def close(self) -> None:
        """Close the wrapped provider."""
        await self.inner.close()

    def _circuit_open(self) -> ProviderError:
        return ProviderError(
            "circuit open after repeated failures",
            provider=self.name,
            kind="circuit_open",
            retry_after=self.breaker.retry_after() or None,
        )

    def _record(self, error: ProviderError) -> None:
        if error.counts_against_health:
            self.breaker.record_failure()
        else:
            self.breaker.release_probe()

    def _delay_before_retry(self, error: ProviderError, retry_number: int) -> float | None:
        """Seconds to wait before the next attempt, or None to stop retrying."""
        if not error.retryable or retry_number + 1 >= self.policy.max_attempts:
            return None
        if self.breaker.state != "closed":
            return None
        if error.retry_after is not None:
            if error.retry_after > self.policy.max_retry_after:
                return None
            return error.retry_after
        return self.policy.backoff(retry_number, self._rng)

    async def complete(self, req: CompletionRequest) -> Completion:
        """Complete with retries; raise the last ProviderError when they run out."""
        turns.give_back()  # the request now waits on the provider, not on this worker's CPU
        retry_number = 0
        while True:
            if not self.breaker.allow():
                raise self._circuit_open()
            try:
                result = await self.inner.complete(req)
            except ProviderError as error:
                if not await self._wait_to_retry(error, retry_number, what="llm retry"):
                    raise
                retry_number += 1
                continue
            except BaseException:
                self.breaker.release_probe()
                raise
            self.breaker.record_success()
            return result

    async def _wait_to_retry(
        self, error: ProviderError, retry_number: int, *, what: str, retryable: bool = True
    ) -> bool:
        """Record the failure; if it is worth another try, wait the back-off and say so."""
        self._record(error)
        delay = self._delay_before_retry(error, retry_number) if retryable else None
        if delay is None:
            return False
        log.warning(
            "%s provider=%s kind=%s status=%s delay=%.2fs",
            what,
            self.name,
            error.kind,
            error.status,
            delay,
        )
        await self._timer.sleep(delay)
        return True

    async def stream(self, req: CompletionRequest) -> AsyncIterator[StreamItem]:
        """Stream with retries that stop as soon as a token has been passed on."""
        retry_number = 0
        while True:
            if not self.breaker.allow():
                raise self._circuit_open()
            started = False
            iterator = self.inner.stream(req)
            try:
                async for item in iterator:
                    if isinstance(item, StreamChunk) and item.delta:
                        started = True
                    elif isinstance(item, StreamEnd):
                        # Record before yielding: a consumer may stop reading at StreamEnd.
                        self.breaker.record_success()
                    yield item
            except ProviderError as error:
                # Once a token has been passed on, a retry would repeat it: fail instead.
                retryable = not started
                if not await self._wait_to_retry(
                    error, retry_number, what="llm stream retry", retryable=retryable
                ):
                    raise
                retry_number += 1
                continue
            except BaseException:
                # Consumer went away (GeneratorExit) or the task was cancelled: neither says
                # anything about the provider's health.
                self.breaker.release_probe()
                raise
            finally:
                await aclose_quietly(iterator)
            return


class FallbackChain(AsyncClosing):
    """Tries providers in order, skipping open circuits; all failing raises TutorUnavailable."""

    def __init__(
        self,
        providers: Sequence[LLMProvider],
        *,
        default_retry_after: int = 5,
    ) -> None:
        if not providers:
            raise ValueError("FallbackChain needs at least one provider")
        self.providers = list(providers)
        self.name = self.providers[0].name
        self.default_retry_after = default_retry_after

    async def close(self) -> None:
        """Close every provider, even if one fails to close."""
        for provider in self.providers:
            with contextlib.suppress(Exception):
                await provider.close()

    def _unavailable(self, errors: list[ProviderError]) -> TutorUnavailable:
        waits = [e.retry_after for e in errors if e.retry_after]
        retry_after = math.ceil(min(waits)) if waits else self.default_retry_after
        reasons = "; ".join(e.summary() for e in errors)
        if all(e.kind == "unsupported" for e in errors):
            detail = f"No configured tutor can handle this request ({reasons})."
        else:
            detail = (
                f"The AI tutor is unavailable right now ({reasons}). "
                f"Please try again in {max(1, retry_after)} s."
            )
        return TutorUnavailable(detail, retry_after=retry_after)

    async def complete(self, req: CompletionRequest) -> Completion:
        """First successful completion along the chain."""
        errors: list[ProviderError] = []
        for provider in self.providers:
            try:
                return await provider.complete(req)
            except ProviderError as error:
                log.warning(
                    "llm provider failed provider=%s kind=%s status=%s: %s",
                    error.provider,
                    error.kind,
                    error.status,
                    error.message,
                )
                errors.append(error)
        raise self._unavailable(errors)

    async def stream(self, req: CompletionRequest) -> AsyncIterator[StreamItem]:
        """Stream from the first provider that produces a token; no switching after that."""
        errors: list[ProviderError] = []
        for provider in self.providers:
            parts: list[str] = []
            iterator = provider.stream(req)
            try:
                async for item in iterator:
                    if isinstance(item, StreamChunk):
                        parts.append(item.delta)
                    yield item
                return
            except ProviderError as error:
                log.warning(
                    "llm provider stream failed provider=%s kind=%s status=%s: %s",
                    error.provider,
                    error.kind,
                    error.status,
                    error.message,
                )
                if any(parts):
                    # Half a reply is already on the learner's screen; another model would
                    # start over and contradict it.
                    raise TutorStreamInterrupted(
                        f"The AI tutor stopped mid-reply ({error.summary()}). Please ask again.",
                        partial_text="".join(parts),
                        retry_after=math.ceil(error.retry_after or self.default_retry_after),
                    ) from error
                errors.append(error)
            finally:
                await aclose_quietly(iterator)
        raise self._unavailable(errors)
