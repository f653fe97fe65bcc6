"""The rules of accounts: registration, login, sessions, email verification, password resets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth import repository
from koan.auth.schemas import LoginInput, RegisterInput
from koan.errors import BadRequest, InvalidCredentials, InvalidToken, ValidationFailed
from koan.mail import messages
from koan.models import AuthSession, EmailToken, RefreshToken, User
from koan.resources import Resources
from koan.security import encode_access_token, hash_token, new_opaque_token, password_problem

log = structlog.get_logger(__name__)

VERIFY = "verify"
RESET = "reset"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str


def check_password(password: str, *, email: str | None = None, field: str = "password") -> None:
    problem = password_problem(password, email=email)
    if problem:
        raise ValidationFailed(problem, code="WeakPassword", headers={"X-Koan-Field": field})


def login_slowdown_s(failures: int, *, step_s: float, cap_s: float) -> float:
    """Delay before answering a login after `failures` recent failures (the first two are free)."""
    return min(cap_s, step_s * max(0, failures - 2))


class AccountMaker(Protocol):
    """Makes a new account with what every account has (users.service.create_user; the app
    wires it in, as auth sits below the domains that keep something per account)."""

    async def __call__(
        self, session: AsyncSession, *, email: str, name: str, password_hash: str
    ) -> User: ...


async def register(
    session: AsyncSession, res: Resources, data: RegisterInput, make_account: AccountMaker
) -> None:
    """Create an unverified account; for a taken email, mail the owner and answer the same way."""
    check_password(data.password, email=data.email)
    # Hash in both branches so a duplicate takes as long as a new registration.
    password_hash = await res.hasher.hash(data.password)
    existing = await repository.user_by_email(session, data.email)
    if existing is not None:
        subject, body = messages.already_registered(
            name=existing.name, base_url=res.settings.base_url
        )
        await res.mailer.send(session, to=existing.email, subject=subject, body=body)
        return
    user = await make_account(
        session, email=data.email, name=data.name, password_hash=password_hash
    )
    await send_verification(session, res, user)


async def send_verification(session: AsyncSession, res: Resources, user: User) -> None:
    token = await _issue_email_token(session, res, user, VERIFY, res.settings.verify_token_ttl_s)
    subject, body = messages.verification(
        name=user.name,
        base_url=res.settings.base_url,
        token=token,
        hours=res.settings.verify_token_ttl_s // 3600,
    )
    await res.mailer.send(session, to=user.email, subject=subject, body=body)


async def _issue_email_token(
    session: AsyncSession, res: Resources, user: User, purpose: str, ttl_s: int
) -> str:
    now = res.clock.now()
    await repository.retire_email_tokens(session, user.id, purpose, now=now)
    token = new_opaque_token()
    session.add(
        EmailToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    await session.flush()
    return token


async def _spend_email_token(
    session: AsyncSession, res: Resources, token: str, purpose: str
) -> User:
    record = await repository.email_token_by_hash(session, hash_token(token))
    now = res.clock.now()
    if record is None or record.purpose != purpose or record.used_at is not None:
        raise BadRequest("This link is invalid or has already been used.", code="InvalidToken")
    if record.expires_at <= now:
        raise BadRequest("This link has expired; ask for a new one.", code="TokenExpired")
    record.used_at = now
    user = await repository.user_by_id(session, record.user_id)
    if user is None:  # the account was deleted; its tokens go with it, but be safe
        raise BadRequest("This link is invalid or has already been used.", code="InvalidToken")
    return user


async def verify_email(session: AsyncSession, res: Resources, token: str) -> User:
    user = await _spend_email_token(session, res, token, VERIFY)
    if user.email_verified_at is None:
        user.email_verified_at = res.clock.now()
    await session.flush()
    return user


async def resend_verification(session: AsyncSession, res: Resources, user: User) -> None:
    if user.email_verified:
        raise BadRequest("Your email is already verified.", code="AlreadyVerified")
    await res.limiter.hit(
        res.settings.resend_verification_limit,
        "resend-verification",
        str(user.id),
        detail="Too many verification mails; try again later.",
    )
    await send_verification(session, res, user)


async def login(
    session: AsyncSession, res: Resources, data: LoginInput, *, address: str, user_agent: str
) -> IssuedTokens:
    """Check credentials under throttling and open a new session."""
    s = res.settings
    account_key = ("login-account", data.email)
    address_key = ("login-address", address)
    detail = "Too many failed logins; wait before trying again."
    await res.limiter.check(s.login_limit_per_account, *account_key, detail=detail)
    await res.limiter.check(s.login_limit_per_address, *address_key, detail=detail)
    failures = await res.limiter.used(s.login_limit_per_account, *account_key)
    delay = login_slowdown_s(failures, step_s=s.login_slowdown_step_s, cap_s=s.login_slowdown_cap_s)
    if delay > 0:
        await asyncio.sleep(delay)

    user = await repository.user_by_email(session, data.email)
    if user is None:
        # Same work as a real check, so timing does not tell which emails have accounts.
        await res.hasher.verify_against_nothing(data.password)
        ok = False
    else:
        ok = await res.hasher.verify(user.password_hash, data.password)
    if not ok or user is None:
        await res.limiter.hit(s.login_limit_per_account, *account_key, detail=detail)
        await res.limiter.hit(s.login_limit_per_address, *address_key, detail=detail)
        raise InvalidCredentials("The email or password is incorrect.")
    await res.limiter.clear(s.login_limit_per_account, *account_key)
    if res.hasher.needs_rehash(user.password_hash):
        user.password_hash = await res.hasher.hash(data.password)
    return await open_session(session, res, user, user_agent=user_agent)


async def open_session(
    session: AsyncSession, res: Resources, user: User, *, user_agent: str
) -> IssuedTokens:
    now = res.clock.now()
    auth_session = AuthSession(
        user_id=user.id,
        created_at=now,
        expires_at=now + timedelta(seconds=res.settings.refresh_token_ttl_s),
        user_agent=user_agent[:200],
    )
    session.add(auth_session)
    await session.flush()
    return await _issue_pair(session, res, user, auth_session, now)


async def _issue_pair(
    session: AsyncSession, res: Resources, user: User, auth_session: AuthSession, now: datetime
) -> IssuedTokens:
    refresh = new_opaque_token()
    session.add(
        RefreshToken(
            session_id=auth_session.id,
            token_hash=hash_token(refresh),
            created_at=now,
            expires_at=now + timedelta(seconds=res.settings.refresh_token_ttl_s),
        )
    )
    await session.flush()
    access = encode_access_token(
        key=res.settings.signing_key,
        user_id=user.id,
        session_id=auth_session.id,
        now=now,
        ttl_s=res.settings.access_token_ttl_s,
    )
    return IssuedTokens(
        access_token=access,
        refresh_token=refresh,
        expires_in=res.settings.access_token_ttl_s,
        session_id=str(auth_session.id),
    )


async def refresh(session: AsyncSession, res: Resources, token: str) -> IssuedTokens:
    """Rotate a refresh token; a spent one presented again revokes its whole session family."""
    now = res.clock.now()
    record = await repository.refresh_token_by_hash(session, hash_token(token))
    if record is None:
        raise InvalidToken("The refresh token is invalid.")
    auth_session = await repository.auth_session(session, record.session_id)
    if auth_session is None or auth_session.revoked_at is not None:
        raise InvalidToken("This session has ended; log in again.")
    if record.spent_at is not None:
        auth_session.revoked_at = now
        auth_session.revoked_reason = "refresh_reuse"
        await session.flush()
        log.warning("auth.refresh_reuse", session_id=str(auth_session.id))
        raise InvalidToken(
            "This refresh token was already used; the session has been ended for safety.",
            code="TokenReused",
            keep_changes=True,
        )
    if record.expires_at <= now or auth_session.expires_at <= now:
        raise InvalidToken("The refresh token has expired; log in again.")
    user = await repository.user_by_id(session, auth_session.user_id)
    if user is None:
        raise InvalidToken("The refresh token is invalid.")
    record.spent_at = now
    return await _issue_pair(session, res, user, auth_session, now)


async def logout(session: AsyncSession, res: Resources, auth_session: AuthSession) -> None:
    auth_session.revoked_at = res.clock.now()
    auth_session.revoked_reason = "logout"
    await session.flush()


async def logout_all(session: AsyncSession, res: Resources, user: User) -> None:
    await repository.revoke_sessions(session, user.id, now=res.clock.now(), reason="logout_all")


async def request_password_reset(session: AsyncSession, res: Resources, email: str) -> None:
    """Mail a reset link if the account exists; the caller answers the same either way."""
    await res.limiter.hit(
        res.settings.password_reset_limit,
        "password-reset",
        email,
        detail="Too many reset requests for this address; try again later.",
    )
    user = await repository.user_by_email(session, email)
    if user is None:
        return
    token = await _issue_email_token(session, res, user, RESET, res.settings.reset_token_ttl_s)
    subject, body = messages.password_reset(
        name=user.name,
        base_url=res.settings.base_url,
        token=token,
        minutes=res.settings.reset_token_ttl_s // 60,
    )
    await res.mailer.send(session, to=user.email, subject=subject, body=body)


async def confirm_password_reset(
    session: AsyncSession, res: Resources, token: str, new_password: str
) -> None:
    record = await repository.email_token_by_hash(session, hash_token(token))
    email = None
    if record is not None:
        owner = await repository.user_by_id(session, record.user_id)
        email = owner.email if owner else None
    check_password(new_password, email=email, field="new_password")
    user = await _spend_email_token(session, res, token, RESET)
    now = res.clock.now()
    user.password_hash = await res.hasher.hash(new_password)
    # Whoever can read the mailbox owns the address.
    if user.email_verified_at is None:
        user.email_verified_at = now
    await repository.revoke_sessions(session, user.id, now=now, reason="password_reset")
    await session.flush()


async def change_password(
    session: AsyncSession,
    res: Resources,
    user: User,
    current_session: AuthSession,
    *,
    current_password: str,
    new_password: str,
) -> None:
    """Change a password knowing the current one; other sessions are ended."""
    if not await res.hasher.verify(user.password_hash, current_password):
        raise InvalidCredentials("The current password is incorrect.", status_code=400)
    check_password(new_password, email=user.email, field="new_password")
    user.password_hash = await res.hasher.hash(new_password)
    await repository.revoke_sessions(
        session,
        user.id,
        now=res.clock.now(),
        reason="password_change",
        except_session=current_session.id,
    )
    await session.flush()


async def delete_account(session: AsyncSession, res: Resources, user: User, password: str) -> None:
    if not await res.hasher.verify(user.password_hash, password):
        raise InvalidCredentials("The password is incorrect.", status_code=400)
    await session.delete(user)
    await session.flush()
