"""The text of every mail Koan sends."""

from __future__ import annotations

from urllib.parse import quote

from koan.clock import lasting


def _link(base_url: str, path: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{path}?token={quote(token)}"


def verification(*, name: str, base_url: str, token: str, ttl_s: int) -> tuple[str, str]:
    link = _link(base_url, "/verify-email", token)
    return (
        "Verify your email for Koan",
        f"Hello {name},\n\nWelcome to Koan! Confirm your email address by opening this link:\n\n"
        f"{link}\n\nThe link works once and expires in {lasting(ttl_s)}. If you did not sign "
        "up, ignore this mail.\n",
    )


def already_registered(*, name: str, base_url: str) -> tuple[str, str]:
    return (
        "Someone tried to sign up to Koan with your email",
        f"Hello {name},\n\nSomeone (perhaps you) tried to create a Koan account with this email "
        "address, but you already have one. To get back in, log in or reset your password at\n\n"
        f"{base_url.rstrip('/')}/forgot-password\n\nIf it was not you, you can ignore this mail.\n",
    )


def password_reset(*, name: str, base_url: str, token: str, ttl_s: int) -> tuple[str, str]:
    link = _link(base_url, "/reset-password", token)
    return (
        "Reset your Koan password",
        f"Hello {name},\n\nSomeone asked to reset the password of your Koan account. To choose a "
        f"new one, open this link:\n\n{link}\n\nThe link works once and expires in "
        f"{lasting(ttl_s)}. If you did not ask for this, ignore this mail: your password is "
        "unchanged.\n",
    )
