"""Koan's secrets in one place: password hashing and policy, access tokens (JWT), opaque tokens
stored only as hashes, and the keyed tokens the browser holds (CSRF, trusted device)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from koan import turns
from koan.config import Settings
from koan.errors import InvalidToken

# --- passwords --------------------------------------------------------------------------------

MIN_LENGTH = 12
MAX_LENGTH = 256


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list of passwords too common to allow (lower-cased)."""
    text = resources.files("koan.data").joinpath("common-passwords.txt").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return frozenset(line.lower() for line in lines if line and not line.startswith("#"))


def normalize_password(password: str) -> str:
    """The password as it is checked and hashed (NFKC): the same characters typed on another
    keyboard or system, composed (é) or decomposed (e + ´), full-width or not, are the same
    password."""
    return unicodedata.normalize("NFKC", password)


def password_problems(password: str, *, email: str | None = None) -> list[str]:
    """Every reason a password is unacceptable (none: it is fine), so a form can show them all
    at once. Length and commonness only: no composition rules."""
    problems: list[str] = []
    password = normalize_password(password)
    if len(password) < MIN_LENGTH:
        problems.append(f"Password must be at least {MIN_LENGTH} characters long.")
    elif len(password) > MAX_LENGTH:
        problems.append(f"Password must be at most {MAX_LENGTH} characters long.")
    lowered = password.lower()
    if lowered in common_passwords() or len(set(lowered)) <= 2:
        problems.append("This password is too common; choose something harder to guess.")
    if email and lowered == email.lower():
        problems.append("Password must not be your email address.")
    return problems


def password_problem(password: str, *, email: str | None = None) -> str | None:
    """Why a password is unacceptable, every reason in one message, or None."""
    return " ".join(password_problems(password, email=email)) or None


class Hasher:
    """Argon2id with costs from settings, of the normalized password (`normalize_password`);
    hashing runs in a thread, so the loop keeps serving."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_time_cost,
            memory_cost=settings.password_memory_kib,
            parallelism=settings.password_parallelism,
        )
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        turns.give_back()  # the hash runs off the event loop: let the next request in meanwhile
        return await asyncio.to_thread(self._hasher.hash, normalize_password(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        return (await self._match(password_hash, password)) is not None

    async def verify_and_update(self, password_hash: str, password: str) -> tuple[bool, bool]:
        """Whether `password` matches, and whether the hash should be made again: its costs
        changed, or it was made of the password as typed, before passwords were normalized."""
        matched = await self._match(password_hash, password)
        if matched is None:
            return False, False
        return True, matched != normalize_password(password) or self.needs_rehash(password_hash)

    async def _match(self, password_hash: str, password: str) -> str | None:
        """The form of `password` the hash was made of (normalized, else as typed), or None."""
        normalized = normalize_password(password)
        candidates = (normalized,) if normalized == password else (normalized, password)

        def _verify() -> str | None:
            for candidate in candidates:
                try:
                    if self._hasher.verify(password_hash, candidate):
                        return candidate
                except (VerificationError, InvalidHashError):
                    continue
            return None

        turns.give_back()
        return await asyncio.to_thread(_verify)

    async def verify_against_nothing(self, password: str) -> None:
        """Spend the time of a real check, so a missing account is not told apart by timing."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


# --- access tokens and opaque tokens ----------------------------------------------------------

_ALGORITHM = "HS256"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def encode_access_token(
    *, key: str, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime, ttl_s: int
) -> str:
    payload = {
        "sub": str(user_id),
        "sid": str(session_id),
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
    }
    return jwt.encode(payload, key, algorithm=_ALGORITHM)


def decode_access_token(token: str, *, key: str, now: datetime) -> AccessClaims:
    """Verify signature and expiry against Koan's clock (not the process clock)."""
    try:
        user_id, session_id, expires = _verified_claims(token, key)
        expires_at = datetime.fromtimestamp(expires, tz=now.tzinfo)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, OverflowError, OSError) as exc:
        raise InvalidToken("The access token is invalid.") from exc
    if expires_at <= now:
        raise InvalidToken("The access token has expired; refresh it or log in again.")
    return AccessClaims(user_id=user_id, session_id=session_id, expires_at=expires_at)


# A learner's token is checked on every request: a token whose signature verified once under
# a key verifies again, so the result is kept (a failure raises, and is never kept). Expiry is
# still checked on every call, and revocation by the session lookup that follows.
@lru_cache(maxsize=4096)
def _verified_claims(token: str, key: str) -> tuple[uuid.UUID, uuid.UUID, int]:
    payload = jwt.decode(
        token,
        key,
        algorithms=[_ALGORITHM],
        # Times are checked against Koan's clock, not the process clock.
        options={
            "verify_exp": False,
            "verify_iat": False,
            "verify_nbf": False,
            "require": ["sub", "sid", "exp", "typ"],
        },
    )
    if payload["typ"] != "access":
        raise InvalidToken("This is not an access token.")
    return uuid.UUID(str(payload["sub"])), uuid.UUID(str(payload["sid"])), int(payload["exp"])


# --- keyed tokens the browser holds -----------------------------------------------------------


def _mac(key: str, purpose: str, *parts: str) -> str:
    message = "\x1f".join((purpose, *parts)).encode("utf-8", "surrogatepass")
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_token_for(key: str, session_id: uuid.UUID | str) -> str:
    """The double-submit token of a signed-in session: keyed by the server's secret, so a
    cookie planted from a sibling subdomain cannot match it without knowing the session."""
    return _mac(key, "csrf", str(session_id))


def same_token(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def device_token(key: str, user_id: uuid.UUID) -> str:
    """A new device's proof that it logged in to this account (the koan_device cookie)."""
    device = secrets.token_urlsafe(12)
    return f"{device}.{_mac(key, 'device', str(user_id), device)}"


def trusted_device(key: str, user_id: uuid.UUID, token: str | None) -> str | None:
    """The device id in `token` when it proves an earlier login to this account, else None."""
    device, _, mac = (token or "").partition(".")
    if not device or not mac or len(token or "") > 200:
        return None
    return device if same_token(mac, _mac(key, "device", str(user_id), device)) else None
