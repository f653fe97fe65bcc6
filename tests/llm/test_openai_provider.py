"""OpenAIProvider against the loopback server, through the real `openai` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from koan.llm import (
    ChatMessage,
    CompletionRequest,
    OpenAIProvider,
    ProviderError,
    StreamChunk,
    StreamEnd,
)
from koan.llm.base import MAX_REPORTED_TOKENS, sse_data
from koan.llm.types import StreamItem
from tests.fixtures.llm_server import FakeLLMServer, Reply, unused_url
from tests.llm.streams import (
    assert_error_event_ends_the_stream_after_partial_text,
    assert_streams_share_one_connection,
    drain,
)

REQUEST = CompletionRequest(
    messages=[
        ChatMessage("system", "You are a Socratic tutor."),
        ChatMessage("user", "Why does my loop stop early?"),
    ],
    temperature=0.3,
    max_tokens=200,
)


@pytest.fixture
def provider(llm_server: FakeLLMServer) -> OpenAIProvider:
    """A provider for the loopback server; tests open it with `async with`.

    The fixture is synchronous on purpose: the HTTP client binds to the loop of its first
    request, so opening and closing it inside the test keeps both on the test's loop whatever
    the suite's fixture loop scope is.
    """
    return OpenAIProvider(
        model="gpt-4o-mini",
        base_url=llm_server.openai_base_url,
        api_key="sk-test-key",
        timeout=5,
    )


async def collect(provider: OpenAIProvider, request: CompletionRequest) -> list[StreamItem]:
    async with provider:
        return [item async for item in provider.stream(request)]


async def test_complete_returns_text_usage_and_cost(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(
        Reply(text="What does range(len(xs) - 1) leave out?", input_tokens=1000, output_tokens=200)
    )

    async with provider:
        completion = await provider.complete(REQUEST)

    assert completion.text == "What does range(len(xs) - 1) leave out?"
    assert completion.provider == "openai"
    assert completion.model == "gpt-4o-mini"
    assert completion.finish_reason == "stop"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (1000, 200)
    assert completion.usage.estimated is False
    # gpt-4o-mini: $0.15 in, $0.60 out per million tokens.
    assert completion.cost_usd == Decimal("0.00027")
    assert completion.priced is True
    assert completion.latency_ms >= 0


async def test_complete_sends_messages_model_and_limits(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    async with provider:
        await provider.complete(REQUEST)

    [sent] = llm_server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-key"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["messages"] == [
        {"role": "system", "content": "You are a Socratic tutor."},
        {"role": "user", "content": "Why does my loop stop early?"},
    ]
    assert sent.body["temperature"] == 0.3
    # A compatible server gets the widely supported parameter name.
    assert sent.body["max_tokens"] == 200
    assert "stream" not in sent.body
    # Koan retries by itself: the SDK must not retry behind its back.
    assert sent.headers["x-stainless-retry-count"] == "0"


async def test_request_model_overrides_default_and_json_schema_is_sent(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    request = CompletionRequest(
        messages=[ChatMessage("user", "Make an exercise")],
        model="gpt-4.1",
        purpose="generation",
        json_schema=schema,
    )

    async with provider:
        completion = await provider.complete(request)

    body = llm_server.requests[0].body
    assert body["model"] == "gpt-4.1"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "koan_output", "schema": schema},
    }
    assert completion.model == "gpt-4.1"


async def test_json_schema_in_words_for_servers_without_structured_output(
    llm_server: FakeLLMServer,
) -> None:
    provider = OpenAIProvider(
        model="llama3.1:8b",
        base_url=llm_server.openai_base_url,
        structured_output=False,
    )
    request = CompletionRequest(
        messages=[ChatMessage("system", "Generate."), ChatMessage("user", "One exercise")],
        json_schema={"type": "object"},
    )

    async with provider:
        await provider.complete(request)

    body = llm_server.requests[0].body
    assert "response_format" not in body
    assert body["messages"][0]["content"].startswith("Generate.\n\nReply with a single JSON")
    assert '{"type": "object"}' in body["messages"][0]["content"]


async def test_reasoning_model_on_openai_gets_max_completion_tokens_and_no_temperature(
    llm_server: FakeLLMServer,
) -> None:
    provider = OpenAIProvider(model="o3-mini", base_url=llm_server.openai_base_url, api_key="k")
    # Pretend the loopback server is api.openai.com for the parameter choice.
    provider._hosted_openai = True

    async with provider:
        await provider.complete(REQUEST)

    body = llm_server.requests[0].body
    assert body["max_completion_tokens"] == 200
    assert "max_tokens" not in body
    assert "temperature" not in body


async def test_missing_usage_is_estimated(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(Reply(text="Look at the last index.", input_tokens=None, output_tokens=None))

    async with provider:
        completion = await provider.complete(REQUEST)

    assert completion.usage.estimated is True
    assert completion.usage.input_tokens > 0
    assert completion.usage.output_tokens > 0


async def test_reported_usage_out_of_range_is_bounded(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    # A server reporting negative tokens would credit the budget; absurd counts would not fit
    # the call's record. Both are held within what one call can have used.
    llm_server.script(
        Reply(text="Look again.", input_tokens=-(10**6), output_tokens=10**12),
        Reply(text="Look again.", input_tokens=10**12, output_tokens=-5),
    )

    async with provider:
        first = await provider.complete(REQUEST)
        streamed = await collect(provider, REQUEST)

    second = streamed[-1]
    assert isinstance(second, StreamEnd)
    for usage in (first.usage, second.completion.usage):
        assert 0 <= usage.input_tokens <= MAX_REPORTED_TOKENS
        assert 0 <= usage.output_tokens <= MAX_REPORTED_TOKENS
    assert first.usage.input_tokens == 0
    assert first.usage.output_tokens == MAX_REPORTED_TOKENS
    assert first.cost_usd > 0
    assert second.completion.cost_usd > 0


async def test_a_blank_reply_is_malformed_and_leading_blanks_wait_for_words(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(
        Reply(text=" \n "),
        Reply(text=" \n ", chunks=[" ", "\n "]),
        Reply(text="\n Look.", chunks=["\n", " ", "Look."]),
    )

    async with provider:
        with pytest.raises(ProviderError) as whole:
            await provider.complete(REQUEST)
        streamed: list[str] = []
        with pytest.raises(ProviderError) as stream:
            await drain(provider.stream(REQUEST), streamed)
        words = [item async for item in provider.stream(REQUEST)]

    assert whole.value.kind == stream.value.kind == "malformed"
    assert streamed == []  # nothing a learner could see was passed on
    assert [item.delta for item in words if isinstance(item, StreamChunk)] == ["\n Look."]


async def test_unknown_model_costs_zero_and_is_flagged(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(Reply(model="llama3.1:8b"))

    async with provider:
        completion = await provider.complete(REQUEST)

    assert completion.model == "llama3.1:8b"
    assert completion.cost_usd == Decimal(0)
    assert completion.priced is False


async def test_stream_yields_deltas_then_end_with_reported_usage(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(
        Reply(
            chunks=["What ", "happens ", "when ", "xs is empty?"],
            input_tokens=40,
            output_tokens=9,
        )
    )

    items = await collect(provider, REQUEST)

    deltas = [item.delta for item in items if isinstance(item, StreamChunk)]
    assert deltas == ["What ", "happens ", "when ", "xs is empty?"]
    assert sum(isinstance(item, StreamEnd) for item in items) == 1
    end = items[-1]
    assert isinstance(end, StreamEnd)
    completion = end.completion
    assert completion.text == "What happens when xs is empty?"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (40, 9)
    assert completion.usage.estimated is False
    assert completion.cost_usd == (40 * Decimal("0.15") + 9 * Decimal("0.60")) / 1_000_000
    assert completion.first_token_ms is not None
    body = llm_server.requests[0].body
    assert body["messages"] == [
        {"role": "system", "content": "You are a Socratic tutor."},
        {"role": "user", "content": "Why does my loop stop early?"},
    ]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_streams_reuse_one_connection(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    async with provider:
        await assert_streams_share_one_connection(provider, llm_server, REQUEST)


async def test_stream_without_usage_chunk_estimates(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(Reply(text="Try a smaller input.", input_tokens=None, output_tokens=None))

    items = await collect(provider, REQUEST)

    end = items[-1]
    assert isinstance(end, StreamEnd)
    assert end.completion.text == "Try a smaller input."
    assert end.completion.usage.estimated is True


@pytest.mark.parametrize(
    ("reply", "kind", "status", "retry_after"),
    [
        (Reply.rate_limited("7"), "rate_limited", 429, 7.0),
        (Reply.server_error(503), "server_error", 503, None),
        (Reply.bad_request(), "client_error", 400, None),
        (Reply(status=401, error_message="bad key"), "auth", 401, None),
        (Reply(status=404, error_message="no such model"), "not_found", 404, None),
    ],
)
async def test_http_errors_become_classified_provider_errors(
    provider: OpenAIProvider,
    llm_server: FakeLLMServer,
    reply: Reply,
    kind: str,
    status: int,
    retry_after: float | None,
) -> None:
    llm_server.script(reply)

    async with provider:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(REQUEST)

    assert caught.value.kind == kind
    assert caught.value.status == status
    assert caught.value.retry_after == retry_after
    assert caught.value.provider == "openai"
    assert len(llm_server.requests) == 1


async def test_broken_json_is_malformed(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(Reply.broken_json())

    async with provider:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(REQUEST)

    assert caught.value.kind == "malformed"


async def test_broken_stream_event_is_malformed(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(Reply.broken_json())

    with pytest.raises(ProviderError) as caught:
        await collect(provider, REQUEST)

    assert caught.value.kind == "malformed"


async def test_error_event_mid_stream_is_a_provider_error_after_partial_text(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    async with provider:
        await assert_error_event_ends_the_stream_after_partial_text(provider, llm_server, REQUEST)


@pytest.mark.parametrize(
    ("reply", "kind"),
    [(Reply.rate_limited("3"), "rate_limited"), (Reply.server_error(502), "server_error")],
)
async def test_stream_http_errors_are_classified_before_any_token(
    provider: OpenAIProvider, llm_server: FakeLLMServer, reply: Reply, kind: str
) -> None:
    llm_server.script(reply)

    with pytest.raises(ProviderError) as caught:
        await collect(provider, REQUEST)

    assert caught.value.kind == kind
    assert caught.value.status == reply.status


async def test_event_fields_comments_and_multiline_data_are_read_as_sse() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in [": keep-alive", "event: chunk", "id: 7", 'data: {"a":', 'data:  1}', "",
                     "retry: 10", "", "data:[DONE]"]:  # fmt: skip
            yield line

    assert [data async for data in sse_data(lines())] == ['{"a":\n 1}', "[DONE]"]


async def test_hanging_server_times_out(llm_server: FakeLLMServer) -> None:
    provider = OpenAIProvider(
        model="gpt-4o-mini", base_url=llm_server.openai_base_url, api_key="k", timeout=0.3
    )
    llm_server.script(Reply.hanging(), Reply.hanging())

    async with provider:
        with pytest.raises(ProviderError) as plain:
            await provider.complete(REQUEST)
        with pytest.raises(ProviderError) as streamed:
            _ = [item async for item in provider.stream(REQUEST)]

    assert plain.value.kind == "timeout"
    assert streamed.value.kind == "timeout"
    assert plain.value.retryable


async def test_connection_dropped_mid_stream_raises_after_partial_text(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(Reply(text="one two three four", drop_after_chunks=2))
    received: list[str] = []

    async with provider:
        with pytest.raises(ProviderError) as caught:
            await drain(provider.stream(REQUEST), received)

    assert received == ["one ", "two "]
    assert caught.value.kind == "connection"


async def test_unreachable_server_is_a_connection_error() -> None:
    provider = OpenAIProvider(model="gpt-4o-mini", base_url=unused_url(), api_key="k", timeout=2)

    async with provider:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(REQUEST)

    assert caught.value.kind == "connection"
    assert caught.value.retryable
