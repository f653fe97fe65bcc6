"""A password changed at the same moment as a login with the old one, each request in a
transaction of its own as in production (`live`): the login may hash the old password again
(made with other costs, or before passwords were normalized), and that must never write the
old password back over the new one."""

from __future__ import annotations

from argon2 import PasswordHasher
from sqlalchemy import select, update

from koan.db import transactional
from koan.models import User
from koan.security import normalize_password
from tests.fixtures.factories import PASSWORD, bearer, create_user
from tests.fixtures.live import LiveApp, in_turn, live, live_resources

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
    # The login checked the old password before the change (PostgreSQL), or after it (SQLite
    # runs the two in turn).
    assert logged_in.status_code in {200, 401}, logged_in.text
    with_new = await live.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": NEW_PASSWORD}
    )
    assert with_new.status_code == 200, with_new.text
    with_old = await live.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert with_old.status_code == 401, with_old.text
