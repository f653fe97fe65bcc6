"""Client addresses come from X-Forwarded-For only through the proxies Koan is told to trust."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import Receive, Scope, Send

from koan.config import Settings
from koan.middleware import TrustedProxies
from koan.resources import Resources
from koan.web.pagekit import WebRoute
from tests.fixtures.factories import PASSWORD, unique_email


async def seen_by_app(proxies: str, peer: str, headers: dict[str, str]) -> tuple[str, str]:
    """(client address, scheme) the app sees behind TrustedProxies."""
    seen: dict[str, object] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    networks = Settings(trusted_proxies=proxies, _env_file=None).trusted_proxy_networks
    transport = httpx.ASGITransport(app=TrustedProxies(app, proxies=networks), client=(peer, 5))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/", headers=headers)
    client = seen["client"]
    assert isinstance(client, tuple)
    return str(client[0]), str(seen["scheme"])


async def test_by_default_no_address_is_trusted_not_even_loopback() -> None:
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    assert await seen_by_app("", "127.0.0.1", headers) == ("127.0.0.1", "http")


async def test_a_configured_proxy_is_believed() -> None:
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    assert await seen_by_app("10.0.0.0/8", "10.1.2.3", headers) == ("203.0.113.9", "https")


async def test_only_the_hops_trusted_proxies_added_are_believed() -> None:
    # The client wrote "1.2.3.4" itself; the proxy appended the address it saw.
    headers = {"X-Forwarded-For": "1.2.3.4, 203.0.113.9, 10.0.0.5"}
    assert await seen_by_app("10.0.0.0/8", "10.0.0.6", headers) == ("203.0.113.9", "http")


async def test_a_peer_outside_the_list_is_taken_as_the_client() -> None:
    headers = {"X-Forwarded-For": "203.0.113.9"}
    assert await seen_by_app("10.0.0.0/8", "198.51.100.1", headers) == ("198.51.100.1", "http")


def test_bad_proxy_entries_are_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="not an address"):
        Settings(trusted_proxies="10.0.0.0/8, proxy.local", _env_file=None)
    networks = Settings(trusted_proxies="127.0.0.1, ::1", _env_file=None).trusted_proxy_networks
    assert networks == [ip_network("127.0.0.1/32"), ip_network("::1/128")]


async def test_a_local_sidecar_cannot_spread_one_client_over_many_addresses(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    # The app is reached over loopback (as from a sidecar that passes the header through).
    resources.settings.register_limit_per_address = "1/hour"

    async def register(forwarded_for: str) -> int:
        body = {"email": unique_email(), "password": PASSWORD, "name": "Ada"}
        headers = {"X-Forwarded-For": forwarded_for}
        return (await client.post("/api/v1/auth/register", json=body, headers=headers)).status_code

    assert await register("203.0.113.1") == 201
    assert await register("203.0.113.2") == 429


def test_koan_serve_leaves_forwarded_headers_to_koan(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from koan.cli import app as cli
    from koan.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'koan.db'}"
    upgrade(url)
    monkeypatch.setenv("KOAN_DATABASE_URL", url)
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 0, result.output
    assert calls[0]["proxy_headers"] is False


async def test_an_api_get_route_answers_head_without_a_body(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for path in ("/api/v1/users/me", "/api/v1/exercises"):
        got = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers.get("content-length") in (None, str(len(got.content)))
        assert "x-content-type-options" in head.headers
    # Without credentials, the same refusal as GET; a route without GET stays a 405.
    assert (await client.head("/api/v1/users/me")).status_code == 401
    assert (await client.head("/api/v1/auth/logout", headers=headers)).status_code == 405


async def test_head_is_not_an_operation_of_the_api_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert all("head" not in operations for operations in schema["paths"].values())


async def test_a_browser_is_answered_with_a_page_when_koan_fails_or_is_too_busy(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """What the layers around the pages answer (an error no page caught, every connection to
    the database in use) is a page for a browser, as every other error of a page is, and the
    API's JSON for a program."""

    async def broken() -> None:
        raise RuntimeError("boom")

    async def busy() -> None:
        raise PoolTimeout("every connection in use")

    app.add_api_route("/test-broken", broken)
    app.add_api_route("/test-busy", busy)
    app.router.add_api_route("/test-busy-page", busy, route_class_override=WebRoute)
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path, status in (("/test-broken", 500), ("/test-busy", 503), ("/test-busy-page", 503)):
        page = await client.get(path, headers=browser)
        assert page.status_code == status, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert "<h1>" in page.text
        assert "InternalError" not in page.text
        assert "ServiceUnavailable" not in page.text
        assert page.headers["x-frame-options"] == "DENY"  # inside the headers every answer has
        if status == 503:
            assert page.headers["retry-after"] == "5"
            assert "try again" in page.text
    program = await client.get("/test-busy", headers={"Accept": "application/json"})
    assert (program.status_code, program.json()["error"]) == (503, "ServiceUnavailable")
    assert (await client.get("/test-broken")).json()["error"] == "InternalError"
