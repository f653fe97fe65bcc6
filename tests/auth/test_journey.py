"""The whole account journey through HTTP, reading tokens from the mails the SMTP server got."""

from __future__ import annotations

import httpx

from tests.fixtures.factories import unique_email
from tests.fixtures.smtp import SMTPServer

PASSWORD = "a sturdy passphrase 42"


async def test_register_verify_login_onboard_refresh_logout_reset_delete(
    client: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    email = unique_email()
    r = await client.post(
        "/api/v1/auth/register", json={"email": email.upper(), "password": PASSWORD, "name": "Ada"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["email"] == email

    # Unverified users may log in, but not learn yet.
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    r = await client.get("/api/v1/onboarding/questions", headers=headers)
    assert r.status_code == 403
    assert r.json()["error"] == "EmailNotVerified"
    me = (await client.get("/api/v1/users/me", headers=headers)).json()
    assert me["email_verified"] is False

    token = smtp_server.last_to(email).link_token("/verify-email")
    r = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/users/me", headers=headers)).json()["email_verified"]

    questions = (await client.get("/api/v1/onboarding/questions", headers=headers)).json()
    assert [q["id"] for q in questions["questions"]][:2] == ["language", "experience"]
    r = await client.put(
        "/api/v1/onboarding/answers",
        headers=headers,
        json={"language": "python", "experience": "beginner"},
    )
    assert r.json()["missing_required"] == ["goals", "minutes_per_day", "timezone"]
    r = await client.put(
        "/api/v1/onboarding/answers",
        headers=headers,
        json={"goals": "Automate reports", "minutes_per_day": 15, "timezone": "Asia/Tokyo"},
    )
    assert r.json()["missing_required"] == []
    r = await client.post("/api/v1/onboarding/complete", headers=headers)
    assert r.status_code == 200
    assert r.json()["completed"] is True
    profile = (await client.get("/api/v1/users/me/profile", headers=headers)).json()
    assert profile["language"] == "python"
    assert profile["minutes_per_day"] == 15
    assert (await client.get("/api/v1/users/me", headers=headers)).json()[
        "timezone"
    ] == "Asia/Tokyo"

    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    r = await client.post("/api/v1/auth/logout", headers=headers)
    assert r.status_code == 200
    r = await client.get("/api/v1/users/me", headers=headers)
    assert r.status_code == 401

    r = await client.post("/api/v1/auth/password-reset", json={"email": email})
    assert r.status_code == 202
    reset = smtp_server.last_to(email).link_token("/reset-password")
    new_password = "another sturdy passphrase"
    r = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": reset, "new_password": new_password}
    )
    assert r.status_code == 200, r.text
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 401
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": new_password})
    assert r.status_code == 200
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    r = await client.request(
        "DELETE", "/api/v1/users/me", headers=headers, json={"password": new_password}
    )
    assert r.status_code == 200, r.text
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": new_password})
    assert r.status_code == 401
