"""Fixtures for the usage and budget tests."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import User
from koan.resources import Resources
from tests.fixtures.factories import bearer, create_user


@pytest.fixture
async def learner(session: AsyncSession, resources: Resources) -> User:
    return await create_user(session, resources, onboarded=True)


@pytest.fixture
async def headers(session: AsyncSession, resources: Resources, learner: User) -> dict[str, str]:
    return await bearer(session, resources, learner)


@pytest.fixture
async def admin_headers(session: AsyncSession, resources: Resources) -> dict[str, str]:
    admin = await create_user(session, resources, role="admin", onboarded=True)
    return await bearer(session, resources, admin)
