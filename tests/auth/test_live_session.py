"""The one query every authenticated request runs: a live session of the token's user."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth import repository
from koan.auth import service as auth_service
from koan.models import AuthSession
from koan.resources import Resources
from tests.fixtures.factories import create_user


async def test_only_an_unrevoked_session_of_that_very_user_is_found(
    session: AsyncSession, resources: Resources
) -> None:
    ada = await create_user(session, resources)
    bob = await create_user(session, resources)
    await auth_service.open_session(session, resources, ada, user_agent="tests")
    ada_session = await session.scalar(select(AuthSession).where(AuthSession.user_id == ada.id))
    assert ada_session is not None

    found = await repository.live_session_and_user(session, ada_session.id, ada.id)
    assert found is not None
    assert (found[0].id, found[1].id, found[1].email) == (ada_session.id, ada.id, ada.email)

    # A token naming another user than the session's owner finds nothing.
    assert await repository.live_session_and_user(session, ada_session.id, bob.id) is None

    ada_session.revoked_at = datetime.now(UTC)
    await session.flush()
    assert await repository.live_session_and_user(session, ada_session.id, ada.id) is None

    ada_session.revoked_at = None
    await session.delete(ada)
    await session.flush()
    assert await repository.live_session_and_user(session, ada_session.id, ada.id) is None
