"""Bodies of the /users routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, StrictBool, StrictInt

from koan.common.schemas import Input, PersonName, Schema, TimeZoneName


class Preferences(Input):
    theme: Literal["system", "light", "dark"] = "system"
    editor_font_size: StrictInt = Field(default=14, ge=10, le=28)
    email_reminders: StrictBool = False


class UserOut(Schema):
    id: uuid.UUID
    email: str
    name: str
    role: str
    email_verified: bool
    timezone: str
    preferences: Preferences
    onboarding_completed: bool
    created_at: datetime


class UserUpdate(Input):
    name: PersonName | None = None
    timezone: TimeZoneName | None = None
    preferences: Preferences | None = None


class PasswordChange(Input):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class AccountDeletion(Input):
    password: str = Field(min_length=1, max_length=1024)


class AccountOut(Schema):
    """An account as administrators see it."""

    id: uuid.UUID
    email: str
    name: str
    role: str
    email_verified: bool
    disabled: bool
    disabled_at: datetime | None
    created_at: datetime
    # The latest login or session renewal (null: never logged in).
    last_seen_at: datetime | None


class AccountPage(Schema):
    items: list[AccountOut]
    next_cursor: str | None
    total: int
