"""Sessions for work that outlives the request handler: a streamed reply is stored after the
handler has returned, so it cannot use the request's session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from koan.db import transactional
from koan.deps import get_resources

SessionOpener = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def get_session_opener(request: Request) -> SessionOpener:
    """Opens a fresh session (committed on success) from the app's session factory.

    Tests override this dependency to bind the sessions to their rolled-back connection, as they
    do for `get_session`."""
    factory = get_resources(request).session_factory

    @asynccontextmanager
    async def open_session() -> AsyncIterator[AsyncSession]:
        async with factory() as session, transactional(session):
            yield session

    return open_session


SessionOpenerDep = Annotated[SessionOpener, Depends(get_session_opener)]
