"""Queries for users' sessions and tokens."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from koan.db import memo
from koan.models import AuthSession, EmailToken, LearnerProfile, RefreshToken, User


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def auth_session(session: AsyncSession, session_id: uuid.UUID) -> AuthSession | None:
    return await session.get(AuthSession, session_id)


# Built once: every authenticated request runs it, and building the expression (and its cache
# key) costs about as much as SQLAlchemy's compiled-statement cache saves.
# The unrevoked session with its user; other lookups made on every request extend it.
# Disabling an account revokes its sessions; the condition on the user is a second lock on
# that door, checked in the same query (a session opened as the account was being disabled).
# The learner's profile comes along (None for an account made before profiles came with it):
# the account page, the daily pick and grading read it, and `session.get` then finds it in
# the identity map instead of asking the database again.
LIVE_SESSION_AND_USER = (
    select(AuthSession, User, LearnerProfile)
    .join(User, User.id == AuthSession.user_id)
    .outerjoin(LearnerProfile, LearnerProfile.user_id == User.id)
    .where(
        AuthSession.id == bindparam("session_id"),
        AuthSession.user_id == bindparam("user_id"),
        AuthSession.revoked_at.is_(None),
        User.disabled_at.is_(None),
    )
)


async def live_session_and_user(
    session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[AuthSession, User] | None:
    """The unrevoked session `session_id` of user `user_id`, an account not disabled, with the
    user (and their profile, kept in the session): one round trip for what every
    authenticated request checks."""
    params = {"session_id": session_id, "user_id": user_id}
    row = (await session.execute(LIVE_SESSION_AND_USER, params)).one_or_none()
    if row is None:
        return None
    # The identity map holds rows weakly: kept here, the profile stays for the request.
    memo(session)[("caller_profile", user_id)] = row[2]
    return row[0], row[1]


async def refresh_token_by_hash(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    query = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
    return (await session.execute(query)).scalar_one_or_none()


async def revoke_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    now: datetime,
    reason: str,
    except_session: uuid.UUID | None = None,
) -> None:
    query = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        # Only this user's kept sessions need dropping on every worker (koan.auth.snapshots).
        .execution_options(koan_changes_users=(user_id,))
    )
    if except_session is not None:
        query = query.where(AuthSession.id != except_session)
    await session.execute(query)


async def last_seen(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """The newest refresh token of each user's sessions (a login issues one, a renewal another)."""
    if not user_ids:
        return {}
    query = (
        select(AuthSession.user_id, func.max(RefreshToken.created_at))
        .join(RefreshToken, RefreshToken.session_id == AuthSession.id)
        .where(AuthSession.user_id.in_(user_ids))
        .group_by(AuthSession.user_id)
    )
    return {user_id: seen for user_id, seen in (await session.execute(query)).all()}


async def replace_password_hash(session: AsyncSession, user: User, new_hash: str) -> bool:
    """Store `new_hash` (the same password hashed again: new costs, or normalized) unless the
    password changed since `user` was read: a login that checked the old password must not
    write it back over a change or a reset made meanwhile. One conditional UPDATE (on
    PostgreSQL it waits for a change in progress, then finds the hash changed)."""
    statement = (
        update(User)
        .where(User.id == user.id, User.password_hash == user.password_hash)
        .values(password_hash=new_hash)
        .execution_options(synchronize_session=False, koan_changes_users=(user.id,))
    )
    replaced = bool(getattr(await session.execute(statement), "rowcount", 0))
    if replaced:
        set_committed_value(user, "password_hash", new_hash)
    return replaced


async def hold_password(session: AsyncSession, user: User) -> bool:
    """Whether the account's password is still the one `user` was read with, holding its row
    (FOR SHARE, PostgreSQL) until the transaction ends: a password change in progress is
    waited for and then seen, and one that starts later waits for this transaction, whose new
    session it then ends with the others. SQLite's write transactions take turns already."""
    query = (
        select(User.id)
        .where(User.id == user.id, User.password_hash == user.password_hash)
        .with_for_update(read=True)
    )
    return (await session.execute(query)).first() is not None


async def email_token_by_hash(session: AsyncSession, token_hash: str) -> EmailToken | None:
    query = select(EmailToken).where(EmailToken.token_hash == token_hash)
    return (await session.execute(query)).scalar_one_or_none()


async def _spend_once(
    session: AsyncSession, row: EmailToken | RefreshToken, column: str, now: datetime
) -> bool:
    """Set `row.<column>` to `now` unless it is set already, in one conditional UPDATE: of two
    requests spending one token at once, only one succeeds (on PostgreSQL the other waits for
    the first's transaction, then sees the token spent)."""
    model = type(row)
    field = getattr(model, column)
    statement = (
        update(model)
        .where(model.id == row.id, field.is_(None))
        .values({column: now})
        .execution_options(synchronize_session=False)
    )
    spent = bool(getattr(await session.execute(statement), "rowcount", 0))
    if spent:
        set_committed_value(row, column, now)
    return spent


async def spend_email_token(session: AsyncSession, token: EmailToken, *, now: datetime) -> bool:
    """Mark a mailed link used, unless another request did first."""
    return await _spend_once(session, token, "used_at", now)


async def spend_refresh_token(session: AsyncSession, token: RefreshToken, *, now: datetime) -> bool:
    """Mark a refresh token spent, unless another request did first."""
    return await _spend_once(session, token, "spent_at", now)


async def retire_email_tokens(
    session: AsyncSession, user_id: uuid.UUID, purpose: str, *, now: datetime
) -> None:
    """Mark every unused token of this purpose as used, so only a newer one works."""
    await session.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == user_id,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
