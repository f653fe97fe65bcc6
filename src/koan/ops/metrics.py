"""Prometheus instruments for one Koan app, and the helpers other domains call to record events.

Domains never hold a `Metrics`: they call the module-level helpers (`grading_finished`,
`llm_call`, ...), which record into the app that is serving the current request (bound by the
request-log middleware, or by `bound()` for work outside a request) and do nothing otherwise,
so the CLI and unit tests need no metrics set-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

RejectionKind = Literal["rate_limit", "budget", "grader_busy"]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. API calls are mostly milliseconds; the tail buckets catch a slow database.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Most requests take a turn at once; a queue of them waits milliseconds, an overloaded one more.
TURN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# A grading includes the wait for a slot; wall limits go up to two minutes.
GRADING_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
# Hosted models answer in seconds; local ones on a CPU can take minutes.
LLM_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

# Any other method (a scanner's "PROPFIND") would mint a new series per spelling.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Looked-up series kept per app; past this many (raw method spellings), looked up each time.
_MAX_HTTP_SERIES = 2000


def multiprocess_enabled() -> bool:
    """True when values live in PROMETHEUS_MULTIPROC_DIR files shared by all worker processes."""
    # The value class is chosen when prometheus_client is imported, so the environment
    # variable alone can lie if it was set too late.
    return values.ValueClass is not values.MutexValue


class Metrics:
    """Every instrument Koan records, on a registry of its own (one per app, so tests can
    build many apps in one process)."""

    def __init__(self, *, version: str = "") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.build_info = Gauge(
            "koan_build_info", "Always 1; the label says which Koan version runs.",
            ["version"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.build_info.labels(version=version or "unknown").set(1)

        self.http_requests = Counter(
            "koan_http_requests", "HTTP requests answered, by route template and status.",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self.http_duration = Histogram(
            "koan_http_request_duration_seconds",
            "Time until the response started (first byte), by route template.",
            ["method", "route"], buckets=HTTP_BUCKETS, registry=r,
        )  # fmt: skip
        self.http_in_progress = Gauge(
            "koan_http_requests_in_progress", "Requests being handled (streams included).",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.turn_wait = Histogram(
            "koan_request_turn_wait_seconds",
            "Time a request waited for its turn at the worker's CPU (koan/turns.py).",
            buckets=TURN_BUCKETS, registry=r,
        )  # fmt: skip

        self.gradings = Counter(
            "koan_gradings", "Submissions graded, by verdict and sandbox tier.",
            ["status", "tier"], registry=r,
        )  # fmt: skip
        self.grading_duration = Histogram(
            "koan_grading_duration_seconds", "Time to grade a submission, queueing included.",
            ["tier"], buckets=GRADING_BUCKETS, registry=r,
        )  # fmt: skip
        self.grader_queue_depth = Gauge(
            "koan_grader_queue_depth", "Submissions waiting for a free sandbox slot.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip

        self.llm_calls = Counter(
            "koan_llm_calls", "Completions requested from LLM providers, by outcome.",
            ["provider", "model", "outcome"], registry=r,
        )  # fmt: skip
        self.llm_tokens = Counter(
            "koan_llm_tokens", "Tokens billed by LLM providers (direction: input or output).",
            ["provider", "model", "direction"], registry=r,
        )  # fmt: skip
        self.llm_cost = Counter(
            "koan_llm_cost_usd", "Estimated LLM spend in US dollars (from the price table).",
            ["provider", "model"], registry=r,
        )  # fmt: skip
        self.llm_duration = Histogram(
            "koan_llm_call_duration_seconds", "Time for an LLM completion (whole stream).",
            ["provider", "model"], buckets=LLM_BUCKETS, registry=r,
        )  # fmt: skip

        self.cache_lookups = Counter(
            "koan_cache_lookups", "Cache lookups by result (hit or miss).",
            ["result"], registry=r,
        )  # fmt: skip
        self.rejections = Counter(
            "koan_rejections",
            "Requests refused to protect the service: rate_limit, budget, grader_busy.",
            ["kind"], registry=r,
        )  # fmt: skip
        self.login_ceiling_reached = Counter(
            "koan_login_ceiling_reached", "Logins refused because an account's ceiling of "
            "failed logins from all addresses was reached: someone is guessing its password.",
            registry=r,
        )  # fmt: skip
        self.leak_guard_catches = Counter(
            "koan_leak_guard_catches", "Tutor replies the leak guard stopped from revealing a "
            "solution.", registry=r,
        )  # fmt: skip

        # Series that exist from the start, so rate() and ratios read 0 instead of "no data".
        for result in ("hit", "miss"):
            self.cache_lookups.labels(result=result)
        for kind in get_args(RejectionKind):
            self.rejections.labels(kind=kind)
        self._queue_depth: Callable[[], int] | None = None
        self._http_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def watch_grader_queue(self, depth: Callable[[], int]) -> None:
        """Read the grader queue depth from `depth` whenever metrics are collected."""
        self._queue_depth = depth
        if not multiprocess_enabled():
            self.grader_queue_depth.set_function(self._read_queue_depth)

    def _read_queue_depth(self) -> float:
        try:
            return float(self._queue_depth()) if self._queue_depth else 0.0
        except Exception:
            # A scrape must not fail because the grader is not started (or already closed).
            return 0.0

    def sample(self) -> None:
        """Copy callback gauges into the shared files (multiprocess mode only)."""
        # The files cannot hold callbacks; each worker writes its own value after every
        # request, and "livesum" adds the live workers up.
        if multiprocess_enabled():
            self.grader_queue_depth.set(self._read_queue_depth())

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition (body, content type), in the format the scraper asked for."""
        encoder, content_type = choose_encoder(accept or "")
        if multiprocess_enabled():
            self.sample()
            # Every worker's files, not just this process's instruments.
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return encoder(registry), content_type
        return encoder(self.registry), content_type

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency under its route template."""
        # The series of a (method, route, status) are looked up once: `labels()` builds and
        # locks on every call, a cost every request paid twice. Routes are templates and
        # methods a fixed set, so the table stays as small as the series themselves.
        series = self._http_series.get((method, route, status))
        if series is None:
            known = method.upper() if method.upper() in _METHODS else "OTHER"
            series = (
                self.http_requests.labels(method=known, route=route, status=str(status)),
                self.http_duration.labels(method=known, route=route),
            )
            if len(self._http_series) < _MAX_HTTP_SERIES:
                self._http_series[(method, route, status)] = series
        count, duration = series
        count.inc()
        duration.observe(max(seconds, 0.0))

    def grading_finished(self, status: str, tier: str, seconds: float) -> None:
        """Count one grading run with its verdict, tier and duration."""
        self.gradings.labels(status=status, tier=tier).inc()
        self.grading_duration.labels(tier=tier).observe(max(seconds, 0.0))

    def llm_call(
        self,
        provider: str,
        model: str,
        tokens_in: int,
        tokens_out: int,
        cost: float | Decimal,
        seconds: float,
        *,
        ok: bool = True,
    ) -> None:
        """Count one LLM completion: outcome, tokens, dollars and latency."""
        outcome = "ok" if ok else "error"
        self.llm_calls.labels(provider=provider, model=model, outcome=outcome).inc()
        if tokens_in > 0:
            self.llm_tokens.labels(provider=provider, model=model, direction="input").inc(tokens_in)
        if tokens_out > 0:
            self.llm_tokens.labels(provider=provider, model=model, direction="output").inc(
                tokens_out
            )
        if cost > 0:
            self.llm_cost.labels(provider=provider, model=model).inc(float(cost))
        self.llm_duration.labels(provider=provider, model=model).observe(max(seconds, 0.0))

    def cache_lookup(self, hit: bool) -> None:
        """Count one cache lookup as a hit or a miss."""
        self.cache_lookups.labels(result="hit" if hit else "miss").inc()

    def rejected(self, kind: RejectionKind) -> None:
        """Count one request refused by a rate limit, an LLM budget or a full grader queue."""
        self.rejections.labels(kind=kind).inc()

    def login_ceiling_hit(self) -> None:
        """Count one login refused by an account's ceiling of failed logins."""
        self.login_ceiling_reached.inc()

    def leak_caught(self) -> None:
        """Count one tutor reply the leak guard caught."""
        self.leak_guard_catches.inc()


