"""Model prices (USD per million tokens), cost of a completion, and token estimation."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from koan.llm.errors import LLMConfigError
from koan.llm.types import ChatMessage, Usage

_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Price of one model in USD per million input and output tokens."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    # False for a model missing from the table: its cost is reported as 0, flagged as unknown.
    known: bool = True


UNKNOWN_PRICE = ModelPrice(Decimal(0), Decimal(0), known=False)

# List prices as published by each provider when this table was written. Operators keep them
# current through a pricing file (see docs/llm.md) rather than waiting for a release.
_SHIPPED: dict[str, tuple[str, str]] = {
    # OpenAI
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.40"),
    "gpt-5": ("1.25", "10.00"),
    "gpt-5-mini": ("0.25", "2.00"),
    "gpt-5-nano": ("0.05", "0.40"),
    "o1": ("15.00", "60.00"),
    "o3": ("2.00", "8.00"),
    "o3-mini": ("1.10", "4.40"),
    "o4-mini": ("1.10", "4.40"),
    "gpt-3.5-turbo": ("0.50", "1.50"),
    # Anthropic
    "claude-opus-4": ("15.00", "75.00"),
    "claude-opus-4-1": ("15.00", "75.00"),
    "claude-opus-4-5": ("5.00", "25.00"),
    "claude-sonnet-4": ("3.00", "15.00"),
    "claude-sonnet-4-5": ("3.00", "15.00"),
    "claude-3-7-sonnet": ("3.00", "15.00"),
    "claude-3-5-sonnet": ("3.00", "15.00"),
    "claude-haiku-4-5": ("1.00", "5.00"),
    "claude-3-5-haiku": ("0.80", "4.00"),
    "claude-3-haiku": ("0.25", "1.25"),
    # Groq
    "llama-3.1-8b-instant": ("0.05", "0.08"),
    "llama-3.3-70b-versatile": ("0.59", "0.79"),
    # Koan's own offline tutor costs nothing.
    "koan-offline": ("0", "0"),
}

# Names providers give the same priced model.
_SHIPPED_ALIASES: dict[str, str] = {
    "claude-opus-4-0": "claude-opus-4",
    "claude-sonnet-4-0": "claude-sonnet-4",
    "chatgpt-4o": "gpt-4o",
}

# Trailing release stamps that name the same priced model: -20241022, -2024-08-06, @20240620,
# -latest, -v1:0 (Bedrock style).
_DATE_SUFFIX = re.compile(r"(?:[-@](?:\d{8}|\d{4}-\d{2}-\d{2})|-latest|-v\d+(?::\d+)?)$")


def normalize_model_name(model: str) -> str:
    """Lower-case a model id and drop provider prefixes and date/version suffixes."""
    name = model.strip().lower()
    # "openai/gpt-4o", "anthropic/claude-...", "groq/llama-..." (OpenRouter, LiteLLM styles).
    name = name.rsplit("/", 1)[-1]
    # Bedrock ids: "anthropic.claude-3-5-haiku-20241022-v1:0".
    if name.startswith("anthropic."):
        name = name.removeprefix("anthropic.")
    previous = None
    while previous != name:
        previous = name
        name = _DATE_SUFFIX.sub("", name)
    return name


class PriceTable:
    """A lookup from model id to price, tolerant of prefixes and date suffixes."""

    def __init__(
        self,
        prices: Mapping[str, ModelPrice],
        *,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._prices = {normalize_model_name(name): price for name, price in prices.items()}
        self._aliases = {
            normalize_model_name(alias): normalize_model_name(target)
            for alias, target in (aliases or {}).items()
        }

    @classmethod
    def default(cls) -> PriceTable:
        """The table shipped with Koan."""
        return cls(
            {name: ModelPrice(Decimal(inp), Decimal(out)) for name, (inp, out) in _SHIPPED.items()},
            aliases=_SHIPPED_ALIASES,
        )

    def models(self) -> list[str]:
        """Every priced model name, normalized."""
        return sorted(self._prices)

    def lookup(self, model: str) -> ModelPrice:
        """Price of a model; `UNKNOWN_PRICE` (0, known=False) when the table lacks it."""
        name = normalize_model_name(model)
        name = self._aliases.get(name, name)
        # No guessing from a longer name's prefix: "o3-pro" costs ten times "o3", and a cost
        # flagged as unknown is more honest than a wrong one. Operators add aliases instead.
        return self._prices.get(name, UNKNOWN_PRICE)

    def merged(self, other: PriceTable) -> PriceTable:
        """A new table where `other`'s entries and aliases win."""
        table = PriceTable({})
        table._prices = {**self._prices, **other._prices}
        table._aliases = {**self._aliases, **other._aliases}
        return table

    def cost_usd(self, model: str, usage: Usage) -> Decimal:
        """Cost of one completion in USD (0 for unknown models)."""
        price = self.lookup(model)
        return (
            Decimal(usage.input_tokens) * price.input_per_mtok
            + Decimal(usage.output_tokens) * price.output_per_mtok
        ) / _MILLION


