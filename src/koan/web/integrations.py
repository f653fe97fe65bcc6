"""Domains the pages use when they are present (progress, tutor chat), and grading.

Pages degrade gracefully: while a domain is missing from this build, its panels say so
instead of failing.
"""

from __future__ import annotations

import importlib
from decimal import Decimal
from types import ModuleType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from koan.exercises import service as exercises
from koan.exercises.schemas import SubmissionOut
from koan.grading import service as grading
from koan.models import Exercise, User
from koan.progress.schemas import AchievementsOut, ProgressOut
from koan.resources import Resources


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def progress_module() -> ModuleType | None:
    module = _optional("koan.progress.service")
    return module if module is not None and hasattr(module, "overview") else None


def chat_service() -> ModuleType | None:
    module = _optional("koan.chat.service")
    wanted = ("conversations_page", "owned", "detail")
    return module if module is not None and all(hasattr(module, n) for n in wanted) else None


def chat_available() -> bool:
    return chat_service() is not None


async def progress_overview(
    session: AsyncSession, res: Resources, user: User
) -> ProgressOut | None:
    module = progress_module()
    if module is None:
        return None
    result: ProgressOut = await module.overview(session, res, user)
    return result


async def achievements(session: AsyncSession, res: Resources, user: User) -> AchievementsOut | None:
    module = progress_module()
    if module is None or not hasattr(module, "achievement_list"):
        return None
    result: AchievementsOut = await module.achievement_list(session, res, user)
    return result


def achievement_titles(codes: list[str]) -> list[dict[str, str]]:
    """Titles and descriptions for achievement codes (codes stay when the catalogue lacks one)."""
    module = _optional("koan.progress.achievements")
    by_code: dict[str, Any] = getattr(module, "BY_CODE", {}) if module else {}
    out = []
    for code in codes:
        found = by_code.get(code)
        out.append(
            {
                "code": code,
                "title": found.title if found else code,
                "description": found.description if found else "",
            }
        )
    return out


async def submit(
    session: AsyncSession, res: Resources, user: User, exercise: Exercise, code: str
) -> SubmissionOut:
    """What POST /api/v1/exercises/{id}/submissions does: store, commit, grade, report."""
    recorded = await exercises.record_submission(session, res, user, exercise, code)
    # Committed now, so a crash while grading cannot lose what the learner wrote.
    await session.commit()
    graded = await grading.grade(session, res, recorded, user)
    return grading.submission_out(graded.submission, graded.achievements_unlocked)


async def my_usage(session: AsyncSession, res: Resources, user: User) -> Any | None:
    """Today's tutor spending against the learner's budget (UsageOut), when usage is tracked."""
    reports = _optional("koan.usage.reports")
    if reports is None or not hasattr(reports, "my_usage"):
        return None
    return await reports.my_usage(session, res, user)


async def llm_usage_by_day(session: AsyncSession, res: Resources) -> list[dict[str, Any]] | None:
    """Calls, tokens and cost per UTC day over the last 30 days (None while usage is untracked)."""
    reports = _optional("koan.usage.reports")
    if reports is None or not hasattr(reports, "usage_page"):
        return None
    page = await reports.usage_page(
        session, res, since=None, until=None, user_id=None, limit=500, cursor=None
    )
    days: dict[Any, dict[str, Any]] = {}
    for row in page.items:
        day = days.setdefault(
            row.day,
            {"day": row.day, "calls": 0, "learners": 0, "tokens": 0, "cost": Decimal(0)},
        )
        day["calls"] += row.calls
        day["learners"] += 1
        day["tokens"] += row.input_tokens + row.output_tokens
        day["cost"] += row.cost_usd
    return sorted(days.values(), key=lambda d: d["day"], reverse=True)
