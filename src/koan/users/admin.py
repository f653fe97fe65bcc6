"""What administrators do to accounts: find and list them, disable and enable them, and move
them between the learner and administrator roles."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth import service as auth_service
from koan.errors import BadRequest, Conflict, NotFound
from koan.models import User
from koan.pagination import decode_cursor, next_cursor
from koan.resources import Resources
from koan.users import repository
from koan.users.schemas import AccountOut
from koan.users.schemas import AccountPage as AccountPageOut

ROLES = ("learner", "admin")


@dataclass(frozen=True)
class AccountRow:
    user: User
    # The latest login or session renewal; None for an account never logged in.
    last_seen_at: datetime | None


@dataclass(frozen=True)
class AccountPage:
    items: list[AccountRow]
    next_cursor: str | None
    # How many accounts match the filters, on every page.
    total: int


async def find(session: AsyncSession, who: str) -> User:
    """The account with this email address or id; NotFound names what was looked for."""
    who = who.strip()
    try:
        user = await repository.user_by_id(session, uuid.UUID(who))
    except ValueError:
        user = await repository.user_by_email(session, who.lower())
    if user is None:
        raise NotFound(f"No account has the email address or id {who!r}.")
    return user


async def list_accounts(
    session: AsyncSession,
    *,
    text: str | None = None,
    role: str | None = None,
    disabled: bool | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AccountPage:
    """Accounts matching the filters (a substring of the email or name, a role, disabled or
    not), newest first, a page at a time."""
    after = decode_cursor(cursor, datetime, uuid.UUID) if cursor else None
    text = (text or "").strip() or None
    rows = await repository.search(
        session, text=text, role=role, disabled=disabled, after=after, limit=limit + 1
    )
    page = list(rows[:limit])
    seen = await auth_service.last_seen(session, [u.id for u in page])
    return AccountPage(
        items=[AccountRow(u, seen.get(u.id)) for u in page],
        next_cursor=next_cursor(rows, limit, lambda u: (u.created_at, u.id)),
        total=await repository.count(session, text=text, role=role, disabled=disabled),
    )


async def last_seen(session: AsyncSession, user: User) -> datetime | None:
    return (await auth_service.last_seen(session, [user.id])).get(user.id)


async def _keep_an_admin(session: AsyncSession, user: User, doing: str) -> None:
    if user.is_admin and not user.disabled and await repository.hold_enabled_admins(session) <= 1:
        raise Conflict(
            f"{user.email} is the only administrator whose account is enabled: {doing} would "
            "leave nobody to administer Koan. Make another account an administrator first."
        )


async def check_account_closable(session: AsyncSession, user: User) -> None:
    """An account may be deleted unless it is the only enabled administrator (as it may not be
    disabled or demoted then): nobody would be left to administer Koan."""
    await _keep_an_admin(session, user, "deleting it")


async def disable(
    session: AsyncSession, res: Resources, user: User, *, by: User | None = None
) -> bool:
    """Disable an account: it cannot log in, and every session it has ends now. False when it
    was disabled already. `by`: the administrator doing it (never their own account)."""
    if by is not None and by.id == user.id:
        raise Conflict("You cannot disable your own account.")
    if user.disabled:
        return False
    await _keep_an_admin(session, user, "disabling it")
    user.disabled_at = res.clock.now()
    await auth_service.end_sessions_of_disabled(session, res, user)
    await session.flush()
    return True


async def enable(session: AsyncSession, user: User) -> bool:
    """Let a disabled account log in again (its old sessions stay ended). False when it was
    not disabled."""
    if not user.disabled:
        return False
    user.disabled_at = None
    await session.flush()
    return True


async def set_role(session: AsyncSession, user: User, role: str) -> bool:
    """Make the account a learner or an administrator; False when it already is one."""
    if role not in ROLES:
        raise BadRequest(f"There is no role {role!r}; the roles are {', '.join(ROLES)}.")
    if user.role == role:
        return False
    if role != "admin":
        await _keep_an_admin(session, user, "demoting it")
    user.role = role
    await session.flush()
    return True


def account_out(row: AccountRow) -> AccountOut:
    user = row.user
    return AccountOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        email_verified=user.email_verified,
        disabled=user.disabled,
        disabled_at=user.disabled_at,
        created_at=user.created_at,
        last_seen_at=row.last_seen_at,
    )


async def account_page(
    session: AsyncSession,
    *,
    text: str | None,
    role: str | None,
    disabled: bool | None,
    limit: int,
    cursor: str | None,
) -> AccountPageOut:
    """`list_accounts` as the API answers it."""
    page = await list_accounts(
        session, text=text, role=role, disabled=disabled, limit=limit, cursor=cursor
    )
    return AccountPageOut(
        items=[account_out(row) for row in page.items],
        next_cursor=page.next_cursor,
        total=page.total,
    )


async def set_disabled(
    session: AsyncSession, res: Resources, user_id: uuid.UUID, disabled: bool, *, by: User
) -> AccountOut:
    """Disable or enable the account `user_id` for the administrator `by` (done already:
    nothing changes)."""
    user = await repository.user_by_id(session, user_id)
    if user is None:
        raise NotFound("There is no account with this id.")
    if disabled:
        await disable(session, res, user, by=by)
    else:
        await enable(session, user)
    return account_out(AccountRow(user, await last_seen(session, user)))
