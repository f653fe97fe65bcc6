"""The provider protocol and the helpers every provider implementation shares."""

from __future__ import annotations

import contextlib
import email.utils
import functools
import importlib
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from types import ModuleType, TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import httpx
import structlog

from koan.llm.errors import ErrorKind, ProviderError, kind_for_status
from koan.llm.pricing import DEFAULT_PRICES, PriceTable
from koan.llm.types import Completion, CompletionRequest, StreamItem, Usage

log = structlog.get_logger(__name__)


@runtime_checkable
class LLMProvider(Protocol):
    """Anything that can answer a completion request, whole or streamed."""

    name: str

    async def complete(self, req: CompletionRequest) -> Completion:
        """Return the whole reply; raise ProviderError (or TutorUnavailable for chains)."""
        ...

    def stream(self, req: CompletionRequest) -> AsyncIterator[StreamItem]:
        """Yield StreamChunk deltas, then exactly one StreamEnd."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


ErrorTypes = tuple[type[BaseException], ...]


class AsyncClosing:
    """Lets a provider be used as `async with provider:` so its connections always close."""

    async def close(self) -> None:
        """Release resources; subclasses override."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _transport_error_types() -> tuple[ErrorTypes, ErrorTypes]:
    # The SDKs moved from httpx to httpx2; errors that escape them mid-stream can come from
    # either, so recognise both when present.
    timeouts: list[type[BaseException]] = [httpx.TimeoutException]
    transport: list[type[BaseException]] = [httpx.TransportError, ssl.SSLError]
    with contextlib.suppress(ImportError):
        httpx2 = importlib.import_module("httpx2")
        timeouts.append(httpx2.TimeoutException)
        transport.append(httpx2.TransportError)
    with contextlib.suppress(ImportError):
        anyio = importlib.import_module("anyio")
        transport.extend([anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError])
    return tuple(timeouts), tuple(transport)


TIMEOUT_ERRORS, TRANSPORT_ERRORS = _transport_error_types()

# Idle connections to the provider are kept this long (the SDKs keep them 5 s): a learner
# reads a reply and types the next question in more than 5 s, and would otherwise wait for a
# new TCP and TLS handshake before every first token. A connection the provider closed in
# the meantime is noticed before it is reused.
PROVIDER_KEEPALIVE_S = 60.0


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """The SDKs' default TLS context (the system's trust store), built once per process for
    every provider client: building one reads the whole CA bundle, and a context is meant to be
    shared between connections and clients."""
    httpcore2 = importlib.import_module("httpcore2")
    context: ssl.SSLContext = httpcore2.default_ssl_context()
    return context


def keep_alive_limits(sdk_limits: Any) -> Any:
    """An SDK's default connection limits (`openai.DEFAULT_CONNECTION_LIMITS`, the same in
    `anthropic`), with idle connections kept `PROVIDER_KEEPALIVE_S`."""
    return type(sdk_limits)(
        max_connections=sdk_limits.max_connections,
        max_keepalive_connections=sdk_limits.max_keepalive_connections,
        keepalive_expiry=PROVIDER_KEEPALIVE_S,
    )


# Shapes a broken body produces while we read fields off SDK objects.
MALFORMED_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    TypeError,
)

_MAX_RETRY_AFTER_HEADER = 24 * 3600.0


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or HTTP date)."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        with contextlib.suppress(ValueError):
            return _clamp(float(raw_ms) / 1000.0)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        return _clamp(float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return _clamp(when.timestamp() - current)


def _clamp(seconds: float) -> float | None:
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_HEADER)


def status_error(
    provider: str, status: int, headers: Mapping[str, str] | None, message: str
) -> ProviderError:
    """A ProviderError for an HTTP error status, carrying Retry-After when sent."""
    kind: ErrorKind = kind_for_status(status)
    return ProviderError(
        f"HTTP {status}: {message}"[:500],
        provider=provider,
        kind=kind,
        status=status,
        retry_after=parse_retry_after(headers),
    )


def transport_error(provider: str, exc: BaseException) -> ProviderError | None:
    """Map a timeout or connection failure to a ProviderError; None when it is neither."""
    if isinstance(exc, TIMEOUT_ERRORS):
        return ProviderError(f"timed out: {exc!r}", provider=provider, kind="timeout")
    if isinstance(exc, TRANSPORT_ERRORS):
        return ProviderError(f"connection failed: {exc!r}", provider=provider, kind="connection")
    return None


