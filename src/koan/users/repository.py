"""Queries over accounts, for administrators: find, search, count."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import User


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


def _matching(
    text: str | None, role: str | None, disabled: bool | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if text:
        needle = text.lower()
        # Emails are stored lower-case; names are compared lower-cased.
        conditions.append(
            or_(
                User.email.contains(needle, autoescape=True),
                func.lower(User.name).contains(needle, autoescape=True),
            )
        )
    if role is not None:
        conditions.append(User.role == role)
    if disabled is not None:
        conditions.append(User.disabled_at.is_not(None) if disabled else User.disabled_at.is_(None))
    return conditions


async def search(
    session: AsyncSession,
    *,
    text: str | None,
    role: str | None,
    disabled: bool | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[User]:
    """Matching accounts, newest first, after the (created_at, id) of a page's last one."""
    query = (
        select(User)
        .where(*_matching(text, role, disabled))
        .order_by(User.created_at.desc(), User.id.desc())
        .limit(limit)
    )
    if after is not None:
        created, last_id = after
        query = query.where(
            or_(User.created_at < created, and_(User.created_at == created, User.id < last_id))
        )
    return (await session.execute(query)).scalars().all()


async def count(
    session: AsyncSession, *, text: str | None, role: str | None, disabled: bool | None
) -> int:
    query = select(func.count()).select_from(User).where(*_matching(text, role, disabled))
    return int((await session.execute(query)).scalar_one())


async def hold_enabled_admins(session: AsyncSession) -> int:
    """Count the enabled administrators, holding their accounts' rows (FOR NO KEY UPDATE,
    PostgreSQL, in one order) until the transaction ends: two requests that each disable or
    demote an administrator take turns, and the second counts what the first left (two
    administrators disabling each other at once must not both succeed). SQLite's write
    transactions take turns already."""
    query = (
        select(User.id)
        .where(*_matching(None, "admin", False))
        .order_by(User.id)
        .with_for_update(key_share=True)
    )
    return len((await session.execute(query)).all())
