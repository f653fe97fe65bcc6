"""Request-scoped dependencies every domain uses: the resources and the database session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from koan.db import transactional
from koan.resources import Resources


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed when the handler succeeds, rolled back on error."""
    async with get_resources(request).session_factory() as session, transactional(session):
        yield session


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
