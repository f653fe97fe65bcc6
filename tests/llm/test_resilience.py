"""Retries, circuit breakers and fallback, end to end through the SDKs and the loopback server."""

from __future__ import annotations

import random

import pytest

from koan.errors import TutorUnavailable
from koan.llm import (
    ChatMessage,
    CircuitBreaker,
    CompletionRequest,
    FallbackChain,
    OpenAIProvider,
    ProviderConfig,
    ProviderError,
    ResilientProvider,
    RetryPolicy,
    StreamChunk,
    StreamEnd,
    TutorStreamInterrupted,
    build_provider,
)
from koan.llm.base import parse_retry_after
from tests.fixtures.llm_server import FakeLLMServer, FakeTimer, Reply, unused_url
from tests.llm.streams import drain

REQUEST = CompletionRequest(messages=[ChatMessage("user", "Why is my answer off by one?")])

# The `anthropic` SDK takes about a second to import: it is imported when these tests run,
# not when every worker collects them, and one worker runs every test that needs it.
pytestmark = pytest.mark.xdist_group("anthropic-sdk")


def openai_config(server: FakeLLMServer, **overrides: object) -> ProviderConfig:
    values: dict[str, object] = {
        "kind": "openai",
        "model": "gpt-4o-mini",
        "base_url": server.openai_base_url,
        "api_key": "sk-test",
        "timeout": 5.0,
    }
    values.update(overrides)
    return ProviderConfig(**values)  # type: ignore[arg-type]


def anthropic_config(server: FakeLLMServer) -> ProviderConfig:
    return ProviderConfig(
        kind="anthropic",
        model="claude-haiku-4-5",
        base_url=server.anthropic_base_url,
        api_key="sk-ant-test",
        timeout=5.0,
    )


@pytest.fixture
def resilient(llm_server: FakeLLMServer, fake_timer: FakeTimer) -> ResilientProvider:
    """OpenAI provider with 3 attempts; tests open it with `async with` (see provider tests)."""
    inner = OpenAIProvider(
        model="gpt-4o-mini", base_url=llm_server.openai_base_url, api_key="k", timeout=5
    )
    return ResilientProvider(
        inner,
        policy=RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=8, max_retry_after=10),
        breaker=CircuitBreaker(failure_threshold=10, cooldown=30, timer=fake_timer),
        timer=fake_timer,
        rng=random.Random(7),
    )


# -- retries -----------------------------------------------------------------------------------