_current: ContextVar[Metrics | None] = ContextVar("koan_metrics", default=None)


def current() -> Metrics | None:
    """The Metrics of the app serving this request (or bound with `bound()`), if any."""
    return _current.get()


@contextmanager
def bound(metrics: Metrics) -> Iterator[Metrics]:
    """Record helper calls made inside the block (and tasks it starts) into `metrics`."""
    token = _current.set(metrics)
    try:
        yield metrics
    finally:
        _current.reset(token)


def turn_waited(seconds: float) -> None:
    """Record how long a request waited for its turn (koan/turns.py)."""
    if (m := _current.get()) is not None:
        m.turn_wait.observe(seconds)


def grading_finished(status: str, tier: str, seconds: float) -> None:
    """Record a finished grading run (status: the verdict; tier: rlimits/namespaces/full)."""
    if (m := _current.get()) is not None:
        m.grading_finished(status, tier, seconds)


def llm_call(
    provider: str,
    model: str,
    tokens_in: int,
    tokens_out: int,
    cost: float | Decimal,
    seconds: float,
    *,
    ok: bool = True,
) -> None:
    """Record an LLM completion (cost in US dollars; ok=False for a failed call)."""
    if (m := _current.get()) is not None:
        m.llm_call(provider, model, tokens_in, tokens_out, cost, seconds, ok=ok)


def cache_lookup(hit: bool) -> None:
    """Record a cache lookup."""
    if (m := _current.get()) is not None:
        m.cache_lookup(hit)


def rejected(kind: RejectionKind) -> None:
    """Record a request refused by a rate limit, an LLM budget or a full grader queue."""
    if (m := _current.get()) is not None:
        m.rejected(kind)


def login_ceiling_hit() -> None:
    """Record a login refused by an account's ceiling of failed logins (an alert)."""
    if (m := _current.get()) is not None:
        m.login_ceiling_hit()


def leak_caught() -> None:
    """Record a tutor reply stopped by the leak guard."""
    if (m := _current.get()) is not None:
        m.leak_caught()


def prepare_multiprocess_dir(path: Path) -> None:
    """Point PROMETHEUS_MULTIPROC_DIR at `path`, emptied of earlier runs' files; call before
    starting the workers."""
    path.mkdir(parents=True, exist_ok=True)
    # Files left by an earlier run would add its workers' counts to this one's. Only the
    # client's own *.db files go: an operator may point this at a directory with more in it.
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROCESS_ENV] = str(path)


def process_exiting() -> None:
    """Drop this worker's live gauges from the shared files (multiprocess mode only)."""
    if multiprocess_enabled() and os.environ.get(MULTIPROCESS_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
