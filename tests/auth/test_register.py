"""Registration: validation, duplicates that reveal nothing, password policy."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth import repository
from koan.models import User
from koan.resources import Resources
from koan.security import password_problem
from tests.fixtures.factories import create_user, unique_email
from tests.fixtures.smtp import SMTPServer

GOOD = "a sturdy passphrase 42"


async def register(client: httpx.AsyncClient, **body: object) -> httpx.Response:
    payload = {"email": unique_email(), "password": GOOD, "name": "Ada", **body}
    return await client.post("/api/v1/auth/register", json=payload)


async def test_duplicate_email_answers_like_a_new_one_and_mails_the_owner(
    client: httpx.AsyncClient, session: object, resources: Resources, smtp_server: SMTPServer
) -> None:
    owner = await create_user(session, resources, name="Owner")  # type: ignore[arg-type]
    fresh = await register(client)
    duplicate = await register(client, email=owner.email.upper())
    assert duplicate.status_code == fresh.status_code == 201
    assert set(duplicate.json()) == set(fresh.json())
    assert duplicate.json()["message"] == fresh.json()["message"]
    mail = smtp_server.last_to(owner.email)
    assert "already" in mail.body
    assert "/verify-email" not in mail.body


async def test_email_is_normalized_and_unique_case_insensitively(
    client: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    email = unique_email()
    r = await register(client, email=f"  {email.upper()} ")
    assert r.status_code == 201
    assert r.json()["email"] == email
    await register(client, email=email.title())
    # One account: the second attempt produced the "already registered" mail, not a token.
    mails = smtp_server.mails_to(email)
    assert len(mails) == 2
    assert sum("/verify-email" in m.body for m in mails) == 1


async def test_an_address_registered_meanwhile_by_another_request_answers_like_a_new_one(
    client: httpx.AsyncClient,
    session: object,
    resources: Resources,
    smtp_server: SMTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two sign-ups for one address at once: the one whose account the unique index refuses
    answers as for a taken address, so a race does not tell a free address from a taken one."""
    owner = await create_user(session, resources, name="Owner")  # type: ignore[arg-type]
    real_lookup = repository.user_by_email
    looked_up = 0

    async def lookup_before_the_other_commit(db: AsyncSession, email: str) -> User | None:
        nonlocal looked_up
        looked_up += 1
        return None if looked_up == 1 else await real_lookup(db, email)

    monkeypatch.setattr(repository, "user_by_email", lookup_before_the_other_commit)
    r = await register(client, email=owner.email)
    assert r.status_code == 201, r.text
    assert "already" in smtp_server.last_to(owner.email).body


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pass1", "at least 12"),
        ("x" * 257, "at most 256"),
        ("password1234", "too common"),
        ("QWERTYUIOP123", "too common"),
        ("aaaaaaaaaaaaaaaa", "too common"),
        # Full-width letters and digits are the same password once normalized.
        ("ｐａｓｓｗｏｒｄ１２３４", "too common"),
    ],
)
async def test_weak_passwords_are_refused(
    client: httpx.AsyncClient, password: str, reason: str
) -> None:
    r = await register(client, password=password)
    assert r.status_code == 422
    assert r.json()["error"] == "WeakPassword"
    assert reason in r.json()["detail"]


def test_password_policy_has_no_composition_rules() -> None:
    assert password_problem("all lower case words here") is None
    assert password_problem("ünïcödé pässwörd 🐍") is None
    assert password_problem("x" * 256) is not None  # one repeated character is trivially guessed
    assert password_problem("abcdefghijk" + "z" * 245) is None
    assert password_problem("me@example.com12", email="me@example.com12") is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": "bad\x00name"}, "name"),
        ({"name": "evil\u202eeman"}, "name"),
        ({"name": 42}, "name"),
        ({"is_admin": True}, "is_admin"),
        ({"role": "admin"}, "role"),
    ],
)
async def test_bad_registration_input_is_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    r = await register(client, **body)
    assert r.status_code == 422, r.text
    data = r.json()
    assert data["error"] == "ValidationError"
    assert field in data["detail"]
    assert any(f["field"] == field for f in data["fields"])


async def test_missing_fields_and_malformed_json(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/register", json={"email": unique_email()})
    assert r.status_code == 422
    assert "'password' is required" in r.json()["detail"]
    r = await client.post(
        "/api/v1/auth/register",
        content=b'{"email": "x@example.com", ',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == "MalformedJSON"
    r = await client.post("/api/v1/auth/register", json=["not", "an", "object"])
    assert r.status_code == 422


async def test_registration_is_rate_limited_per_address(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    resources.settings.register_limit_per_address = "2/hour"
    assert (await register(client)).status_code == 201
    assert (await register(client)).status_code == 201
    r = await register(client)
    assert r.status_code == 429
    assert r.json()["error"] == "RateLimited"
    assert int(r.headers["Retry-After"]) > 0


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/auth/register",
        content=b'{"name": "' + b"a" * (2 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"] == "PayloadTooLarge"
