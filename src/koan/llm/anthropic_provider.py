"""Provider for Anthropic's Messages API."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message, TextBlock

from koan.llm import base
from koan.llm.base import MALFORMED_ERRORS, AsyncClosing, ErrorTypes
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

_MESSAGES = "/v1/messages"
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
            http_client=anthropic.DefaultAsyncHttpxClient(
                limits=base.keep_alive_limits(anthropic.DEFAULT_CONNECTION_LIMITS),
                verify=base.shared_tls_context(),
            ),
        )

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    def _body(self, req: CompletionRequest, model: str) -> dict[str, Any]:
        """The JSON body of a Messages request. It goes through the client's `post` as it is
        (see `OpenAIProvider._body`): the typed `messages.create` walks every message field
        by field first."""
        system, turns = split_system(req.messages)
        if req.json_schema is not None:
            # Structured output is not available on every Claude model or gateway; asking in
            # words works everywhere and the caller validates the JSON anyway.
            system = (
                f"{system}\n\nReply with a single JSON object and nothing else. It must validate "
                f"against this JSON Schema:\n{json.dumps(req.json_schema, sort_keys=True)}"
            ).strip()
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": req.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in turns],
        }
        if self._send_temperature:
            # Newer Claude models reject sampling parameters, so temperature is opt-in.
            body["temperature"] = req.temperature
        if system:
            body["system"] = system
        return body

    def _error(self, exc: BaseException) -> ProviderError:
        return base.sdk_error(self.name, exc, anthropic)

    async def complete(self, req: CompletionRequest) -> Completion:
        """Ask for one whole message."""
        model = req.model or self.model
        started = time.perf_counter()
        try:
            message = await self._client.post(
                _MESSAGES, cast_to=Message, body=self._body(req, model)
            )
        except (anthropic.AnthropicError, ValueError) as exc:
            # ValueError: the body was not valid JSON.
            raise self._error(exc) from exc
        if not isinstance(message, Message):
            raise base.malformed(self.name, f"expected a message, got {str(message)[:80]!r}")
        try:
            text = "".join(block.text for block in message.content if isinstance(block, TextBlock))
            usage = Usage(_input_tokens(message.usage), int(message.usage.output_tokens or 0))
            stop_reason = message.stop_reason
            answered_model = message.model or model
        except MALFORMED_ERRORS as exc:
            raise base.malformed(self.name, f"{type(exc).__name__}: {exc}") from exc
        return base.build_completion(
            text=text,
            model=answered_model,
            provider=self.name,
            usage=usage,
            started=started,
            finish_reason=base.normalize_finish_reason(stop_reason),
            prices=self._prices,
        )

    async def stream(self, req: CompletionRequest) -> AsyncIterator[StreamItem]:
        """Stream text deltas; usage comes from message_start and message_delta events.

        The SDK's client makes the request and hands back the raw response; its events are
        read here as JSON lines (see `base.sse_data`), to the end of the body, so the connection
        goes back to the pool."""
        model = req.model or self.model
        started = time.perf_counter()
        body = {**self._body(req, model), "stream": True}
        parts: list[str] = []
        input_tokens: int | None = None
        output_tokens: int | None = None
        stop_reason: str | None = None
        answered_model = model
        first_token_at: float | None = None
        blanks = base.LeadingBlanks()
        finished = False
        try:
            response = await self._client.post(
                _MESSAGES, cast_to=httpx2.Response, body=body, stream=True
            )
            try:
                async for data in base.sse_data(response.aiter_lines()):
                    event = json.loads(data)
                    if not isinstance(event, dict):
                        raise base.malformed(self.name, "stream event is not an object")
                    kind = event.get("type")
                    if kind == "content_block_delta":
                        delta = event["delta"]
                        text = delta.get("text") if delta.get("type") == "text_delta" else None
                        if text:
                            if not isinstance(text, str):
                                raise base.malformed(self.name, "text delta is not text")
                            parts.append(text)
                            shown = blanks.pass_on(text)
                            if shown is None:
                                continue
                            if first_token_at is None:
                                first_token_at = time.perf_counter()
                            yield StreamChunk(shown, answered_model, self.name)
                    elif kind == "message_start":
                        message = event["message"]
                        answered_model = message.get("model") or answered_model
                        input_tokens = _input_tokens(message["usage"])
                        output_tokens = int(message["usage"].get("output_tokens") or 0)
                    elif kind == "message_delta":
                        stop_reason = event["delta"].get("stop_reason") or stop_reason
                        used = event.get("usage") or {}
                        # Counts in message_delta are cumulative totals, not increments.
                        if used.get("output_tokens") is not None:
                            output_tokens = int(used["output_tokens"])
                        if used.get("input_tokens") is not None:
                            input_tokens = _input_tokens(used)
                    elif kind == "message_stop":
                        finished = True
                    elif kind == "error":
                        raise self._error(
                            base.stream_error(anthropic, event.get("error"), response.request)
                        )
            finally:
                await response.aclose()
        except ProviderError:
            raise
        except _STREAM_ERRORS as exc:
            raise self._error(exc) from exc
        except Exception as exc:
            mapped = base.transport_error(self.name, exc)
            if mapped is None:
                raise
            raise mapped from exc
        if not finished:
            # Without message_stop the reply may be cut short: treat it as a broken stream.
            raise base.malformed(self.name, "the stream ended before message_stop")
        text = "".join(parts)
        if input_tokens is None or output_tokens is None:
            usage = Usage(estimate_message_tokens(req.messages), estimate_tokens(text), True)
        else:
            usage = Usage(input_tokens, output_tokens)
        yield StreamEnd(
            base.build_completion(
                text=text,
                model=answered_model,
                provider=self.name,
                usage=usage,
                started=started,
                finish_reason=base.normalize_finish_reason(stop_reason),
                prices=self._prices,
                first_token_at=first_token_at,
            )
        )


def _input_tokens(usage: Any) -> int:
    """Input tokens from a usage object (the SDK's) or mapping (a raw stream event)."""
    # With prompt caching the prompt is split across three counters; all of them are input.
    fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    if isinstance(usage, Mapping):
        return sum(int(usage.get(field) or 0) for field in fields)
    return sum(int(getattr(usage, field, None) or 0) for field in fields)


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
