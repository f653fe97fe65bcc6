"""Health endpoints."""

from __future__ import annotations

import httpx

from koan.cache import MemoryCache
from koan.resources import Resources


async def test_live_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    r = await client.get("/health/ready")
    assert r.status_code == 200
    checks = r.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["cache"] == "ok"
    assert checks["sandbox"].startswith("ok (")


async def test_ready_names_the_dependency_that_is_down(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    class DownCache(MemoryCache):
        async def ping(self) -> bool:
            raise ConnectionError("cache is down")

    resources.cache = DownCache()
    r = await client.get("/health/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["error"] == "ServiceUnavailable"
    assert "cache" in body["detail"]
    assert body["checks"]["database"] == "ok"
    assert r.headers["Retry-After"]


async def test_probes_answer_head_as_they_answer_get(client: httpx.AsyncClient) -> None:
    """Load balancers and uptime monitors often probe with HEAD: the same status, no body."""
    for path in ("/health/live", "/health/ready"):
        r = await client.head(path)
        assert r.status_code == (await client.get(path)).status_code == 200
        assert r.content == b""


async def test_a_head_probe_of_readiness_says_what_get_says_when_a_dependency_is_down(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    class DownCache(MemoryCache):
        async def ping(self) -> bool:
            raise ConnectionError("cache is down")

    resources.cache = DownCache()
    r = await client.head("/health/ready")
    assert r.status_code == 503
    assert r.headers["Retry-After"]
    assert r.content == b""