async def test_429_is_retried_after_the_retry_after_delay(
    resilient: ResilientProvider, llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    llm_server.script(Reply.rate_limited(retry_after="2"), Reply(text="Count the iterations."))

    async with resilient:
        completion = await resilient.complete(REQUEST)

    assert completion.text == "Count the iterations."
    assert fake_timer.sleeps == [2.0]
    assert len(llm_server.requests) == 2


async def test_5xx_is_retried_with_full_jitter_exponential_backoff(
    resilient: ResilientProvider, llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    llm_server.script(Reply.server_error(500), Reply.server_error(502), Reply(text="ok"))

    async with resilient:
        completion = await resilient.complete(REQUEST)

    assert completion.text == "ok"
    assert len(fake_timer.sleeps) == 2
    assert 0 <= fake_timer.sleeps[0] <= 0.5
    assert 0 <= fake_timer.sleeps[1] <= 1.0
    assert len(llm_server.requests) == 3


async def test_retries_stop_after_max_attempts(
    resilient: ResilientProvider, llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    llm_server.script(*[Reply.server_error()] * 5)

    async with resilient:
        with pytest.raises(ProviderError) as caught:
            await resilient.complete(REQUEST)

    assert caught.value.kind == "server_error"
    assert len(llm_server.requests) == 3
    assert len(fake_timer.sleeps) == 2


async def test_400_is_not_retried(
    resilient: ResilientProvider, llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    llm_server.script(Reply.bad_request("context too long"), Reply(text="never sent"))

    async with resilient:
        with pytest.raises(ProviderError) as caught:
            await resilient.complete(REQUEST)

    assert caught.value.status == 400
    assert len(llm_server.requests) == 1
    assert fake_timer.sleeps == []
    # A bad request says nothing about the provider's health.
    assert resilient.breaker.consecutive_failures == 0


async def test_retry_after_beyond_the_cap_is_not_waited_for(
    resilient: ResilientProvider, llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    llm_server.script(Reply.rate_limited(retry_after="60"), Reply(text="never sent"))

    async with resilient:
        with pytest.raises(ProviderError) as caught:
            await resilient.complete(REQUEST)

    assert caught.value.retry_after == 60.0
    assert fake_timer.sleeps == []
    assert len(llm_server.requests) == 1


async def test_timeout_is_retried(llm_server: FakeLLMServer, fake_timer: FakeTimer) -> None:
    # Long enough that the prompt second answer never times out too on a loaded machine.
    inner = OpenAIProvider(
        model="gpt-4o-mini", base_url=llm_server.openai_base_url, api_key="k", timeout=1.0
    )
    provider = ResilientProvider(inner, timer=fake_timer, rng=random.Random(1))
    llm_server.script(Reply.hanging(), Reply(text="after the timeout"))
    async with provider:
        completion = await provider.complete(REQUEST)

    assert completion.text == "after the timeout"
    assert len(llm_server.requests) == 2
    assert len(fake_timer.sleeps) == 1


async def test_stream_is_retried_before_the_first_token(
    resilient: ResilientProvider, llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    llm_server.script(Reply.rate_limited("1"), Reply(text="What is xs[-1]?"))

    async with resilient:
        items = [item async for item in resilient.stream(REQUEST)]

    assert "".join(i.delta for i in items if isinstance(i, StreamChunk)) == "What is xs[-1]?"
    assert isinstance(items[-1], StreamEnd)
    assert fake_timer.sleeps == [1.0]


async def test_stream_is_not_retried_after_a_token(
    resilient: ResilientProvider, llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    llm_server.script(Reply(text="one two three", drop_after_chunks=1), Reply(text="unused"))

    async with resilient:
        with pytest.raises(ProviderError):
            _ = [item async for item in resilient.stream(REQUEST)]

    assert len(llm_server.requests) == 1
    assert fake_timer.sleeps == []


# -- circuit breaker ---------------------------------------------------------------------------


async def test_circuit_opens_after_consecutive_failures_then_recovers(
    llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    chain = build_provider(
        openai_config(llm_server),
        retry=RetryPolicy(max_attempts=1),
        failure_threshold=3,
        cooldown_seconds=30,
        timer=fake_timer,
    )
    member = chain.providers[0]
    assert isinstance(member, ResilientProvider)
    llm_server.script(*[Reply.server_error()] * 3)
    async with chain:
        for _ in range(3):
            with pytest.raises(TutorUnavailable):
                await chain.complete(REQUEST)
        assert member.breaker.state == "open"

        # While open the provider is skipped without a request, and the error says when to
        # come back.
        with pytest.raises(TutorUnavailable) as skipped:
            await chain.complete(REQUEST)
        assert len(llm_server.requests) == 3
        assert skipped.value.retry_after == 30
        assert "paused" in skipped.value.detail

        # After the cool-down one probe goes through; its success closes the circuit.
        fake_timer.advance(31)
        assert member.breaker.state == "half_open"
        llm_server.script(Reply(text="back again"))
        completion = await chain.complete(REQUEST)
        assert completion.text == "back again"
        assert member.breaker.state == "closed"


async def test_failed_probe_reopens_the_circuit(
    llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    chain = build_provider(
        openai_config(llm_server),
        retry=RetryPolicy(max_attempts=3),
        failure_threshold=1,
        cooldown_seconds=10,
        timer=fake_timer,
        rng=random.Random(3),
    )
    member = chain.providers[0]
    assert isinstance(member, ResilientProvider)
    llm_server.script(Reply.server_error(), Reply.server_error(), Reply(text="unused"))
    async with chain:
        with pytest.raises(TutorUnavailable):
            await chain.complete(REQUEST)
        # The circuit opened on the first failure, so no retry was attempted.
        assert len(llm_server.requests) == 1
        fake_timer.advance(10)
        with pytest.raises(TutorUnavailable):
            await chain.complete(REQUEST)
        # The probe is a single attempt, and its failure re-opens the circuit at once.
        assert len(llm_server.requests) == 2
        assert member.breaker.state == "open"


def test_half_open_allows_a_single_probe(fake_timer: FakeTimer) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=5, timer=fake_timer)
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.retry_after() == 5
    fake_timer.advance(5)
    assert breaker.allow()
    assert not breaker.allow()  # a second caller waits for the probe's outcome
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()


# -- fallback ----------------------------------------------------------------------------------


async def test_falls_back_to_the_second_provider_when_the_first_is_down(
    llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    chain = build_provider(
        openai_config(llm_server, base_url=unused_url()),
        fallbacks=[anthropic_config(llm_server)],
        timer=fake_timer,
        rng=random.Random(5),
    )
    llm_server.script(Reply(text="From the backup provider."))
    async with chain:
        completion = await chain.complete(REQUEST)

    assert completion.text == "From the backup provider."
    assert completion.provider == "anthropic"
    assert [r.api for r in llm_server.requests] == ["anthropic"]
    # The down provider was retried (connection errors are transient) before falling back.
    assert len(fake_timer.sleeps) == 2


async def test_open_circuit_is_skipped_straight_to_the_fallback(
    llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    chain = build_provider(
        openai_config(llm_server),
        fallbacks=[anthropic_config(llm_server)],
        retry=RetryPolicy(max_attempts=1),
        failure_threshold=1,
        timer=fake_timer,
    )
    llm_server.script(Reply.server_error(), Reply(text="first"), Reply(text="second"))
    async with chain:
        first = await chain.complete(REQUEST)
        second = await chain.complete(REQUEST)

    assert (first.text, second.text) == ("first", "second")
    assert [r.api for r in llm_server.requests] == ["openai", "anthropic", "anthropic"]


async def test_all_providers_failing_raises_tutor_unavailable(
    llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    chain = build_provider(
        openai_config(llm_server),
        fallbacks=[anthropic_config(llm_server)],
        retry=RetryPolicy(max_attempts=1),
        timer=fake_timer,
    )
    llm_server.script(Reply.rate_limited(retry_after="4"), Reply.server_error(503))
    async with chain:
        with pytest.raises(TutorUnavailable) as caught:
            await chain.complete(REQUEST)

    error = caught.value
    assert error.status_code == 503
    assert error.code == "TutorUnavailable"
    assert error.headers["Retry-After"] == "4"
    assert "openai rate limited (HTTP 429)" in error.detail
    assert "anthropic server error (HTTP 503)" in error.detail


async def test_malformed_response_becomes_tutor_unavailable(
    llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    chain = build_provider(openai_config(llm_server), timer=fake_timer)
    llm_server.script(Reply.broken_json())
    async with chain:
        with pytest.raises(TutorUnavailable) as caught:
            await chain.complete(REQUEST)

    assert "malformed" in caught.value.detail
    # A broken body is not a transient condition worth hammering the provider for.
    assert len(llm_server.requests) == 1


async def test_offline_tutor_as_last_resort(
    llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    chain = build_provider(
        openai_config(llm_server, base_url=unused_url()),
        fallbacks=["offline"],
        retry=RetryPolicy(max_attempts=1),
        timer=fake_timer,
    )
    async with chain:
        completion = await chain.complete(REQUEST)

    assert completion.provider == "offline"
    assert "offline" in completion.text


async def test_stream_failing_before_the_first_token_falls_back(
    llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    chain = build_provider(
        openai_config(llm_server),
        fallbacks=[anthropic_config(llm_server)],
        retry=RetryPolicy(max_attempts=2),
        timer=fake_timer,
        rng=random.Random(2),
    )
    llm_server.script(
        Reply.server_error(),
        Reply.server_error(),
        Reply(text="Fallback stream reply.", input_tokens=30, output_tokens=4),
    )
    async with chain:
        items = [item async for item in chain.stream(REQUEST)]

    text = "".join(i.delta for i in items if isinstance(i, StreamChunk))
    assert text == "Fallback stream reply."
    end = items[-1]
    assert isinstance(end, StreamEnd)
    assert end.completion.provider == "anthropic"
    assert end.completion.usage.input_tokens == 30
    assert [r.api for r in llm_server.requests] == ["openai", "openai", "anthropic"]


async def test_stream_failing_after_a_token_is_interrupted_without_fallback(
    llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    chain = build_provider(
        openai_config(llm_server), fallbacks=[anthropic_config(llm_server)], timer=fake_timer
    )
    llm_server.script(Reply(text="Look at the loop bounds", drop_after_chunks=2))
    received: list[str] = []
    async with chain:
        with pytest.raises(TutorStreamInterrupted) as caught:
            await drain(chain.stream(REQUEST), received)

    assert received == ["Look ", "at "]
    assert caught.value.partial_text == "Look at "
    assert caught.value.status_code == 503
    assert [r.api for r in llm_server.requests] == ["openai"]


async def test_all_streams_failing_raises_tutor_unavailable(
    llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    chain = build_provider(
        openai_config(llm_server), retry=RetryPolicy(max_attempts=1), timer=fake_timer
    )
    llm_server.script(Reply.server_error())
    async with chain:
        with pytest.raises(TutorUnavailable):
            _ = [item async for item in chain.stream(REQUEST)]


def test_empty_chain_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one provider"):
        FallbackChain([])


# -- Retry-After parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-4"}, 0.0),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    from email.utils import parsedate_to_datetime

    now = parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()
    assert parse_retry_after(headers, now=now) == expected


def test_backoff_is_bounded_by_the_exponential_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4)
    rng = random.Random(0)
    for retry_number, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delays = [policy.backoff(retry_number, rng) for _ in range(50)]
        assert all(0 <= d <= ceiling for d in delays)
        # Full jitter spreads clients out instead of retrying in lockstep.
        assert max(delays) - min(delays) > ceiling / 4
