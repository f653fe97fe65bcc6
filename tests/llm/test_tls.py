"""Provider clients verify the server's certificate, with one TLS context per process."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

import koan.llm as llm

# The `anthropic` SDK takes about a second to import: it is imported when these tests run,
# not when every worker collects them, and one worker runs every test that needs it.
pytestmark = pytest.mark.xdist_group("anthropic-sdk")


def _tls_context(provider: Any) -> ssl.SSLContext:
    context: ssl.SSLContext = provider._client._client._transport._pool._ssl_context
    return context


async def test_every_provider_client_verifies_certificates_with_one_shared_context() -> None:
    providers = [
        llm.OpenAIProvider(model="m", base_url="https://llm.example/v1"),
        llm.OpenAIProvider(model="m", base_url="https://other.example/v1"),
        llm.AnthropicProvider(model="m", base_url="https://llm.example"),
    ]
    try:
        contexts = {id(_tls_context(p)): _tls_context(p) for p in providers}
        assert len(contexts) == 1  # built once: each build reads the whole CA bundle
        (context,) = contexts.values()
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        assert context.cert_store_stats()["x509_ca"] > 0  # the system's trust store is loaded
    finally:
        for provider in providers:
            await provider.close()
