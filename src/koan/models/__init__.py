"""Every ORM model, imported here so Alembic and the mappers see them all."""

from koan.models.auth import AuthSession, EmailToken, RefreshToken
from koan.models.exercise import Assignment, Exercise, ExerciseSkill, Submission
from koan.models.mail import OutboxMail
from koan.models.user import LearnerProfile, User

__all__ = [
    "Assignment",
    "AuthSession",
    "EmailToken",
    "Exercise",
    "ExerciseSkill",
    "LearnerProfile",
    "OutboxMail",
    "RefreshToken",
    "Submission",
    "User",
]
