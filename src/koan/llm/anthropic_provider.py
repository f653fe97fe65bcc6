"""Provider for Anthropic's Messages API."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anthropic
from anthropic.types import Message, TextBlock

from koan.llm.base import (
    MALFORMED_ERRORS,
    AsyncClosing,
    ErrorTypes,
    build_completion,
    malformed,
    normalize_finish_reason,
    sdk_error,
    transport_error,
)
from koan.llm.errors import ProviderError
from koan.llm.pricing import PriceTable, estimate_message_tokens, estimate_tokens
from koan.llm.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    StreamChunk,
    StreamEnd,
    StreamItem,
    Usage,
)

_STREAM_ERRORS: ErrorTypes = (anthropic.AnthropicError, *MALFORMED_ERRORS)


class AnthropicProvider(AsyncClosing):
    """Claude models over the `anthropic` SDK (base URL configurable for gateways)."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        name: str = "anthropic",
        prices: PriceTable | None = None,
        send_temperature: bool = False,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self._prices = prices
        self._send_temperature = send_temperature
        self._client = client or anthropic.AsyncAnthropic(
            # An explicit key keeps the SDK from searching the environment and profile files.
            api_key=api_key or "not-configured",
            base_url=base_url,
            timeout=timeout,
            # Retries belong to Koan's resilience layer (see OpenAIProvider).
            max_retries=0,
        )

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    def _params(self, req: CompletionRequest, model: str) -> dict[str, Any]:
        system, turns = split_system(req.messages)
        if req.json_schema is not None:
            # Structured output is not available on every Claude model or gateway; asking in
            # words works everywhere and the caller validates the JSON anyway.
            system = (
                f"{system}\n\nReply with a single JSON object and nothing else. It must validate "
                f"against this JSON Schema:\n{json.dumps(req.json_schema, sort_keys=True)}"
            ).strip()
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": req.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in turns],
        }
        if self._send_temperature:
            # Newer Claude models reject sampling parameters (and the 1.x SDK dropped the
            # keyword), so temperature is opt-in and travels in the raw body.
            params["extra_body"] = {"temperature": req.temperature}
        if system:
            params["system"] = system
        return params

    def _error(self, exc: BaseException) -> ProviderError:
        return sdk_error(self.name, exc, anthropic)

    async def complete(self, req: CompletionRequest) -> Completion:
        """Ask for one whole message."""
        model = req.model or self.model
        started = time.perf_counter()
        try:
            message = await self._client.messages.create(**self._params(req, model))
        except (anthropic.AnthropicError, ValueError) as exc:
            # ValueError: the body was not valid JSON.
            raise self._error(exc) from exc
        if not isinstance(message, Message):
            raise malformed(self.name, f"expected a message, got {str(message)[:80]!r}")
        try:
            text = "".join(block.text for block in message.content if isinstance(block, TextBlock))
            usage = Usage(_input_tokens(message.usage), int(message.usage.output_tokens or 0))
            stop_reason = message.stop_reason
            answered_model = message.model or model
        except MALFORMED_ERRORS as exc:
            raise malformed(self.name, f"{type(exc).__name__}: {exc}") from exc
        return build_completion(
            text=text,
            model=answered_model,
            provider=self.name,
            usage=usage,
            started=started,
            finish_reason=normalize_finish_reason(stop_reason),
            prices=self._prices,
        )

    async def stream(self, req: CompletionRequest) -> AsyncIterator[StreamItem]:
        """Stream text deltas; usage comes from message_start and message_delta events."""
        model = req.model or self.model
        started = time.perf_counter()
        params = self._params(req, model)
        parts: list[str] = []
        input_tokens: int | None = None
        output_tokens: int | None = None
        stop_reason: str | None = None
        answered_model = model
        first_token_at: float | None = None
        finished = False
        try:
            stream = await self._client.messages.create(**params, stream=True)
        except (anthropic.AnthropicError, ValueError) as exc:
            raise self._error(exc) from exc
        if not isinstance(stream, anthropic.AsyncStream):
            raise malformed(self.name, "expected an event stream")
        try:
            async with stream:
                async for event in stream:
                    kind = getattr(event, "type", None)
                    if kind == "message_start":
                        answered_model = event.message.model or answered_model
                        input_tokens = _input_tokens(event.message.usage)
                        output_tokens = event.message.usage.output_tokens
                    elif kind == "content_block_delta":
                        if getattr(event.delta, "type", None) == "text_delta" and event.delta.text:
                            if first_token_at is None:
                                first_token_at = time.perf_counter()
                            parts.append(event.delta.text)
                            yield StreamChunk(event.delta.text)
                    elif kind == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        # Counts in message_delta are cumulative totals, not increments.
                        if event.usage.output_tokens is not None:
                            output_tokens = event.usage.output_tokens
                        if getattr(event.usage, "input_tokens", None) is not None:
                            input_tokens = _input_tokens(event.usage)
                    elif kind == "message_stop":
                        finished = True
        except ProviderError:
            raise
        except _STREAM_ERRORS as exc:
            raise self._error(exc) from exc
        except Exception as exc:
            mapped = transport_error(self.name, exc)
            if mapped is None:
                raise
            raise mapped from exc
        if not finished:
            # Without message_stop the reply may be cut short: treat it as a broken stream.
            raise malformed(self.name, "the stream ended before message_stop")
        text = "".join(parts)
        if input_tokens is None or output_tokens is None:
            usage = Usage(estimate_message_tokens(req.messages), estimate_tokens(text), True)
        else:
            usage = Usage(input_tokens, output_tokens)
        yield StreamEnd(
            build_completion(
                text=text,
                model=answered_model,
                provider=self.name,
                usage=usage,
                started=started,
                finish_reason=normalize_finish_reason(stop_reason),
                prices=self._prices,
                first_token_at=first_token_at,
            )
        )


def _input_tokens(usage: Any) -> int:
    # With prompt caching the prompt is split across three counters; all of them are input.
    return sum(
        int(getattr(usage, field, None) or 0)
        for field in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )


def split_system(messages: Sequence[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """Pull system messages out and make turns alternate, starting with the user."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[ChatMessage] = []
    for message in messages:
        if message.role == "system":
            continue
        if turns and turns[-1].role == message.role:
            # The Messages API rejects two turns in a row from the same role.
            turns[-1] = ChatMessage(message.role, f"{turns[-1].content}\n\n{message.content}")
        else:
            turns.append(message)
    while turns and turns[0].role == "assistant":
        turns.pop(0)
    if not turns:
        turns.append(ChatMessage("user", "Please begin."))
    return system, turns
