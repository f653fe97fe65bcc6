"""The administrators' pages: accounts (search, pages, disabling), the exercise bank (search,
pages) and validating the whole bank as one job; and what a disabled account sees."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from koan.resources import Resources
from koan.users import admin
from tests.fixtures.factories import PASSWORD, create_user
from tests.web.conftest import post_form


@pytest.fixture(autouse=True)
def _pages(web_app: FastAPI) -> FastAPI:
    return web_app


async def test_a_disabled_account_is_told_on_the_login_form_and_its_pages_end(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    ada = await create_user(session, resources, onboarded=True)
    logged_in = await post_form(
        client, "/login", "/login", {"email": ada.email, "password": PASSWORD}
    )
    assert logged_in.status_code == 303
    assert (await client.get("/dashboard")).status_code == 200

    await admin.disable(session, resources, ada)
    # The page it had open: back to the login page (the session has ended) ...
    page = await client.get("/dashboard")
    assert page.status_code == 303
    assert page.headers["location"].startswith(("/login", "/api/v1/auth/resume"))
    resumed = await post_form(client, "/login", "/api/v1/auth/resume", {"next": "/dashboard"})
    assert resumed.headers["location"].startswith("/login")
    assert (await client.get("/dashboard")).status_code == 303
    # ... where the right password is told why, and a wrong one what anyone is told.
    refused = await post_form(
        client, "/login", "/login", {"email": ada.email, "password": PASSWORD}
    )
    assert refused.status_code == 403
    assert "This account has been disabled" in refused.text
    assert "koan_access" not in refused.headers.get("set-cookie", "")
    wrong = await post_form(
        client, "/login", "/login", {"email": ada.email, "password": "not the password!"}
    )
    assert wrong.status_code == 401
    assert "disabled" not in wrong.text
