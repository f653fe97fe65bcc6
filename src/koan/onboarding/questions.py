"""The onboarding interview: its questions and the vocabulary its answers use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LANGUAGES = ("python", "javascript")
EXPERIENCE_LEVELS = ("beginner", "intermediate", "advanced")
LEARNING_STYLES = ("examples", "challenges", "explanations", "mixed")
INTEREST_TAGS = (
    "web",
    "data",
    "games",
    "automation",
    "algorithms",
    "interviews",
    "science",
    "finance",
    "music",
    "text",
    "math",
    "security",
)
MAX_INTERESTS = 20
MIN_MINUTES, MAX_MINUTES = 5, 240


@dataclass(frozen=True)
class Question:
    id: str
    prompt: str
    kind: Literal["choice", "tags", "text", "number", "timezone"]
    required: bool
    options: tuple[str, ...] = ()
    help: str = ""
    limits: dict[str, int] = field(default_factory=dict)


QUESTIONS: tuple[Question, ...] = (
    Question(
        "language",
        "Which language do you want to practise?",
        "choice",
        True,
        LANGUAGES,
        "You can change this later in your profile.",
    ),
    Question(
        "experience",
        "How much programming have you done?",
        "choice",
        True,
        EXPERIENCE_LEVELS,
        "Beginner: new to programming. Intermediate: you have written small programs. "
        "Advanced: you program regularly.",
    ),
    Question(
        "goals",
        "What do you want to be able to do?",
        "text",
        True,
        help="A sentence or two, e.g. 'pass a job interview' or 'automate my spreadsheets'.",
        limits={"max_length": 1000},
    ),
    Question(
        "interests",
        "What topics interest you?",
        "tags",
        False,
        INTEREST_TAGS,
        "Pick from the list or add your own tags; exercises on these come first.",
        {"max_items": MAX_INTERESTS},
    ),
    Question(
        "learning_style",
        "How do you like to learn?",
        "choice",
        False,
        LEARNING_STYLES,
    ),
    Question(
        "minutes_per_day",
        "How many minutes a day can you practise?",
        "number",
        True,
        limits={"min": MIN_MINUTES, "max": MAX_MINUTES},
    ),
    Question(
        "timezone",
        "Which time zone are you in?",
        "timezone",
        True,
        help="Used to count your daily streak at your midnight, e.g. 'Europe/Paris'.",
    ),
)

REQUIRED = tuple(q.id for q in QUESTIONS if q.required)
