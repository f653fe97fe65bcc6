"""The tutor's language model as the settings describe it, shared by every request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

from koan.config import Settings
from koan.llm import (
    DEFAULT_PRICES,
    Completion,
    CompletionRequest,
    LLMProvider,
    PriceTable,
    ProviderConfig,
    build_provider,
    load_price_table,
    projected_cost_usd,
)
from koan.llm.factory import DEFAULT_MODELS
from koan.llm.offline import OFFLINE_MODEL
from koan.llm.resilience import Timer


class StreamTracker:
    """Counts replies being streamed, so shutdown (and tests) can wait for them to be stored."""

    def __init__(self) -> None:
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def active(self) -> int:
        """Streams not finished yet."""
        return self._active

    def begin(self) -> None:
        """A stream started."""
        self._active += 1
        self._idle.clear()

    def end(self) -> None:
        """A stream stored its reply (complete or partial)."""
        self._active = max(0, self._active - 1)
        if self._active == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once every stream has stored its reply."""
        while self._active:
            await self._idle.wait()


@dataclass
class TutorLLM:
    """The fallback chain plus what budgets and the cache need to know about it."""

    provider: LLMProvider
    kinds: tuple[str, ...]
    models: tuple[str, ...]
    prices: PriceTable = field(default_factory=lambda: DEFAULT_PRICES)
    streams: StreamTracker = field(default_factory=StreamTracker)

    @property
    def model(self) -> str:
        """The primary model: what the cache key and the reports name."""
        return self.models[0]

    def by_primary(self, completion: Completion) -> bool:
        """Whether the primary provider wrote `completion` (not a fallback standing in)."""
        return completion.provider == self.provider.name

    @property
    def offline_only(self) -> bool:
        """No model is connected: every answer comes from the offline tutor, for free."""
        return all(kind == "offline" for kind in self.kinds)

    @property
    def tailors_hints(self) -> bool:
        """Hints come from the model only when the primary provider is a real one."""
        return self.kinds[0] != "offline"

    @property
    def can_generate(self) -> bool:
        """Whether any provider in the chain can write exercises."""
        return not self.offline_only

    def projected_cost(self, request: CompletionRequest) -> Decimal:
        """Worst case over the chain: any member may end up answering."""
        return max(
            (projected_cost_usd(request, model, self.prices) for model in self.models),
            default=Decimal(0),
        )

    async def close(self) -> None:
        """Close every provider's connections."""
        await self.provider.close()


def _config(kind: str, base_url: str, api_key: str, model: str, timeout: float) -> ProviderConfig:
    return ProviderConfig(
        kind=kind,
        base_url=base_url or None,
        api_key=api_key or None,
        model=model or None,
        timeout=timeout,
    )


def _model_of(config: ProviderConfig) -> str:
    kind = config.kind.strip().lower()
    if kind == "offline":
        return OFFLINE_MODEL
    return config.model or DEFAULT_MODELS.get(kind, "unknown")


def build_tutor_llm(settings: Settings, *, timer: Timer | None = None) -> TutorLLM:
    """The provider chain from KOAN_LLM_*; raises LLMConfigError for a setup that cannot work."""
    prices = (
        load_price_table(settings.llm_pricing_file) if settings.llm_pricing_file else DEFAULT_PRICES
    )
    primary = _config(
        settings.llm_provider,
        settings.llm_base_url,
        settings.llm_api_key.get_secret_value(),
        settings.llm_model,
        settings.llm_timeout_s,
    )
    fallbacks: list[ProviderConfig] = []
    for kind in (k.strip().lower() for k in settings.llm_fallback.split(",")):
        if not kind:
            continue
        fallbacks.append(
            ProviderConfig(kind="offline")
            if kind == "offline"
            else _config(
                kind,
                settings.llm_fallback_base_url,
                settings.llm_fallback_api_key.get_secret_value(),
                settings.llm_fallback_model,
                settings.llm_timeout_s,
            )
        )
    configs = [primary, *fallbacks]
    provider = build_provider(primary, fallbacks=fallbacks, prices=prices, timer=timer)
    return TutorLLM(
        provider=provider,
        kinds=tuple(c.kind.strip().lower() for c in configs),
        models=tuple(_model_of(c) for c in configs),
        prices=prices,
    )


def offline_tutor_llm() -> TutorLLM:
    """The default: Koan's offline tutor alone (no network, no key, no cost)."""
    return TutorLLM(provider=build_provider("offline"), kinds=("offline",), models=(OFFLINE_MODEL,))
