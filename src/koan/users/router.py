"""The signed-in user's own account and learner profile."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Query, Response

from koan.auth import service as auth_service
from koan.auth.deps import (
    AccountCloseCheckDep,
    AdminUser,
    CallerShown,
    CurrentAuth,
    CurrentUser,
    VerifiedUser,
)
from koan.auth.router import clear_auth_cookies
from koan.auth.schemas import Message
from koan.common.routing import PrefixedRouter
from koan.deps import ResourcesDep, SessionDep
from koan.onboarding import service as onboarding
from koan.onboarding import service as profiles
from koan.onboarding.schemas import ProfileOut, ProfileUpdate
from koan.pagination import MAX_CURSOR_CHARS
from koan.users import admin, service
from koan.users.schemas import (
    AccountDeletion,
    AccountOut,
    AccountPage,
    PasswordChange,
    UserOut,
    UserUpdate,
)

router = PrefixedRouter(prefix="/users", tags=["users"])
admin_router = PrefixedRouter(prefix="/admin/users", tags=["admin"])


@router.get("/me", response_model=UserOut)
async def me(caller: CallerShown) -> UserOut:
    """Who is signed in (works before the email is verified)."""
    return service.account_of(caller.user, caller.profile)


@router.patch("/me", response_model=UserOut)
async def update_me(data: UserUpdate, user: CurrentUser, session: SessionDep) -> UserOut:
    """Change name, time zone or preferences; fields left out stay as they are."""
    return await service.update(session, user, data)


@router.post("/me/password", response_model=Message)
async def change_password(
    data: PasswordChange, auth: CurrentAuth, session: SessionDep, res: ResourcesDep
) -> Message:
    """Change the password (needs the current one); every other session is ended."""
    await auth_service.change_password(
        session,
        res,
        auth.user,
        auth.session,
        current_password=data.current_password,
        new_password=data.new_password,
    )
    return Message(message="Your password has been changed.")


@router.delete("/me", response_model=Message)
async def delete_me(
    data: AccountDeletion,
    auth: CurrentAuth,
    response: Response,
    session: SessionDep,
    res: ResourcesDep,
    check: AccountCloseCheckDep,
) -> Message:
    """Delete the account and everything it owns (needs the password); 409 while it is the
    only instructor of a class (LastInstructor) or the only enabled administrator."""
    await auth_service.delete_account(
        session, res, auth.user, auth.session, data.password, check=check
    )
    clear_auth_cookies(response)
    return Message(message="Your account and everything in it have been deleted.")


@router.get("/me/profile", response_model=ProfileOut)
async def profile(user: VerifiedUser, session: SessionDep) -> ProfileOut:
    """The learner profile filled by onboarding."""
    return ProfileOut.model_validate(await profiles.profile_of(session, user))


@router.patch("/me/profile", response_model=ProfileOut)
async def update_profile(
    data: ProfileUpdate, user: VerifiedUser, session: SessionDep
) -> ProfileOut:
    """Change the learner profile after onboarding."""
    return ProfileOut.model_validate(await onboarding.update_profile(session, user, data))


@admin_router.get("", response_model=AccountPage)
async def accounts(
    admin_user: AdminUser,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=320, description="Part of an email or name.")] = None,
    role: Literal["learner", "admin"] | None = None,
    disabled: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> AccountPage:
    """Accounts, newest first, filtered by a substring of the email or name, role, status."""
    return await admin.account_page(
        session, text=q, role=role, disabled=disabled, limit=limit, cursor=cursor
    )


@admin_router.post("/{user_id}/disable", response_model=AccountOut)
async def disable(
    user_id: uuid.UUID, admin_user: AdminUser, session: SessionDep, res: ResourcesDep
) -> AccountOut:
    """Disable an account: its sessions end at once and it cannot log in (idempotent)."""
    return await admin.set_disabled(session, res, user_id, True, by=admin_user)


@admin_router.post("/{user_id}/enable", response_model=AccountOut)
async def enable(
    user_id: uuid.UUID, admin_user: AdminUser, session: SessionDep, res: ResourcesDep
) -> AccountOut:
    """Let a disabled account log in again (idempotent)."""
    return await admin.set_disabled(session, res, user_id, False, by=admin_user)
