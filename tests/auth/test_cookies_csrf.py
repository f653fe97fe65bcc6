"""Browser-style auth: cookies plus the double-submit CSRF token."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from koan.resources import Resources
from tests.fixtures.factories import PASSWORD, create_user


async def cookie_login(client: httpx.AsyncClient, email: str) -> str:
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200
    return str(client.cookies["koan_csrf"])


async def test_cookie_reads_need_no_csrf_but_writes_do(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    csrf = await cookie_login(client, user.email)
    assert (await client.get("/api/v1/users/me")).status_code == 200

    r = await client.patch("/api/v1/users/me", json={"name": "Changed"})
    assert r.status_code == 403
    assert r.json()["error"] == "CSRFFailed"
    r = await client.patch(
        "/api/v1/users/me", json={"name": "Changed"}, headers={"X-CSRF-Token": "wrong"}
    )
    assert r.status_code == 403
    r = await client.patch(
        "/api/v1/users/me", json={"name": "Changed"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200
    assert r.json()["name"] == "Changed"


async def test_bearer_requests_need_no_csrf(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    r = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    token = r.json()["access_token"]
    client.cookies.clear()
    r = await client.patch(
        "/api/v1/users/me", json={"name": "Bearer"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200


async def test_cookie_refresh_and_logout(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    csrf = await cookie_login(client, user.email)
    r = await client.post("/api/v1/auth/refresh")
    assert r.status_code == 403
    assert r.json()["error"] == "CSRFFailed"
    r = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    csrf = str(client.cookies["koan_csrf"])
    r = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert "koan_access" not in client.cookies
    assert (await client.get("/api/v1/users/me")).status_code == 401


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/api/v1/users/me", "/no/such/page"):
        r = await client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    r = await client.get("/no/such/page")
    assert r.status_code == 404
    assert r.json()["error"] == "NotFound"


async def test_no_cache_keeps_what_was_shown_to_someone_signed_in(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """On a shared computer the next person must not find the last one's answers in the
    browser's cache (the Back button after logging out) nor in a proxy's."""
    user = await create_user(session, resources)
    await cookie_login(client, user.email)
    for path in ("/api/v1/users/me", "/api/v1/progress/export?format=json", "/no/such/page"):
        r = await client.get(path)
        assert r.headers["cache-control"] == "no-store", path


def plant(client: httpx.AsyncClient, value: str) -> None:
    """Replace the koan_csrf cookie, as a sibling subdomain's Set-Cookie can."""
    domain = next(c.domain for c in client.cookies.jar if c.name == "koan_csrf")
    client.cookies.delete("koan_csrf")
    client.cookies.set("koan_csrf", value, domain=domain)


async def test_the_csrf_token_is_bound_to_the_session(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    csrf = await cookie_login(client, user.email)
    client.cookies.clear()
    assert csrf != await cookie_login(client, user.email)  # a new session, a new token
    plant(client, csrf)
    r = await client.patch(
        "/api/v1/users/me", json={"name": "Mine"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 403  # another session's token does not pass
    csrf = await cookie_login(client, user.email)
    r = await client.patch(
        "/api/v1/users/me", json={"name": "Mine"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200


async def test_a_planted_csrf_cookie_cannot_forge_a_write(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # A sibling subdomain can set koan_csrf for the parent domain (cookie tossing) and then
    # send the same value in the header: the token must also be the session's own.
    user = await create_user(session, resources)
    await cookie_login(client, user.email)
    plant(client, "planted-by-a-sibling")
    r = await client.patch(
        "/api/v1/users/me",
        json={"name": "Hijacked"},
        headers={"X-CSRF-Token": "planted-by-a-sibling"},
    )
    assert r.status_code == 403
    assert r.json()["error"] == "CSRFFailed"


async def test_a_planted_csrf_cookie_cannot_forge_a_refresh(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    await cookie_login(client, user.email)
    plant(client, "planted")
    r = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": "planted"})
    assert r.status_code == 403
    assert r.json()["error"] == "CSRFFailed"


# What a browser adds to every fetch, and a page's script cannot take off.
BROWSER = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}


async def test_a_cookie_refresh_keeps_the_refresh_token_out_of_the_body(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # The refresh cookie is httpOnly so that a script on the page cannot read it; the body of
    # the page's own renewal must not hand it over either.
    user = await create_user(session, resources)
    csrf = await cookie_login(client, user.email)
    old = client.cookies.get("koan_refresh", path="/api/v1/auth")
    r = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    body = r.json()
    assert "refresh_token" not in body
    assert body["expires_in"] == resources.settings.access_token_ttl_s
    new = client.cookies.get("koan_refresh", path="/api/v1/auth")
    assert new
    assert new != old
    assert new not in r.text


async def test_a_browser_login_keeps_the_refresh_token_out_of_the_body(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    r = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}, headers=BROWSER
    )
    assert r.status_code == 200
    assert "refresh_token" not in r.json()
    refresh = client.cookies.get("koan_refresh", path="/api/v1/auth")
    assert refresh
    assert refresh not in r.text
    # The session works through its cookies.
    r = await client.post(
        "/api/v1/auth/refresh", headers={"X-CSRF-Token": client.cookies["koan_csrf"], **BROWSER}
    )
    assert r.status_code == 200


async def test_api_clients_still_get_the_refresh_token_in_the_body(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    r = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    first = r.json()["refresh_token"]
    client.cookies.clear()
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 200
    assert r.json()["refresh_token"] not in {"", first}
