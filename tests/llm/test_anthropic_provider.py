"""AnthropicProvider against the loopback server, through the real `anthropic` SDK."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

import koan.llm as llm
from koan.llm import (
    ChatMessage,
    CompletionRequest,
    ProviderError,
    StreamChunk,
    StreamEnd,
)
from tests.fixtures.llm_server import FakeLLMServer, Reply
from tests.llm.streams import (
    assert_error_event_ends_the_stream_after_partial_text,
    assert_streams_share_one_connection,
    drain,
)

if TYPE_CHECKING:
    from koan.llm import AnthropicProvider

# The `anthropic` SDK takes about a second to import: it is imported when these tests run,
# not when every worker collects them, and one worker runs every test that needs it.
pytestmark = pytest.mark.xdist_group("anthropic-sdk")

REQUEST = CompletionRequest(
    messages=[
        ChatMessage("system", "You are a Socratic tutor."),
        ChatMessage("user", "My test says IndexError."),
        ChatMessage("assistant", "Which index does the loop reach last?"),
        ChatMessage("user", "len(xs)?"),
    ],
    max_tokens=300,
)


@pytest.fixture
def provider(llm_server: FakeLLMServer) -> AnthropicProvider:
    """A provider for the loopback server; tests open it with `async with`."""
    return llm.AnthropicProvider(
        model="claude-haiku-4-5",
        base_url=llm_server.anthropic_base_url,
        api_key="sk-ant-test",
        timeout=5,
    )


async def test_complete_passes_system_separately_and_reports_usage_and_cost(
    provider: AnthropicProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(
        Reply(text="And what is the last valid index?", input_tokens=2000, output_tokens=100)
    )

    async with provider:
        completion = await provider.complete(REQUEST)

    assert completion.text == "And what is the last valid index?"
    assert completion.provider == "anthropic"
    assert completion.finish_reason == "stop"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (2000, 100)
    # claude-haiku-4-5: $1 in, $5 out per million tokens.
    assert completion.cost_usd == Decimal("0.0025")
    [sent] = llm_server.requests
    assert sent.path == "/v1/messages"
    credentials = sent.headers.get("x-api-key", "") + sent.headers.get("authorization", "")
    assert "sk-ant-test" in credentials
    assert sent.body["system"] == "You are a Socratic tutor."
    assert sent.body["max_tokens"] == 300
    assert sent.body["model"] == "claude-haiku-4-5"
    assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant", "user"]
    # Newer Claude models reject sampling parameters, so none is sent by default.
    assert "temperature" not in sent.body


async def test_temperature_is_sent_when_enabled(llm_server: FakeLLMServer) -> None:
    provider = llm.AnthropicProvider(
        model="claude-haiku-4-5-20251001",
        base_url=llm_server.anthropic_base_url,
        api_key="k",
        send_temperature=True,
    )

    async with provider:
        completion = await provider.complete(REQUEST)

    assert llm_server.requests[0].body["temperature"] == 0.2
    # A dated model id is priced like the model it names.
    assert completion.priced is True


async def test_json_schema_is_requested_in_the_system_prompt(
    provider: AnthropicProvider, llm_server: FakeLLMServer
) -> None:
    request = CompletionRequest(
        messages=[ChatMessage("user", "One exercise please")],
        purpose="generation",
        json_schema={"type": "object", "required": ["title"]},
    )

    async with provider:
        await provider.complete(request)

    system = llm_server.requests[0].body["system"]
    assert system.startswith("Reply with a single JSON object")
    assert '"required": ["title"]' in system


async def test_length_stop_reason_is_normalized(
    provider: AnthropicProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(Reply(finish_reason="length"))

    async with provider:
        completion = await provider.complete(REQUEST)

    assert completion.finish_reason == "length"


async def test_stream_collects_usage_from_message_start_and_delta(
    provider: AnthropicProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(Reply(text="Which index comes last?", input_tokens=321, output_tokens=6))

    async with provider:
        items = [item async for item in provider.stream(REQUEST)]

    deltas = [item.delta for item in items if isinstance(item, StreamChunk)]
    assert deltas == ["Which ", "index ", "comes ", "last?"]
    end = items[-1]
    assert isinstance(end, StreamEnd)
    assert end.completion.text == "Which index comes last?"
    assert end.completion.usage.input_tokens == 321
    assert end.completion.usage.output_tokens == 6
    assert end.completion.usage.estimated is False
    assert end.completion.cost_usd == (321 * Decimal(1) + 6 * Decimal(5)) / 1_000_000
    assert llm_server.requests[0].body["stream"] is True


async def test_streams_reuse_one_connection(
    provider: AnthropicProvider, llm_server: FakeLLMServer
) -> None:
    async with provider:
        await assert_streams_share_one_connection(provider, llm_server, REQUEST)


async def test_error_event_mid_stream_is_a_provider_error_after_partial_text(
    provider: AnthropicProvider, llm_server: FakeLLMServer
) -> None:
    async with provider:
        await assert_error_event_ends_the_stream_after_partial_text(provider, llm_server, REQUEST)


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply.rate_limited("3"), "rate_limited"),
        (Reply.server_error(529), "server_error"),
        (Reply.bad_request(), "client_error"),
        (Reply.broken_json(), "malformed"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_failures_are_classified(
    provider: AnthropicProvider,
    llm_server: FakeLLMServer,
    reply: Reply,
    kind: str,
    streaming: bool,
) -> None:
    llm_server.script(reply)

    async with provider:
        call = drain(provider.stream(REQUEST), []) if streaming else provider.complete(REQUEST)
        with pytest.raises(ProviderError) as caught:
            await call

    assert caught.value.kind == kind
    if kind == "rate_limited":
        assert caught.value.retry_after == 3.0


async def test_hanging_server_times_out(llm_server: FakeLLMServer) -> None:
    provider = llm.AnthropicProvider(
        model="claude-haiku-4-5", base_url=llm_server.anthropic_base_url, api_key="k", timeout=0.3
    )
    llm_server.script(Reply.hanging())

    async with provider:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(REQUEST)

    assert caught.value.kind == "timeout"


async def test_stream_cut_before_message_stop_is_an_error(
    provider: AnthropicProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.script(Reply(text="one two three", drop_after_chunks=1))
    received: list[str] = []

    async with provider:
        with pytest.raises(ProviderError):
            await drain(provider.stream(REQUEST), received)

    assert received == ["one "]


def test_split_system_merges_turns_and_starts_with_user() -> None:
    from koan.llm.anthropic_provider import split_system

    system, turns = split_system(
        [
            ChatMessage("system", "rules"),
            ChatMessage("assistant", "stale greeting"),
            ChatMessage("user", "first"),
            ChatMessage("user", "second"),
            ChatMessage("system", "more rules"),
            ChatMessage("assistant", "reply"),
        ]
    )

    assert system == "rules\n\nmore rules"
    assert [(t.role, t.content) for t in turns] == [
        ("user", "first\n\nsecond"),
        ("assistant", "reply"),
    ]
