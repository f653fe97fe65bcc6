"""Fixtures for the usage and budget tests."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.resources import Resources
from tests.fixtures.factories import bearer, create_user
from tests.fixtures.live import live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py


@pytest.fixture
async def admin_headers(session: AsyncSession, resources: Resources) -> dict[str, str]:
    admin = await create_user(session, resources, role="admin", onboarded=True)
    return await bearer(session, resources, admin)
