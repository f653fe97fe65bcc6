"""Model prices, cost, token estimation and budget checks."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from koan.errors import BudgetExceeded
from koan.llm import (
    ChatMessage,
    CompletionRequest,
    LLMConfigError,
    Usage,
    cost_usd,
    ensure_within_budget,
    estimate_tokens,
    is_priced,
    load_price_table,
    projected_cost_usd,
)
from koan.llm.pricing import DEFAULT_PRICES, estimate_message_tokens, normalize_model_name


@pytest.mark.parametrize(
    ("model", "usage", "expected"),
    [
        ("gpt-4o", Usage(1_000_000, 1_000_000), Decimal("12.50")),
        ("gpt-4o-mini", Usage(2000, 1000), Decimal("0.0009")),
        ("gpt-4.1", Usage(1000, 1000), Decimal("0.010")),
        ("gpt-4.1-mini", Usage(1000, 0), Decimal("0.0004")),
        ("o3-mini", Usage(0, 1000), Decimal("0.0044")),
        ("claude-sonnet-4", Usage(1000, 1000), Decimal("0.018")),
        ("claude-3-5-haiku", Usage(1000, 1000), Decimal("0.0048")),
        ("claude-haiku-4-5", Usage(1000, 1000), Decimal("0.006")),
        ("llama-3.1-8b-instant", Usage(1_000_000, 1_000_000), Decimal("0.13")),
    ],
)
def test_cost_of_shipped_models(model: str, usage: Usage, expected: Decimal) -> None:
    assert cost_usd(model, usage) == expected
    assert is_priced(model)


@pytest.mark.parametrize(
    ("name", "same_as"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("anthropic/claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("groq/llama-3.1-8b-instant", "llama-3.1-8b-instant"),
        ("GPT-4o", "gpt-4o"),
    ],
)
def test_model_names_tolerate_dates_and_prefixes(name: str, same_as: str) -> None:
    assert DEFAULT_PRICES.lookup(name) == DEFAULT_PRICES.lookup(same_as)
    assert DEFAULT_PRICES.lookup(name).known


@pytest.mark.parametrize("model", ["llama3.1:8b", "o3-pro", "claude-opus-4-6", "my-finetune"])
def test_unknown_models_cost_zero_and_are_flagged(model: str) -> None:
    # A longer name is a different model ("o3-pro" costs ten times "o3"): never guess.
    assert cost_usd(model, Usage(1000, 1000)) == 0
    assert not is_priced(model)


def test_normalize_model_name() -> None:
    assert normalize_model_name(" OpenRouter/Anthropic/Claude-Sonnet-4-20250514 ") == (
        "claude-sonnet-4"
    )


def test_yaml_pricing_file_overrides_and_extends(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n"
        "  gpt-4o: {input: 2.00, output: 8.00}\n"
        "  qwen2.5-coder:7b: {input: 0, output: 0}\n"
        "aliases:\n"
        "  tutor-prod: gpt-4o\n"
    )

    table = load_price_table(path)

    assert table.cost_usd("gpt-4o", Usage(1_000_000, 0)) == Decimal("2.00")
    assert table.cost_usd("tutor-prod", Usage(0, 1_000_000)) == Decimal("8.00")
    assert table.lookup("qwen2.5-coder:7b").known
    # Shipped entries the file does not mention are still there.
    assert table.cost_usd("gpt-4o-mini", Usage(1_000_000, 0)) == Decimal("0.15")


def test_json_pricing_file_can_replace_the_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"house-model": {"input": "1.5", "output": 3}}}))

    table = load_price_table(path, replace=True)

    assert table.models() == ["house-model"]
    assert table.cost_usd("house-model", Usage(2_000_000, 1_000_000)) == Decimal("6.0")
    assert not table.lookup("gpt-4o").known


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("models: [1, 2]", "must be mappings"),
        ("models:\n  m: {input: 1}", "needs 'input' and 'output'"),
        ("models:\n  m: {input: -1, output: 1}", "non-negative"),
        ("models:\n  m: {input: cheap, output: 1}", "must be a number"),
        ("models: {m: {input: 1, output: 1}", "not valid JSON/YAML"),
    ],
)
def test_invalid_pricing_files_are_rejected_clearly(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(content)

    with pytest.raises(LLMConfigError, match=message):
        load_price_table(path)


def test_missing_pricing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(LLMConfigError, match="pricing file"):
        load_price_table(tmp_path / "nope.yaml")


def test_estimate_tokens_is_about_four_characters_per_token() -> None:
    assert estimate_tokens("") == 0
    english = "The quick brown fox jumps over the lazy dog " * 10
    assert 80 <= estimate_tokens(english) <= 130
    # Punctuation-heavy code is denser than prose.
    code = "a[i]=b(c);" * 10
    assert estimate_tokens(code) > len(code) / 4


def test_estimate_message_tokens_counts_framing() -> None:
    messages = [ChatMessage("system", ""), ChatMessage("user", "")]

    assert estimate_message_tokens(messages) > 0
    assert estimate_message_tokens([*messages, ChatMessage("user", "hello there")]) > (
        estimate_message_tokens(messages)
    )


def test_projected_cost_assumes_the_full_reply() -> None:
    request = CompletionRequest(messages=[ChatMessage("user", "hi")], max_tokens=1000)

    projected = projected_cost_usd(request, "gpt-4o")

    assert projected >= Decimal("0.010")  # 1000 output tokens at $10 per million


def test_budget_within_limit_passes() -> None:
    ensure_within_budget(
        spent_usd=Decimal("0.10"),
        limit_usd=Decimal("0.50"),
        projected_usd=Decimal("0.01"),
        resets_in_seconds=3600,
    )
    ensure_within_budget(spent_usd=Decimal(99), limit_usd=None, resets_in_seconds=1)


def test_budget_exceeded_is_429_with_retry_after() -> None:
    with pytest.raises(BudgetExceeded) as caught:
        ensure_within_budget(
            spent_usd=Decimal("0.49"),
            limit_usd=Decimal("0.50"),
            projected_usd=Decimal("0.02"),
            resets_in_seconds=7200.2,
        )

    error = caught.value
    assert error.status_code == 429
    assert error.code == "BudgetExceeded"
    assert error.headers["Retry-After"] == "7201"
    assert "$0.50" in error.detail
    assert "2 h" in error.detail
