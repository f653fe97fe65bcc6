"""Provider clients verify the server's certificate, with one TLS context per process."""

from __future__ import annotations

import ssl
from typing import Any

from koan.llm import AnthropicProvider, OpenAIProvider


def _tls_context(provider: Any) -> ssl.SSLContext:
    context: ssl.SSLContext = provider._client._client._transport._pool._ssl_context
    return context


async def test_every_provider_client_verifies_certificates_with_one_shared_context() -> None:
    providers = [
        OpenAIProvider(model="m", base_url="https://llm.example/v1"),
        OpenAIProvider(model="m", base_url="https://other.example/v1"),
        AnthropicProvider(model="m", base_url="https://llm.example"),
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
