"""Every ORM model, imported here so Alembic and the mappers see them all."""

from koan.models.auth import AuthSession, EmailToken, RefreshToken
from koan.models.mail import OutboxMail
from koan.models.user import LearnerProfile, User

__all__ = [
    "AuthSession",
    "EmailToken",
    "LearnerProfile",
    "OutboxMail",
    "RefreshToken",
    "User",
]
