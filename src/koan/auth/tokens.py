"""Access tokens (JWT) and opaque random tokens stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import jwt

from koan.errors import InvalidToken

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
