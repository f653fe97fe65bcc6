"""The rules of accounts: registration, login, sessions, email verification, password resets."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from koan import turns
from koan.auth import repository
from koan.auth.schemas import LoginInput, RegisterInput
from koan.errors import (
    AccountDisabled,
    BadRequest,
    Conflict,
    CSRFFailed,
    InvalidCredentials,
    InvalidToken,
    RateLimited,
    ValidationFailed,
)
from koan.mail import messages
from koan.mail.sender import Mail, MailQueue
from koan.models import AuthSession, EmailToken, RefreshToken, User
from koan.ops import metrics
from koan.resources import Resources
from koan.security import (
    csrf_token_for,
    device_token,
    encode_access_token,
    hash_token,
    new_opaque_token,
    password_problem,
    same_token,
    trusted_device,
)

log = structlog.get_logger(__name__)

CACHE_DOWN = (RedisError, OSError, TimeoutError)

VERIFY = "verify"
RESET = "reset"
# Why an administrator's disabling ended a session (AuthSession.revoked_reason).
DISABLED = "account_disabled"
DISABLED_DETAIL = (
    "This account has been disabled. Ask the administrator of this Koan if you think this "
    "is a mistake."
)


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    # The double-submit CSRF token bound to this session (the koan_csrf cookie).
    csrf_token: str = ""
    # Set on a login: the koan_device cookie that spares this device the account's ceiling.
    device_token: str = ""


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
    session: AsyncSession,
    res: Resources,
    data: RegisterInput,
    make_account: AccountMaker,
    mail: MailQueue,
) -> None:
    """Create an unverified account; for a taken email, mail the owner and answer the same way."""
    check_password(data.password, email=data.email)
    # Hash in both branches so a duplicate takes as long as a new registration.
    password_hash = await res.hasher.hash(data.password)
    existing = await repository.user_by_email(session, data.email)
    if existing is None:
        try:
            async with session.begin_nested():
                user = await make_account(
                    session, email=data.email, name=data.name, password_hash=password_hash
                )
        except IntegrityError:
            # Another request registered the address meanwhile: answer as for a taken one.
            existing = await repository.user_by_email(session, data.email)
            if existing is None:
                raise
        else:
            await send_verification(session, res, user, mail)
            return
    subject, body = messages.already_registered(name=existing.name, base_url=res.settings.base_url)
    mail.send(Mail(to=existing.email, subject=subject, body=body))


async def send_verification(
    session: AsyncSession, res: Resources, user: User, mail: MailQueue
) -> None:
    token = await _issue_email_token(session, res, user, VERIFY, res.settings.verify_token_ttl_s)
    subject, body = messages.verification(
        name=user.name,
        base_url=res.settings.base_url,
        token=token,
        ttl_s=res.settings.verify_token_ttl_s,
    )
    mail.send(Mail(to=user.email, subject=subject, body=body))


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


LINK_INVALID = "This link is invalid or has already been used."


async def _spend_email_token(
    session: AsyncSession, res: Resources, token: str, purpose: str
) -> User:
    record = await repository.email_token_by_hash(session, hash_token(token))
    now = res.clock.now()
    if record is None or record.purpose != purpose or record.used_at is not None:
        raise BadRequest(LINK_INVALID, code="InvalidToken")
    if record.expires_at <= now:
        raise BadRequest("This link has expired; ask for a new one.", code="TokenExpired")
    if not await repository.spend_email_token(session, record, now=now):
        raise BadRequest(LINK_INVALID, code="InvalidToken")
    user = await repository.user_by_id(session, record.user_id)
    if user is None:  # the account was deleted; its tokens go with it, but be safe
        raise BadRequest(LINK_INVALID, code="InvalidToken")
    return user


async def verify_email(session: AsyncSession, res: Resources, token: str) -> User:
    user = await _spend_email_token(session, res, token, VERIFY)
    if user.email_verified_at is None:
        user.email_verified_at = res.clock.now()
    await session.flush()
    return user


async def resend_verification(
    session: AsyncSession, res: Resources, user: User, mail: MailQueue
) -> None:
    if user.email_verified:
        raise BadRequest("Your email is already verified.", code="AlreadyVerified")
    await res.limiter.hit(
        res.settings.resend_verification_limit,
        "resend-verification",
        str(user.id),
        detail="Too many verification mails; try again later.",
    )
    await send_verification(session, res, user, mail)


LOGIN_REFUSED = "Too many failed logins; wait before trying again."


@dataclass(frozen=True)
class _LoginCounters:
    """The failure counters one login attempt is checked against (rule, identifiers)."""

    address: tuple[str, tuple[str, ...]]
    # This client's failures on this account: per device when it logged in here before,
    # else per address. The login slows down as these grow.
    client: tuple[str, tuple[str, ...]]
    # Every untrusted client's failures on this account: a ceiling that only a guessing
    # attack spread over many addresses reaches; trusted devices are never stopped by it.
    ceiling: tuple[str, tuple[str, ...]] | None


def _login_counters(res: Resources, email: str, address: str, device: str | None) -> _LoginCounters:
    s = res.settings
    if device is not None:
        client = (s.login_limit_per_account_client, ("login-device", email, device))
        ceiling = None
    else:
        client = (s.login_limit_per_account_client, ("login-account-address", email, address))
        ceiling = (s.login_limit_per_account, ("login-account", email))
    return _LoginCounters(
        address=(s.login_limit_per_address, ("login-address", address)),
        client=client,
        ceiling=ceiling,
    )


async def _count(
    res: Resources, method: str, counter: tuple[str, tuple[str, ...]], *, ceiling: bool = False
) -> None:
    rule, ids = counter
    try:
        await getattr(res.limiter, method)(rule, *ids, detail=LOGIN_REFUSED)
    except RateLimited:
        if ceiling:
            metrics.login_ceiling_hit()
            log.warning("auth.login_ceiling_reached", account=ids[-1])
        raise


async def login(
    session: AsyncSession,
    res: Resources,
    data: LoginInput,
    *,
    address: str,
    user_agent: str,
    device: str | None = None,
) -> IssuedTokens:
    """Check credentials under throttling and open a new session.

    Failures count per account and client (address, or device that logged in here before),
    so nobody can lock an owner out from elsewhere; a high per-account ceiling still slows
    guessing spread over many addresses, and raises an alert when reached."""
    key = res.settings.signing_key
    user = await repository.user_by_email(session, data.email)
    trusted = trusted_device(key, user.id, device) if user is not None else None
    counters = _login_counters(res, data.email, address, trusted)
    await _count(res, "check", counters.address)
    await _count(res, "check", counters.client)
    if counters.ceiling is not None:
        await _count(res, "check", counters.ceiling, ceiling=True)
    s = res.settings
    failures = await res.limiter.used(counters.client[0], *counters.client[1])
    delay = login_slowdown_s(failures, step_s=s.login_slowdown_step_s, cap_s=s.login_slowdown_cap_s)
    if delay > 0:
        turns.give_back()  # a slowed login must not slow anyone else's request
        await asyncio.sleep(delay)

    rehash = False
    if user is None:
        # Same work as a real check, so timing does not tell which emails have accounts.
        await res.hasher.verify_against_nothing(data.password)
        ok = False
    else:
        ok, rehash = await res.hasher.verify_and_update(user.password_hash, data.password)
    if not ok or user is None:
        await _count(res, "hit", counters.address)
        await _count(res, "hit", counters.client)
        if counters.ceiling is not None:
            await _count(res, "hit", counters.ceiling, ceiling=True)
        raise InvalidCredentials("The email or password is incorrect.")
    if user.disabled:
        # Said only to whoever knows the password: nobody else learns the account exists.
        raise AccountDisabled(DISABLED_DETAIL)
    # The password checked must still be the account's as the session opens: a change or a
    # reset made meanwhile ends every session but its own, and this one must not escape it.
    if rehash:
        still = await repository.replace_password_hash(
            session, user, await res.hasher.hash(data.password)
        )
    else:
        still = await repository.hold_password(session, user)
    if not still:
        raise InvalidCredentials("The email or password is incorrect.")
    await res.limiter.clear(counters.client[0], *counters.client[1])
    tokens = await open_session(session, res, user, user_agent=user_agent)
    # A device keeps its proof; one that had none (or one for another account) gets one.
    proof = device if trusted is not None and device else device_token(key, user.id)
    return replace(tokens, device_token=proof)


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
        csrf_token=csrf_token_for(res.settings.signing_key, auth_session.id),
    )


async def refresh(
    session: AsyncSession, res: Resources, token: str, *, csrf: str | None = None
) -> IssuedTokens:
    """Rotate a refresh token; a spent one presented again revokes its whole session family,
    unless it was spent moments ago (two tabs refreshing at once): then the same new pair.

    `csrf`: for a browser's cookie, the CSRF token it sent, which must be the session's."""
    now = res.clock.now()
    record = await repository.refresh_token_by_hash(session, hash_token(token))
    if record is None:
        raise InvalidToken("The refresh token is invalid.")
    auth_session = await repository.auth_session(session, record.session_id)
    if auth_session is None or auth_session.revoked_at is not None:
        if auth_session is not None and auth_session.revoked_reason == DISABLED:
            owner = await repository.user_by_id(session, auth_session.user_id)
            if owner is not None and owner.disabled:
                raise AccountDisabled(DISABLED_DETAIL)
        raise InvalidToken("This session has ended; log in again.")
    if csrf is not None:
        check_session_csrf(res, auth_session.id, csrf)
    if record.spent_at is not None:
        grace = res.settings.refresh_grace_s
        if now - record.spent_at <= timedelta(seconds=grace):
            pair = await _rotated_pair(res, token)
            if pair is not None:
                return pair
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
    if user.disabled:  # a session opened while the account was being disabled
        raise AccountDisabled(DISABLED_DETAIL)
    if not await repository.spend_refresh_token(session, record, now=now):
        # Another request (a second tab) spent it a moment ago: the pair it was rotated into.
        pair = await _rotated_pair(res, token)
        if pair is not None:
            return pair
        raise Conflict(
            "This session is being renewed by another request; try again.",
            code="RefreshInProgress",
        )
    pair = await _issue_pair(session, res, user, auth_session, now)
    await _remember_rotation(res, token, pair)
    return pair


def check_session_csrf(res: Resources, session_id: object, sent: str) -> None:
    """The CSRF token a browser sent must be the one bound to its session."""
    if not same_token(sent, csrf_token_for(res.settings.signing_key, str(session_id))):
        raise CSRFFailed(
            "This request needs the X-CSRF-Token header matching the koan_csrf cookie."
        )


# The pair a refresh token was rotated into is kept for the grace period in the shared cache
# (any worker may serve the second tab), sealed with a key derived from the spent token: only
# its holder can open it, so the cache never holds a usable token.
def refresh_grace_key(token: str) -> str:
    return "auth:refresh-grace:" + hashlib.sha256(b"grace-id\x1f" + token.encode()).hexdigest()


def _seal(token: str, data: bytes) -> bytes:
    pad = hashlib.shake_256(b"grace-pad\x1f" + token.encode()).digest(len(data))
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))


async def _remember_rotation(res: Resources, token: str, pair: IssuedTokens) -> None:
    if res.settings.refresh_grace_s <= 0:
        return
    data = json.dumps(
        [pair.access_token, pair.refresh_token, pair.expires_in, pair.session_id]
    ).encode()
    try:
        await res.cache.set(
            refresh_grace_key(token), _seal(token, data).hex(), ttl_s=res.settings.refresh_grace_s
        )
    except CACHE_DOWN:
        log.warning("auth.refresh_grace_unavailable")


async def _rotated_pair(res: Resources, token: str) -> IssuedTokens | None:
    try:
        sealed = await res.cache.get(refresh_grace_key(token))
    except CACHE_DOWN:
        log.warning("auth.refresh_grace_unavailable")
        return None
    if sealed is None:
        return None
    access, refresh_token, expires_in, session_id = json.loads(_seal(token, bytes.fromhex(sealed)))
    return IssuedTokens(
        access_token=access,
        refresh_token=refresh_token,
        expires_in=expires_in,
        session_id=session_id,
        csrf_token=csrf_token_for(res.settings.signing_key, session_id),
    )


async def session_of_refresh_token(session: AsyncSession, token: str | None) -> AuthSession | None:
    """The live session a refresh token was issued to (spent or not), or None."""
    if not token:
        return None
    record = await repository.refresh_token_by_hash(session, hash_token(token))
    if record is None:
        return None
    found = await repository.auth_session(session, record.session_id)
    return found if found is not None and found.revoked_at is None else None


async def logout(session: AsyncSession, res: Resources, auth_session: AuthSession) -> None:
    auth_session.revoked_at = res.clock.now()
    auth_session.revoked_reason = "logout"
    await session.flush()


async def end_sessions_of_disabled(session: AsyncSession, res: Resources, user: User) -> None:
    """End every session of an account being disabled, and its outstanding reset links."""
    now = res.clock.now()
    await repository.revoke_sessions(session, user.id, now=now, reason=DISABLED)
    await repository.retire_email_tokens(session, user.id, RESET, now=now)


async def last_seen(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """When each account last logged in or renewed its session (an active one renews at least
    every access token's lifetime); accounts never seen are left out."""
    return await repository.last_seen(session, user_ids)


async def logout_all(session: AsyncSession, res: Resources, user: User) -> None:
    """End every session; outstanding reset links stop working too."""
    now = res.clock.now()
    await repository.revoke_sessions(session, user.id, now=now, reason="logout_all")
    await repository.retire_email_tokens(session, user.id, RESET, now=now)


async def request_password_reset(
    session: AsyncSession, res: Resources, email: str, mail: MailQueue
) -> None:
    """Queue a reset link for this address; whether an account uses it is looked up after the
    response, so the request does the same work (and takes as long) either way."""
    await res.limiter.hit(
        res.settings.password_reset_limit,
        "password-reset",
        email,
        detail="Too many reset requests for this address; try again later.",
    )
    mail.compose(ResetLink(res, email))


@dataclass(frozen=True)
class ResetLink:
    """After the response: issue a reset token and write its mail, if an enabled account uses
    `email` (a disabled one is sent nothing, and its requester is answered as for any address)."""

    res: Resources
    email: str

    async def __call__(self, session: AsyncSession) -> list[Mail]:
        res = self.res
        user = await repository.user_by_email(session, self.email)
        if user is None or user.disabled:
            return []
        token = await _issue_email_token(session, res, user, RESET, res.settings.reset_token_ttl_s)
        subject, body = messages.password_reset(
            name=user.name,
            base_url=res.settings.base_url,
            token=token,
            ttl_s=res.settings.reset_token_ttl_s,
        )
        return [Mail(to=user.email, subject=subject, body=body)]


async def confirm_password_reset(
    session: AsyncSession, res: Resources, token: str, new_password: str
) -> None:
    record = await repository.email_token_by_hash(session, hash_token(token))
    email = None
    if record is not None:
        owner = await repository.user_by_id(session, record.user_id)
        # An account disabled since the link was sent: the link is refused like any dead one.
        if owner is not None and owner.disabled:
            raise BadRequest(LINK_INVALID, code="InvalidToken")
        email = owner.email if owner else None
    check_password(new_password, email=email, field="new_password")
    user = await _spend_email_token(session, res, token, RESET)
    now = res.clock.now()
    user.password_hash = await res.hasher.hash(new_password)
    # Whoever can read the mailbox owns the address.
    if user.email_verified_at is None:
        user.email_verified_at = now
    await session.flush()  # before the sessions end, as for a change (see `change_password`)
    await repository.revoke_sessions(session, user.id, now=now, reason="password_reset")
    await repository.retire_email_tokens(session, user.id, RESET, now=now)
    await session.flush()


PASSWORD_CHECKS_REFUSED = "Too many wrong passwords; wait before trying again."


async def confirm_password(
    res: Resources, user: User, current_session: AuthSession, password: str, *, wrong: str
) -> None:
    """The account's password, asked again before a change only its owner may make.

    Wrong answers count per session, under the limit of failed logins from one client:
    otherwise whoever holds a session (a browser left signed in, a stolen token) could guess
    the password, which outlives every session, at full speed instead of a login's pace. Per
    session, so such a holder cannot lock the owner out of changing it."""
    rule = res.settings.login_limit_per_account_client
    ids = ("password-check", str(current_session.id))
    await res.limiter.check(rule, *ids, detail=PASSWORD_CHECKS_REFUSED)
    if not await res.hasher.verify(user.password_hash, password):
        await res.limiter.hit(rule, *ids, detail=PASSWORD_CHECKS_REFUSED)
        raise InvalidCredentials(wrong, status_code=400)
    await res.limiter.clear(rule, *ids)


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
    await confirm_password(
        res, user, current_session, current_password, wrong="The current password is incorrect."
    )
    check_password(new_password, email=user.email, field="new_password")
    user.password_hash = await res.hasher.hash(new_password)
    # Written before the other sessions are ended: a login checking the old password
    # meanwhile then waits for this change and is refused (`repository.hold_password`).
    await session.flush()
    now = res.clock.now()
    await repository.revoke_sessions(
        session, user.id, now=now, reason="password_change", except_session=current_session.id
    )
    # A reset link mailed before the change must not undo it.
    await repository.retire_email_tokens(session, user.id, RESET, now=now)
    await session.flush()


# Refuses (raises) when an account may not be deleted yet; a domain above auth says why
# (a class left without an instructor): the app wires it in.
AccountCloseCheck = Callable[[AsyncSession, User], Awaitable[None]]


async def delete_account(
    session: AsyncSession,
    res: Resources,
    user: User,
    current_session: AuthSession,
    password: str,
    *,
    check: AccountCloseCheck | None = None,
) -> None:
    await confirm_password(res, user, current_session, password, wrong="The password is incorrect.")
    if check is not None:
        await check(session, user)
    await session.delete(user)
    await session.flush()