DEFAULT_PRICES = PriceTable.default()


def cost_usd(model: str, usage: Usage, table: PriceTable | None = None) -> Decimal:
    """Cost of one completion in USD from the given (or shipped) price table."""
    return (table or DEFAULT_PRICES).cost_usd(model, usage)


def is_priced(model: str, table: PriceTable | None = None) -> bool:
    """Whether the model has a price (so a 0 cost is real, not a placeholder)."""
    return (table or DEFAULT_PRICES).lookup(model).known


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise LLMConfigError(f"pricing file: {where} must be a number, got {value!r}")
    try:
        # str() first so 0.15 from YAML stays 0.15 rather than its binary approximation.
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise LLMConfigError(f"pricing file: {where} must be a number, got {value!r}") from exc
    if not result.is_finite() or result < 0:
        raise LLMConfigError(f"pricing file: {where} must be a non-negative number")
    return result


def parse_price_table(data: Any) -> PriceTable:
    """Build a table from the parsed pricing file (see docs/llm.md for the format)."""
    if not isinstance(data, Mapping):
        raise LLMConfigError("pricing file: top level must be a mapping with a 'models' key")
    models = data.get("models", {})
    aliases = data.get("aliases", {})
    if not isinstance(models, Mapping) or not isinstance(aliases, Mapping):
        raise LLMConfigError("pricing file: 'models' and 'aliases' must be mappings")
    prices: dict[str, ModelPrice] = {}
    for name, entry in models.items():
        if not isinstance(entry, Mapping) or not {"input", "output"} <= set(entry):
            raise LLMConfigError(f"pricing file: model {name!r} needs 'input' and 'output' prices")
        prices[str(name)] = ModelPrice(
            _decimal(entry["input"], f"{name}.input"), _decimal(entry["output"], f"{name}.output")
        )
    return PriceTable(prices, aliases={str(k): str(v) for k, v in aliases.items()})


def load_price_table(path: str | Path, *, replace: bool = False) -> PriceTable:
    """Load a JSON or YAML pricing file; its entries override the shipped table unless `replace`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise LLMConfigError(f"pricing file {file}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise LLMConfigError(f"pricing file {file} is not valid JSON/YAML: {exc}") from exc
    table = parse_price_table(data or {})
    return table if replace else DEFAULT_PRICES.merged(table)


_PIECE = re.compile(r"\w+|[^\w\s]")
# Chat formats wrap every message in a few control tokens (role markers, separators).
_PER_MESSAGE_OVERHEAD = 4
_PER_REQUEST_OVERHEAD = 3


def estimate_tokens(text: str) -> int:
    """Rough token count: ~4 characters per token, but at least one per symbol-heavy piece."""
    if not text:
        return 0
    return _estimate_tokens(text)


# Every request estimates its whole prompt twice (trimming the history, projecting the cost),
# and the next turn of the conversation sends the same system prompt and history again, each
# time a regex pass over the whole text. A few hundred recent texts are remembered.
@functools.lru_cache(maxsize=512)
def _estimate_tokens(text: str) -> int:
    by_chars = math.ceil(len(text) / 4)
    # Code is dense in punctuation that BPE tokenizers split into separate tokens, which the
    # character rule undercounts; the piece count catches that.
    by_pieces = math.ceil(len(_PIECE.findall(text)) * 0.8)
    return max(by_chars, by_pieces)


def estimate_message_tokens(messages: Iterable[ChatMessage]) -> int:
    """Rough prompt size of a list of chat messages, including per-message framing."""
    total = _PER_REQUEST_OVERHEAD
    for message in messages:
        total += _PER_MESSAGE_OVERHEAD + estimate_tokens(message.content)
    return total


def estimate_usage(messages: Iterable[ChatMessage], reply: str) -> Usage:
    """Estimated usage for providers that do not report it."""
    return Usage(estimate_message_tokens(messages), estimate_tokens(reply), estimated=True)