def sdk_error(provider: str, exc: BaseException, sdk: ModuleType) -> ProviderError:
    """Map an exception of the `openai` or `anthropic` SDK (same error classes) to one of ours."""
    # Both SDKs are generated from one template, so their exception classes share names.
    if isinstance(exc, sdk.APIStatusError):
        failed: Any = exc
        return status_error(provider, failed.status_code, failed.response.headers, failed.message)
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderError("request timed out", provider=provider, kind="timeout")
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderError(
            f"connection failed: {exc.__cause__!r}", provider=provider, kind="connection"
        )
    if isinstance(exc, sdk.APIResponseValidationError):
        return malformed(provider, str(getattr(exc, "message", exc)))
    if isinstance(exc, sdk.APIError):
        # An `error` event inside a stream: the upstream failed while generating.
        return ProviderError(
            str(getattr(exc, "message", exc)), provider=provider, kind="server_error"
        )
    mapped = transport_error(provider, exc)
    if mapped is not None:
        return mapped
    return malformed(provider, f"{type(exc).__name__}: {exc}")


def malformed(provider: str, detail: str) -> ProviderError:
    """A ProviderError for a response Koan cannot read."""
    return ProviderError(f"malformed response: {detail}"[:500], provider=provider, kind="malformed")


# More tokens than any model reads or writes in one call: a count reported above it (or below
# zero) is a server's error, held within bounds so that it neither credits the budget nor
# overflows the call's record.
MAX_REPORTED_TOKENS = 10_000_000


class LeadingBlanks:
    """Blanks a stream opens with, held until its first words: a reply that turns out to have
    none fails (see `build_completion`) before anything of it was passed on."""

    def __init__(self) -> None:
        self._held: list[str] | None = []

    def pass_on(self, delta: str) -> str | None:
        """What to pass on for `delta`: None while there are only blanks so far, then the
        blanks held with the first words, then every delta as it comes."""
        if self._held is None:
            return delta
        self._held.append(delta)
        if not delta.strip():
            return None
        text, self._held = "".join(self._held), None
        return text


def bounded_usage(usage: Usage) -> Usage:
    """`usage` with each count held within 0..MAX_REPORTED_TOKENS."""
    counts = (usage.input_tokens, usage.output_tokens)
    held = tuple(min(max(count, 0), MAX_REPORTED_TOKENS) for count in counts)
    if held == counts:
        return usage
    log.warning("llm.usage_out_of_range", input_tokens=counts[0], output_tokens=counts[1])
    return Usage(held[0], held[1], usage.estimated)


def build_completion(
    *,
    text: str,
    model: str,
    provider: str,
    usage: Usage,
    started: float,
    finish_reason: str,
    prices: PriceTable | None = None,
    first_token_at: float | None = None,
) -> Completion:
    """Assemble a Completion with latency and cost filled in; a reply with no words in it is
    no reply (malformed), so that it is never stored or shown as the tutor's answer."""
    if not text.strip():
        raise malformed(provider, "the reply was empty")
    table = prices or DEFAULT_PRICES
    price = table.lookup(model)
    usage = bounded_usage(usage)
    now = time.perf_counter()
    return Completion(
        text=text,
        model=model,
        provider=provider,
        usage=usage,
        latency_ms=int((now - started) * 1000),
        finish_reason=finish_reason,
        cost_usd=table.cost_usd(model, usage),
        priced=price.known,
        first_token_ms=None if first_token_at is None else int((first_token_at - started) * 1000),
    )


def normalize_finish_reason(reason: str | None) -> str:
    """Map provider stop reasons onto OpenAI's vocabulary: stop, length, content_filter, ..."""
    if reason is None:
        return "stop"
    return {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "max_tokens": "length",
        "refusal": "content_filter",
        "tool_use": "tool_calls",
    }.get(reason, reason)


async def aclose_quietly(iterator: object) -> None:
    """Close an async generator if it is one; used when a consumer stops early."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` of each Server-Sent Event (multi-line data joined; comments, `event:`, `id:`
    and `retry:` fields skipped), as the SSE specification reads it.

    Providers read their streams through this instead of the SDKs' per-event models, which
    cost several times as much CPU per token."""
    pending: list[str] = []
    async for line in lines:
        if not line:
            if pending:
                yield "\n".join(pending)
                pending = []
        elif line.startswith("data:"):
            value = line[5:]
            pending.append(value[1:] if value.startswith(" ") else value)
    if pending:
        yield "\n".join(pending)


def stream_error(sdk: ModuleType, error: object, request: Any) -> BaseException:
    """An `error` event mid-stream, as the SDK (`openai` or `anthropic`) would raise it."""
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    failed: BaseException = sdk.APIError(message, request=request, body=error)
    return failed
