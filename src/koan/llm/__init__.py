"""Koan's LLM layer: providers (OpenAI-compatible, Anthropic, offline), resilience, pricing,
prompt building and leak detection. Free of database and web-framework imports.

The two SDK-backed providers are imported on first use: the `openai` and `anthropic` packages
are slow to import, and the offline default (and every CLI command) never needs them.
"""

from typing import TYPE_CHECKING, Any

from koan.llm.base import LLMProvider
from koan.llm.budget import ensure_within_budget, projected_cost_usd
from koan.llm.context import LearnerBrief, build_system_prompt, trim_history
from koan.llm.errors import LLMConfigError, ProviderError, TutorStreamInterrupted
from koan.llm.factory import ProviderConfig, build_provider, create_provider
from koan.llm.leak_guard import extract_code, is_leak, leak_score
from koan.llm.offline import OfflineProvider
from koan.llm.pricing import (
    DEFAULT_PRICES,
    ModelPrice,
    PriceTable,
    cost_usd,
    estimate_tokens,
    is_priced,
    load_price_table,
)
from koan.llm.resilience import (
    CircuitBreaker,
    FallbackChain,
    ResilientProvider,
    RetryPolicy,
    SystemTimer,
)
from koan.llm.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    FailingTest,
    StreamChunk,
    StreamEnd,
    StreamItem,
    TutorContext,
    Usage,
)

if TYPE_CHECKING:
    from koan.llm.anthropic_provider import AnthropicProvider
    from koan.llm.openai_provider import OpenAIProvider


def __getattr__(name: str) -> Any:
    if name == "AnthropicProvider":
        from koan.llm.anthropic_provider import AnthropicProvider

        return AnthropicProvider
    if name == "OpenAIProvider":
        from koan.llm.openai_provider import OpenAIProvider

        return OpenAIProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_PRICES",
    "AnthropicProvider",
    "ChatMessage",
    "CircuitBreaker",
    "Completion",
    "CompletionRequest",
    "FailingTest",
    "FallbackChain",
    "LLMConfigError",
    "LLMProvider",
    "LearnerBrief",
    "ModelPrice",
    "OfflineProvider",
    "OpenAIProvider",
    "PriceTable",
    "ProviderConfig",
    "ProviderError",
    "ResilientProvider",
    "RetryPolicy",
    "StreamChunk",
    "StreamEnd",
    "StreamItem",
    "SystemTimer",
    "TutorContext",
    "TutorStreamInterrupted",
    "Usage",
    "build_provider",
    "build_system_prompt",
    "cost_usd",
    "create_provider",
    "ensure_within_budget",
    "estimate_tokens",
    "extract_code",
    "is_leak",
    "is_priced",
    "leak_score",
    "load_price_table",
    "projected_cost_usd",
    "trim_history",
]
