"""Provider for every server that speaks OpenAI's chat-completions API."""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
import httpx2
import openai
from openai import Omit

from koan.llm.base import (
    MALFORMED_ERRORS,
    AsyncClosing,
    ErrorTypes,
    LeadingBlanks,
    build_completion,
    keep_alive_limits,
    malformed,
    normalize_finish_reason,
    sdk_error,
    shared_tls_context,
    sse_data,
    stream_error,
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

TokenParam = Literal["auto", "max_tokens", "max_completion_tokens"]

_COMPLETIONS = "chat/completions"
# What the SDK itself reports as a failed connection (rather than letting it through).
_CONNECTION_ERRORS = (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)
_STREAM_ERRORS: ErrorTypes = (openai.OpenAIError, *MALFORMED_ERRORS)
# OpenAI's reasoning models reject `temperature` and the legacy `max_tokens` parameter.
_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)(?:$|[-.])")


class OpenAIProvider(AsyncClosing):
    """Chat completions over the `openai` SDK: OpenAI, Groq, OpenRouter, Ollama, vLLM, ..."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        name: str = "openai",
        prices: PriceTable | None = None,
        structured_output: bool = True,
        token_param: TokenParam = "auto",
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self._prices = prices
        self._structured_output = structured_output
        self._token_param = token_param
        self._hosted_openai = base_url is None or "api.openai.com" in base_url
        # Local servers (Ollama, llama.cpp, LM Studio) ignore the key but the SDK insists on one.
        self._client = client or openai.AsyncOpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url,
            timeout=timeout,
            # Koan retries with its own policy and circuit breaker; SDK retries would multiply
            # the attempts and hide failures from the breaker.
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(
                limits=keep_alive_limits(openai.DEFAULT_CONNECTION_LIMITS),
                verify=shared_tls_context(),
            ),
        )

        self._http: httpx2.AsyncClient = self._client._client
        self._url = self._client.base_url.join(_COMPLETIONS)
        # Built here, at start-up: the SDK's platform headers read the system once (blocking).
        self._headers = _request_headers(self._client)

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def _send(self, body: dict[str, Any]) -> httpx2.Response:
        """POST a chat-completions request over the SDK's own connection pool, its response
        left unread (streamed); an error status, a timeout or a failed connection is raised
        as the SDK would raise it, as a ProviderError.

        The SDK's `post` builds every request from its options model, wraps the send in its
        retry and authentication layers (Koan's own retries and breaker stand in for them:
        the SDK is built with `max_retries=0`) and reads the reply into its models: about
        half of the CPU of a call against a provider that answers at once
        (docs/benchmarks.md)."""
        request = self._http.build_request(
            "POST",
            self._url,
            content=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
            headers=self._headers,
            timeout=self._client.timeout,
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx2.TimeoutException as exc:
            raise self._error(openai.APITimeoutError(request=request)) from exc
        except _CONNECTION_ERRORS as exc:
            failed = openai.APIConnectionError(request=request)
            failed.__cause__ = exc
            raise self._error(failed) from exc
        if not response.is_success:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise self._error(self._client._make_status_error_from_response(response))
        return response

    def _body(self, req: CompletionRequest, model: str) -> dict[str, Any]:
        """The JSON body of a chat-completions request.

        It goes through the client's `post` as it is, not through the typed
        `chat.completions.create`, which walks its parameters field by field first, on every
        call and for every message, for plain strings and numbers that need no conversion
        (docs/benchmarks.md, "Tutor")."""
        messages = list(req.messages)
        body: dict[str, Any] = {"model": model}
        reasoning = bool(_REASONING_MODEL.match(model.lower()))
        if not reasoning:
            body["temperature"] = req.temperature
        token_param = self._token_param
        if token_param == "auto":
            # Compatible servers (vLLM, llama.cpp, older Ollama) only know `max_tokens`;
            # OpenAI itself deprecated it and rejects it for reasoning models.
            token_param = "max_completion_tokens" if self._hosted_openai else "max_tokens"
        body[token_param] = req.max_tokens
        if req.json_schema is not None:
            if self._structured_output:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "koan_output", "schema": req.json_schema},
                }
            else:
                messages = _with_schema_instruction(messages, req.json_schema)
        body["messages"] = [{"role": m.role, "content": m.content} for m in messages]
        return body

    def _error(self, exc: BaseException) -> ProviderError:
        return sdk_error(self.name, exc, openai)

    async def complete(self, req: CompletionRequest) -> Completion:
        """Ask for one whole completion."""
        model = req.model or self.model
        started = time.perf_counter()
        response = await self._send(self._body(req, model))
        try:
            raw = await response.aread()
        except Exception as exc:
            mapped = transport_error(self.name, exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            await response.aclose()
        try:
            data = json.loads(raw)
        except ValueError as exc:  # the body is not JSON
            raise malformed(self.name, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(data, dict):
            raise malformed(self.name, f"expected a chat completion, got {str(data)[:80]!r}")
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason")
            used = data.get("usage")
            usage = (
                Usage(int(used["prompt_tokens"]), int(used["completion_tokens"]))
                if used is not None
                else None
            )
            answered_model = data.get("model") or model
        except MALFORMED_ERRORS as exc:
            raise malformed(self.name, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(text, str):
            raise malformed(self.name, "message content is not text")
        if usage is None:
            usage = Usage(estimate_message_tokens(req.messages), estimate_tokens(text), True)
        return build_completion(
            text=text,
            model=answered_model,
            provider=self.name,
            usage=usage,
            started=started,
            finish_reason=normalize_finish_reason(finish),
            prices=self._prices,
        )

    async def stream(self, req: CompletionRequest) -> AsyncIterator[StreamItem]:
        """Stream the reply; the last item carries usage from the final usage chunk.

        The request goes out as `complete`'s does; the SDK's per-chunk models are skipped:
        the event lines are read here, as JSON, which costs a fraction as much CPU per token
        and keeps a busy worker relaying many replies at once.
        """
        model = req.model or self.model
        started = time.perf_counter()
        body = {
            **self._body(req, model),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        answered_model = model
        first_token_at: float | None = None
        blanks = LeadingBlanks()
        try:
            # Its status is checked (and errors raised) as for any request.
            response = await self._send(body)
            try:
                done = False
                async for data in sse_data(response.aiter_lines()):
                    # Read on to the end after [DONE]: a response closed unread cannot give
                    # its connection back to the pool, and every message would open a new
                    # one (a TLS handshake to a hosted provider).
                    done = done or data.startswith("[DONE]")
                    if done:
                        continue
                    chunk = json.loads(data)
                    if not isinstance(chunk, dict):
                        raise malformed(self.name, "stream event is not a completion chunk")
                    if chunk.get("error"):
                        failed = stream_error(openai, chunk["error"], response.request)
                        raise self._error(failed)
                    answered_model = chunk.get("model") or answered_model
                    if chunk.get("usage"):
                        used = chunk["usage"]
                        usage = Usage(int(used["prompt_tokens"]), int(used["completion_tokens"]))
                    for choice in (chunk.get("choices") or [])[:1]:
                        if choice.get("finish_reason") is not None:
                            finish = choice["finish_reason"]
                        delta = (choice.get("delta") or {}).get("content")
                        if delta:
                            if not isinstance(delta, str):
                                raise malformed(self.name, "delta content is not text")
                            parts.append(delta)
                            shown = blanks.pass_on(delta)
                            if shown is None:
                                continue
                            if first_token_at is None:
                                first_token_at = time.perf_counter()
                            yield StreamChunk(shown, answered_model, self.name)
            finally:
                await response.aclose()
        except ProviderError:
            raise
        except _STREAM_ERRORS as exc:
            raise self._error(exc) from exc
        except Exception as exc:
            mapped = transport_error(self.name, exc)
            if mapped is None:
                raise
            raise mapped from exc
        text = "".join(parts)
        if finish is None and not parts:
            raise malformed(self.name, "the stream ended without any reply")
        if usage is None:
            usage = Usage(estimate_message_tokens(req.messages), estimate_tokens(text), True)
        yield StreamEnd(
            build_completion(
                text=text,
                model=answered_model,
                provider=self.name,
                usage=usage,
                started=started,
                finish_reason=normalize_finish_reason(finish),
                prices=self._prices,
                first_token_at=first_token_at,
            )
        )


def _request_headers(sdk: openai.AsyncOpenAI) -> httpx2.Headers:
    """The headers the SDK sends with every request (its key, user agent and platform), as it
    builds them for a first attempt (Koan retries on its own: `x-stainless-retry-count` 0)."""
    timeout = sdk.timeout.read if isinstance(sdk.timeout, httpx2.Timeout) else sdk.timeout
    merged = {**sdk.auth_headers, **sdk.default_headers}  # as the SDK merges them
    headers = {k: v for k, v in merged.items() if not isinstance(v, Omit)}
    headers["x-stainless-retry-count"] = "0"
    if timeout is not None:
        headers["x-stainless-read-timeout"] = str(timeout)
    return httpx2.Headers(headers)


def _with_schema_instruction(
    messages: list[ChatMessage], schema: dict[str, object]
) -> list[ChatMessage]:
    """Ask for JSON in words, for servers without structured-output support."""
    instruction = (
        "Reply with a single JSON object and nothing else. It must validate against this "
        f"JSON Schema:\n{json.dumps(schema, sort_keys=True)}"
    )
    if messages and messages[0].role == "system":
        first = messages[0]
        return [ChatMessage("system", f"{first.content}\n\n{instruction}"), *messages[1:]]
    return [ChatMessage("system", instruction), *messages]
