"""Administrators changing each other's accounts at the same moment, each request in a
transaction of its own as in production (`live`): Koan always keeps an enabled administrator,
so of two administrators disabling each other at once, only one succeeds."""

from __future__ import annotations

from sqlalchemy import func, select

from koan.db import transactional
from koan.models import User
from tests.fixtures.factories import bearer, create_user
from tests.fixtures.live import LiveApp, in_turn, live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py

ENABLED_ADMINS = select(func.count()).where(User.role == "admin", User.disabled_at.is_(None))


async def test_two_administrators_disabling_each_other_at_once_leave_one_enabled(
    live: LiveApp,
) -> None:
    res = live.res
    async with res.session_factory() as session, transactional(session):
        ada = await create_user(session, res, name="Ada", role="admin")
        bob = await create_user(session, res, name="Bob", role="admin")
        ada_h = await bearer(session, res, ada)
        bob_h = await bearer(session, res, bob)
    live.users += [ada.id, bob.id]
    async with res.session_factory() as session:
        assert await session.scalar(ENABLED_ADMINS) == 2  # they are Koan's only administrators

    # On PostgreSQL both count the administrators before either disables the other: their
    # accounts are held meanwhile.
    answers = await in_turn(
        res,
        select(User).where(User.id.in_([ada.id, bob.id])),
        live.client.post(f"/api/v1/admin/users/{bob.id}/disable", headers=ada_h),
        live.client.post(f"/api/v1/admin/users/{ada.id}/disable", headers=bob_h),
    )

    done = [answer for answer in answers if answer.status_code == 200]
    refused = [answer for answer in answers if answer.status_code != 200]
    assert len(done) == 1, [answer.text for answer in answers]
    # The second is refused as the last administrator, or, when it comes after the first has
    # ended its sessions (SQLite: in turn), as no longer logged in.
    assert (refused[0].status_code, refused[0].json()["error"]) in {
        (409, "Conflict"),
        (401, "InvalidToken"),
    }, refused[0].text
    async with res.session_factory() as session:
        assert await session.scalar(ENABLED_ADMINS) == 1
