"""The tutor's provider chain as KOAN_LLM_* settings describe it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from koan.config import Settings
from koan.llm import ChatMessage, CompletionRequest, LLMConfigError
from koan.llm.tutor_llm import build_tutor_llm


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def test_the_default_is_the_offline_tutor_alone() -> None:
    tutor = build_tutor_llm(settings())
    assert tutor.offline_only
    assert not tutor.can_generate
    assert not tutor.tailors_hints
    assert tutor.model == "koan-offline"
    await tutor.close()


# Builds an Anthropic provider: runs on the worker that imports that SDK for tests/llm anyway.
@pytest.mark.xdist_group("anthropic-sdk")
async def test_a_chain_with_fallbacks_and_a_pricing_file(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  house-model: {input: 1000, output: 2000}\n")
    tutor = build_tutor_llm(
        settings(
            llm_provider="openai",
            llm_base_url="http://127.0.0.1:9/v1",
            llm_model="house-model",
            llm_fallback="anthropic, offline",
            llm_fallback_api_key="sk-ant-test",
            llm_pricing_file=str(prices),
        )
    )
    assert tutor.kinds == ("openai", "anthropic", "offline")
    assert tutor.models == ("house-model", "claude-haiku-4-5", "koan-offline")
    assert tutor.can_generate
    assert tutor.tailors_hints
    request = CompletionRequest(messages=[ChatMessage("user", "hi")], max_tokens=1000)
    # The worst case over the chain: 1000 output tokens of house-model alone cost $2.
    assert tutor.projected_cost(request) > Decimal("2")
    await tutor.close()


@pytest.mark.parametrize(
    "values",
    [
        {"llm_provider": "openai"},  # hosted OpenAI without a key
        {"llm_provider": "openai", "llm_base_url": "http://localhost:11434/v1"},  # no model
        {"llm_provider": "anthropic"},
        {"llm_fallback": "anthropic"},  # a hosted fallback without a key
    ],
)
def test_a_configuration_that_cannot_work_is_refused_at_start_up(values: dict[str, str]) -> None:
    with pytest.raises(LLMConfigError):
        build_tutor_llm(settings(**values))


def test_blank_optional_settings_mean_unset() -> None:
    loaded = settings(llm_global_daily_budget_usd="", llm_pricing_file=" ")
    assert loaded.llm_global_daily_budget_usd is None
    assert loaded.llm_pricing_file is None
    assert loaded.llm_user_daily_budget_usd == Decimal("0.50")
