"""A password changed at the same moment as a login with the old one, each request in a
transaction of its own as in production (`live`): the login must neither open a session the
change's "end every other session" misses, nor, when it hashes the old password again (made
with other costs, or before passwords were normalized), write it back over the new one."""

from __future__ import annotations

import asyncio
import uuid

from argon2 import PasswordHasher
from sqlalchemy import select, update

from koan.auth.service import open_session
from koan.db import transactional
from koan.models import AuthSession, User
from koan.security import normalize_password
from tests.fixtures.factories import PASSWORD, bearer, create_user
from tests.fixtures.live import (
    LiveApp,
    in_turn,
    live,
    live_resources,
    lock_waiters,
    until_waiting,
)

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py

NEW_PASSWORD = "another-staple-battery-7"


async def test_a_login_rehashing_the_old_password_does_not_undo_a_change_made_meanwhile(
    live: LiveApp,
) -> None:
    res = live.res
    async with res.session_factory() as session, transactional(session):
        user = await create_user(session, res)
        headers = await bearer(session, res, user)
        # Hashed with costs other than Koan's now: the next login hashes it again.
        costs = res.settings.password_time_cost + 1
        older = PasswordHasher(
            time_cost=costs,
            memory_cost=res.settings.password_memory_kib,
            parallelism=res.settings.password_parallelism,
        )
        old_hash = older.hash(normalize_password(PASSWORD))
        await session.execute(update(User).where(User.id == user.id).values(password_hash=old_hash))
    live.users.append(user.id)
    assert res.hasher.needs_rehash(old_hash)

    # On PostgreSQL the change is saved first and the login, which checked the old password
    # meanwhile, after: the account's row is held until both wait for it.
    changed, logged_in = await in_turn(
        res,
        select(User).where(User.id == user.id),
        live.client.post(
            "/api/v1/users/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=headers,
        ),
        live.client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}),
        key_share=True,  # a login's new session refers to the account
    )

    assert changed.status_code == 200, changed.text
    assert logged_in.status_code == 401, logged_in.text
    with_new = await live.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": NEW_PASSWORD}
    )
    assert with_new.status_code == 200, with_new.text
    with_old = await live.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert with_old.status_code == 401, with_old.text


async def test_a_login_with_the_old_password_as_it_changes_keeps_no_session(
    live: LiveApp,
) -> None:
    """Changing the password ends every other session; a login that checks the old password
    while the change is being saved is refused, instead of opening a session the change's
    ending of the others missed."""
    res = live.res
    async with res.session_factory() as session, transactional(session):
        user = await create_user(session, res)
        tokens = await open_session(session, res, user, user_agent="tests")
        headers = {"Authorization": f"Bearer {tokens.access_token}"}
        # Another device's session, which the change ends.
        await bearer(session, res, user)
    live.users.append(user.id)
    change = live.client.post(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    login = live.client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})

    if res.engine.dialect.name == "postgresql":
        # The change has saved the new password (not yet committed) and is ending the other
        # sessions, held meanwhile, when the login checks the old one.
        async with res.engine.connect() as holder:
            hold = await holder.begin()
            others = select(AuthSession).where(
                AuthSession.user_id == user.id, AuthSession.id != uuid.UUID(tokens.session_id)
            )
            await holder.execute(others.with_for_update())
            changing = asyncio.ensure_future(change)
            await until_waiting(res, 1)
            logging_in = asyncio.ensure_future(login)
            for _ in range(3000):  # bounded: until the login is answered or waits too
                if logging_in.done() or await lock_waiters(res) >= 2:
                    break
                await asyncio.sleep(0.01)
            await hold.rollback()
            changed, logged_in = await changing, await logging_in
    else:  # SQLite's write transactions run one after the other
        changed, logged_in = await change, await login

    assert changed.status_code == 200, changed.text
    if logged_in.status_code == 200:  # then its session must have been ended with the others
        mine = {"Authorization": f"Bearer {logged_in.json()['access_token']}"}
        me = await live.client.get("/api/v1/users/me", headers=mine)
        assert me.status_code == 401, "a session opened with the old password outlived the change"
    else:
        assert logged_in.status_code == 401, logged_in.text
        assert logged_in.json()["error"] == "InvalidCredentials"
