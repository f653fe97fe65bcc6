"""Building providers from plain configuration values."""

from __future__ import annotations

import pytest

import koan.llm as llm
from koan.llm import (
    FallbackChain,
    LLMConfigError,
    LLMProvider,
    OfflineProvider,
    OpenAIProvider,
    ProviderConfig,
    ResilientProvider,
    build_provider,
    create_provider,
)

# The `anthropic` SDK takes about a second to import: it is imported when these tests run,
# not when every worker collects them, and one worker runs every test that needs it.
pytestmark = pytest.mark.xdist_group("anthropic-sdk")


def inner(chain: FallbackChain, index: int) -> LLMProvider:
    member = chain.providers[index]
    assert isinstance(member, ResilientProvider)
    return member.inner


async def test_openai_compatible_local_server() -> None:
    config = ProviderConfig(
        kind="openai", base_url="http://127.0.0.1:11434/v1", model="llama3.1:8b", name="ollama"
    )

    async with build_provider(config) as chain:
        provider = inner(chain, 0)
        assert isinstance(provider, OpenAIProvider)
        assert provider.name == "ollama"
        assert provider.model == "llama3.1:8b"
        assert isinstance(provider, LLMProvider)


async def test_chain_order_and_bare_offline_fallback() -> None:
    primary = ProviderConfig(kind="anthropic", api_key="sk-ant", model="claude-haiku-4-5")
    backup = ProviderConfig(
        kind="openai",
        api_key="gsk",
        base_url="https://groq.example/v1",
        model="llama-3.1-8b-instant",
        name="groq",
    )

    async with build_provider(primary, fallbacks=[backup, "offline"]) as chain:
        assert isinstance(inner(chain, 0), llm.AnthropicProvider)
        assert isinstance(inner(chain, 1), OpenAIProvider)
        assert isinstance(inner(chain, 2), OfflineProvider)
        assert [p.name for p in chain.providers] == ["anthropic", "groq", "offline"]


async def test_duplicate_names_are_made_distinct() -> None:
    async with build_provider("offline", fallbacks=["offline"]) as chain:
        assert [p.name for p in chain.providers] == ["offline", "offline-2"]


async def test_offline_alone_needs_nothing() -> None:
    async with build_provider(ProviderConfig(kind="offline")) as chain:
        assert isinstance(inner(chain, 0), OfflineProvider)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ProviderConfig(kind="cohere"), "unknown LLM provider"),
        (ProviderConfig(kind="openai"), "needs an API key"),
        (ProviderConfig(kind="anthropic"), "needs an API key"),
        (ProviderConfig(kind="openai", base_url="http://localhost:8080/v1"), "needs a model"),
        (ProviderConfig(kind="offline", timeout=0), "timeout must be positive"),
    ],
)
def test_unusable_configurations_fail_early(config: ProviderConfig, message: str) -> None:
    with pytest.raises(LLMConfigError, match=message):
        create_provider(config)


def test_api_key_is_not_in_the_config_repr() -> None:
    config = ProviderConfig(kind="openai", api_key="sk-secret-value")

    assert "sk-secret-value" not in repr(config)
