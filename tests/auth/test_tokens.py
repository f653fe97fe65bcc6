"""Access token checks: signature, type and expiry hold on every call, cached or not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from koan import security
from koan.errors import InvalidToken
from koan.security import decode_access_token, encode_access_token

KEY = "k" * 48
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def token(key: str = KEY, **overrides: object) -> str:
    issued = encode_access_token(
        key=key, user_id=uuid.uuid4(), session_id=uuid.uuid4(), now=NOW, ttl_s=900
    )
    if not overrides:
        return issued
    claims = jwt.decode(issued, key, algorithms=["HS256"], options={"verify_exp": False})
    return jwt.encode({**claims, **overrides}, key, algorithm="HS256")


def test_a_verified_token_is_refused_under_another_key() -> None:
    issued = token()
    assert decode_access_token(issued, key=KEY, now=NOW).expires_at == NOW + timedelta(minutes=15)
    with pytest.raises(InvalidToken, match="invalid"):
        decode_access_token(issued, key="other-" + KEY, now=NOW)


def test_expiry_is_checked_on_every_call() -> None:
    issued = token()
    decode_access_token(issued, key=KEY, now=NOW)
    later = NOW + timedelta(minutes=15)
    with pytest.raises(InvalidToken, match="expired"):
        decode_access_token(issued, key=KEY, now=later)
    with pytest.raises(InvalidToken, match="expired"):
        decode_access_token(issued, key=KEY, now=later)


def test_a_tampered_signature_is_refused_after_the_real_one_passed() -> None:
    issued = token()
    decode_access_token(issued, key=KEY, now=NOW)
    head, payload, signature = issued.split(".")
    tampered = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(InvalidToken, match="invalid"):
        decode_access_token(tampered, key=KEY, now=NOW)


def test_other_token_types_are_refused_each_time() -> None:
    refresh = token(typ="refresh")
    for _ in range(2):
        with pytest.raises(InvalidToken, match="not an access token"):
            decode_access_token(refresh, key=KEY, now=NOW)


def test_a_token_is_verified_once_and_then_remembered() -> None:
    issued = token()
    before = security._verified_claims.cache_info()
    first = decode_access_token(issued, key=KEY, now=NOW)
    assert decode_access_token(issued, key=KEY, now=NOW + timedelta(minutes=1)) == first
    after = security._verified_claims.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)


def test_an_expiry_out_of_range_is_an_invalid_token() -> None:
    with pytest.raises(InvalidToken, match="invalid"):
        decode_access_token(token(exp=10**20), key=KEY, now=NOW)
