"""Provider-level failures, and the client-facing errors the layer turns them into."""

from __future__ import annotations

from typing import Literal, TypeAlias

from koan.errors import TutorUnavailable

ErrorKind: TypeAlias = Literal[
    "rate_limited",
    "server_error",
    "timeout",
    "connection",
    "malformed",
    "auth",
    "not_found",
    "client_error",
    "circuit_open",
    "unsupported",
]

_RETRYABLE: frozenset[ErrorKind] = frozenset(
    {"rate_limited", "server_error", "timeout", "connection"}
)
# A bad request (too long, invalid parameter) says nothing about the provider's health, so it
# must not open the circuit for every other learner; an open circuit is not a new failure.
_NOT_HEALTH: frozenset[ErrorKind] = frozenset({"client_error", "circuit_open", "unsupported"})

_SUMMARY: dict[ErrorKind, str] = {
    "rate_limited": "rate limited",
    "server_error": "server error",
    "timeout": "timed out",
    "connection": "unreachable",
    "malformed": "sent a malformed response",
    "auth": "rejected the credentials",
    "not_found": "does not know the model or endpoint",
    "client_error": "rejected the request",
    "circuit_open": "paused after repeated failures",
    "unsupported": "cannot handle this kind of request",
}


class LLMConfigError(ValueError):
    """The provider configuration cannot work (unknown kind, missing model or key)."""


class ProviderError(Exception):
    """One provider failed one call; the resilience layer decides what happens next."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        kind: ErrorKind,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.kind: ErrorKind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Whether the same provider may succeed if asked again shortly."""
        return self.kind in _RETRYABLE

    @property
    def counts_against_health(self) -> bool:
        """Whether this failure moves the provider's circuit breaker towards open."""
        return self.kind not in _NOT_HEALTH

    def summary(self) -> str:
        """A short, secret-free description fit for a learner-facing message."""
        text = f"{self.provider} {_SUMMARY[self.kind]}"
        return f"{text} (HTTP {self.status})" if self.status is not None else text

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.message!r}, provider={self.provider!r}, kind={self.kind!r}, "
            f"status={self.status!r}, retry_after={self.retry_after!r})"
        )


class TutorStreamInterrupted(TutorUnavailable):
    """The provider failed after part of the reply was already sent; no fallback is possible."""

    code = "TutorStreamInterrupted"

    def __init__(self, detail: str, *, partial_text: str, retry_after: int = 5) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.partial_text = partial_text


def kind_for_status(status: int) -> ErrorKind:
    """Classify an HTTP status the way the retry policy needs it."""
    if status == 429:
        return "rate_limited"
    if status == 408 or status >= 500:
        # 408 is the server timing out our request: as transient as a 5xx.
        return "timeout" if status == 408 else "server_error"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    return "client_error"
