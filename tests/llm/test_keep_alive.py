"""Connections to the provider outlive a learner's pause between two questions."""

from __future__ import annotations

import time
from types import SimpleNamespace

import httpcore2._async.http11 as http11
import pytest

import koan.llm as llm
from koan.llm import ChatMessage, CompletionRequest
from koan.llm.base import PROVIDER_KEEPALIVE_S, LLMProvider
from tests.fixtures.llm_server import FakeLLMServer
from tests.llm.streams import drain

REQUEST = CompletionRequest(
    messages=[ChatMessage("system", "Be brief."), ChatMessage("user", "Why?")],
    temperature=0.3,
    max_tokens=50,
    purpose="chat",
)
# Longer than the SDKs' own keep-alive (5 s), which would have closed the connection.
PAUSE_S = 5.5

# The `anthropic` SDK takes about a second to import: it is imported when these tests run,
# not when every worker collects them, and one worker runs every test that needs it.
pytestmark = pytest.mark.xdist_group("anthropic-sdk")


async def test_both_sdks_reuse_a_connection_after_a_pause(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert llm_server.keep_alive_s > PAUSE_S  # as a hosted provider's would
    assert PROVIDER_KEEPALIVE_S > PAUSE_S
    providers: list[LLMProvider] = [
        llm.OpenAIProvider(model="gpt-4o-mini", base_url=llm_server.openai_base_url, timeout=5),
        llm.AnthropicProvider(
            model="claude-haiku-4-5", base_url=llm_server.anthropic_base_url, timeout=5
        ),
    ]
    try:
        for provider in providers:
            await drain(provider.stream(REQUEST), [])
        # The pause, on the clock the connection pool reads its keep-alive expiry from.
        monkeypatch.setattr(
            http11, "time", SimpleNamespace(monotonic=lambda: time.monotonic() + PAUSE_S)
        )
        for provider in providers:
            await drain(provider.stream(REQUEST), [])
    finally:
        for provider in providers:
            await provider.close()
    for api in ("openai", "anthropic"):
        clients = [r.client for r in llm_server.requests if r.api == api]
        assert len(clients) == 2
        assert clients[0] == clients[1], f"{api}: a new connection after the pause"
