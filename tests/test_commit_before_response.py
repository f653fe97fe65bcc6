"""A client hears "done" only once the change is committed.

Another worker (or the same one, on the next request) must already see it: a logout answered
while its revocation is still uncommitted would let the token work elsewhere for a moment, and
a "saved" answered before a commit that then fails would lose the learner's work. Here the app
runs on real sessions that commit (not the rolled-back test connection), and the database is
read on another connection at the very moment the response starts.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import delete, select
from starlette.types import Message, Receive, Scope, Send

from koan.app import create_app
from koan.config import Settings
from koan.db import transactional
from koan.grading.sandbox import Sandbox
from koan.models import AuthSession, User
from tests.conftest import Backend, make_resources
from tests.fixtures.factories import PASSWORD, create_user


async def test_a_logout_is_committed_before_the_client_hears_of_it(
    settings: Settings, backend: Backend, sandbox: Sandbox
) -> None:
    res = make_resources(settings, backend, sandbox)
    app = create_app(resources=res)
    async with res.session_factory() as session, transactional(session):
        user = await create_user(session, res)
    seen: dict[str, Any] = {}

    async def watched(scope: Scope, receive: Receive, send: Send) -> None:
        async def spy(message: Message) -> None:
            if message["type"] == "http.response.start" and scope["path"].endswith("/logout"):
                async with backend.engine.connect() as other:
                    seen["revoked_at"] = await other.scalar(
                        select(AuthSession.revoked_at).where(AuthSession.user_id == user.id)
                    )
            await send(message)

        await app(scope, receive, spy)

    transport = httpx.ASGITransport(app=watched)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            login = await client.post(
                "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            assert (await client.post("/api/v1/auth/logout", headers=bearer)).status_code == 200
        assert seen["revoked_at"] is not None
    finally:
        async with res.session_factory() as session, transactional(session):
            await session.execute(delete(User).where(User.id == user.id))
