"""Request and response bodies of the auth routes."""

from __future__ import annotations

from typing import Literal

from pydantic import EmailStr, Field, field_validator

from koan.common.schemas import Input, PersonName, Schema


def normalize_email(value: str) -> str:
    return value.strip().lower()


class EmailInput(Input):
    email: EmailStr = Field(max_length=320)

    @field_validator("email")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_email(value)


class RegisterInput(EmailInput):
    password: str = Field(min_length=1, max_length=1024)
    name: PersonName


class RegisterResult(Schema):
    email: str
    message: str


class LoginInput(EmailInput):
    password: str = Field(min_length=1, max_length=1024)


class TokenPair(Schema):
    access_token: str
    # Left out when the session lives in cookies (a browser, or a refresh by cookie): the
    # httpOnly cookie is the only place a page's script cannot read it from.
    refresh_token: str | None = None
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class RefreshInput(Input):
    refresh_token: str | None = Field(default=None, min_length=1, max_length=200)


class TokenInput(Input):
    token: str = Field(min_length=1, max_length=200)


class PasswordResetConfirm(Input):
    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=1024)


class Message(Schema):
    message: str
