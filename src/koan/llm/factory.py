"""Build providers and the fallback chain from plain configuration values."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from koan.llm.base import LLMProvider
from koan.llm.errors import LLMConfigError
from koan.llm.offline import OfflineProvider
from koan.llm.pricing import PriceTable
from koan.llm.resilience import (
    CircuitBreaker,
    FallbackChain,
    ResilientProvider,
    RetryPolicy,
    SystemTimer,
    Timer,
)

ProviderKind: TypeAlias = Literal["openai", "anthropic", "offline"]

DEFAULT_MODELS: dict[str, str] = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
}


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One provider as an operator configures it."""

    kind: ProviderKind | str
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    name: str | None = None  # label in logs and Completion.provider, e.g. "groq"

    @classmethod
    def parse(cls, value: ProviderConfig | str) -> ProviderConfig:
        """Accept a config, or a bare kind such as "offline"."""
        return value if isinstance(value, ProviderConfig) else cls(kind=value)


def create_provider(config: ProviderConfig, *, prices: PriceTable | None = None) -> LLMProvider:
    """One bare provider (no retries, no breaker) from its configuration."""
    kind = config.kind.strip().lower()
    if config.timeout <= 0:
        raise LLMConfigError(f"LLM timeout must be positive, got {config.timeout}")
    if kind == "offline":
        return OfflineProvider(name=config.name or "offline")
    if kind == "openai":
        model = config.model
        if model is None:
            if config.base_url is not None:
                raise LLMConfigError(
                    "an OpenAI-compatible server needs a model name (for example "
                    "'llama3.1:8b' for Ollama)"
                )
            model = DEFAULT_MODELS["openai"]
        if config.base_url is None and not config.api_key:
            raise LLMConfigError("the OpenAI API needs an API key (or set a base_url)")
        from koan.llm.openai_provider import OpenAIProvider  # the SDK only when configured

        return OpenAIProvider(
            model=model,
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout,
            name=config.name or "openai",
            prices=prices,
        )
    if kind == "anthropic":
        if config.base_url is None and not config.api_key:
            raise LLMConfigError("the Anthropic API needs an API key (or set a base_url)")
        from koan.llm.anthropic_provider import AnthropicProvider  # the SDK only when configured

        return AnthropicProvider(
            model=config.model or DEFAULT_MODELS["anthropic"],
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout,
            name=config.name or "anthropic",
            prices=prices,
        )
    raise LLMConfigError(f"unknown LLM provider {config.kind!r}: use openai, anthropic or offline")


def build_provider(
    primary: ProviderConfig | str,
    *,
    fallbacks: Sequence[ProviderConfig | str] = (),
    prices: PriceTable | None = None,
    retry: RetryPolicy | None = None,
    failure_threshold: int = 5,
    cooldown_seconds: float = 30.0,
    timer: Timer | None = None,
    rng: random.Random | None = None,
) -> FallbackChain:
    """The provider the app uses: each member retried and circuit-broken, tried in order."""
    configs = [ProviderConfig.parse(primary), *(ProviderConfig.parse(f) for f in fallbacks)]
    timer = timer or SystemTimer()
    members: list[LLMProvider] = []
    names: set[str] = set()
    for config in configs:
        provider = create_provider(config, prices=prices)
        if provider.name in names:
            # Distinct names keep logs, metrics and circuit breakers apart.
            provider.name = f"{provider.name}-{len(members) + 1}"
        names.add(provider.name)
        members.append(
            ResilientProvider(
                provider,
                policy=retry,
                breaker=CircuitBreaker(
                    failure_threshold=failure_threshold, cooldown=cooldown_seconds, timer=timer
                ),
                timer=timer,
                rng=rng,
            )
        )
    return FallbackChain(members)
