"""Request-scoped dependencies every domain uses: the resources and the database session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from koan.cache import SESSION_CACHE
from koan.db import transactional
from koan.resources import Resources


# Dependencies are `async def` even when they never await: FastAPI runs a plain `def` in a
# worker thread, a hop that costs more than the work on every request.
async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed when the handler succeeds, rolled back on error."""
    resources: Resources = request.app.state.resources
    async with resources.session_factory() as session, transactional(session):
        session.info[SESSION_CACHE] = resources.cache
        yield session


SessionOpener = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def session_opener(resources: Resources) -> SessionOpener:
    """Opens a fresh session (committed on success) from the app's session factory."""
    factory = resources.session_factory

    @asynccontextmanager
    async def open_session() -> AsyncIterator[AsyncSession]:
        async with factory() as session, transactional(session):
            session.info[SESSION_CACHE] = resources.cache
            yield session

    return open_session


async def get_session_opener(request: Request) -> SessionOpener:
    """Opens a fresh session (committed on success) from the app's session factory, for work
    that outlives the handler (a streamed reply or download runs after it has returned)."""
    return session_opener(request.app.state.resources)


ResourcesDep = Annotated[Resources, Depends(get_resources)]
# scope="function": the transaction commits before the response is sent. FastAPI's default
# ends a yield dependency after the response, so a client could be told "logged out" (and call
# another worker) before the revocation was committed, or "saved" for a commit that then fails.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SessionOpenerDep = Annotated[SessionOpener, Depends(get_session_opener)]
