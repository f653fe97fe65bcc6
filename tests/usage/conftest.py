"""Fixtures for the usage and budget tests."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.resources import Resources
from tests.fixtures.factories import bearer, create_user


@pytest.fixture
async def admin_headers(session: AsyncSession, resources: Resources) -> dict[str, str]:
    admin = await create_user(session, resources, role="admin", onboarded=True)
    return await bearer(session, resources, admin)
