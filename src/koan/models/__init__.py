"""Every ORM model, imported here so Alembic and the mappers see them all."""

from koan.models.auth import AuthSession, EmailToken, RefreshToken
from koan.models.chat import Conversation, ConversationMessage, ShownCode
from koan.models.classes import (
    ClassAssignment,
    ClassAssignmentItem,
    ClassExerciseReview,
    ClassInvite,
    ClassMembership,
    ClassRoom,
)
from koan.models.draft import Draft
from koan.models.exercise import Assignment, AssignmentHint, Exercise, ExerciseSkill, Submission
from koan.models.mail import OutboxMail
from koan.models.progress import (
    Achievement,
    LearnerProgress,
    LearnerSkillRating,
    LevelEvent,
    PracticeEntry,
    UserAchievement,
)
from koan.models.usage import LLMBudget, LLMCall
from koan.models.user import LearnerProfile, User

__all__ = [
    "Achievement",
    "LearnerProgress",
    "LearnerSkillRating",
    "LevelEvent",
    "PracticeEntry",
    "UserAchievement",
    "Assignment",
    "AssignmentHint",
    "AuthSession",
    "ClassAssignment",
    "ClassAssignmentItem",
    "ClassExerciseReview",
    "ClassInvite",
    "ClassMembership",
    "ClassRoom",
    "Conversation",
    "ConversationMessage",
    "Draft",
    "EmailToken",
    "Exercise",
    "ExerciseSkill",
    "LLMBudget",
    "LLMCall",
    "LearnerProfile",
    "OutboxMail",
    "RefreshToken",
    "ShownCode",
    "Submission",
    "User",
]
