"""The administrators' page: users, LLM usage, the exercise bank and the sandbox."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response

from koan.deps import ResourcesDep
from koan.errors import NotFound
from koan.exercises.bank import to_spec
from koan.exercises.validation import validate_spec
from koan.grading.limits import server_limits
from koan.resources import Resources
from koan.usage import reports as usage_reports
from koan.web import repository as queries
from koan.web.pagekit import PageAdmin, WebRoute, WebSession, parse_uuid, render

router = APIRouter(route_class=WebRoute, include_in_schema=False)

USERS_SHOWN = 50
VALIDATION_TTL_S = 30 * 24 * 3600


def _validation_key(exercise_id: object, content_hash: str) -> str:
    # Keyed by content hash: editing an exercise makes its old verdict disappear.
    return f"web:validation:{exercise_id}:{content_hash}"


async def _validation(
    res: Resources, exercise_id: object, content_hash: str
) -> dict[str, Any] | None:
    raw = await res.cache.get(_validation_key(exercise_id, content_hash))
    if raw is None:
        return None
    value: dict[str, Any] = json.loads(raw)
    return value


async def _llm_usage_by_day(session: WebSession, res: Resources) -> list[dict[str, Any]]:
    """Calls, learners, tokens and cost per UTC day, newest first."""
    page = await usage_reports.usage_page(
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


@router.get("/admin")
async def admin_page(
    request: Request, user: PageAdmin, session: WebSession, res: ResourcesDep
) -> Response:
    """Users, LLM usage and cost per day, exercise bank with validation status, sandbox tier."""
    stats = await queries.exercise_stats(session)
    validations = {
        s.exercise.id: await _validation(res, s.exercise.id, s.exercise.content_hash) for s in stats
    }
    tier = res.sandbox.tier
    return render(
        request,
        "admin.html",
        {
            "user_count": await queries.user_count(session),
            "users": await queries.recent_users(session, limit=USERS_SHOWN),
            "stats": stats,
            "validations": validations,
            "sandbox_tier": tier.name.lower() if tier else "unavailable",
            "sandbox_slots": res.sandbox.config.slots,
            "usage": await _llm_usage_by_day(session, res),
        },
    )


@router.post("/admin/exercises/{exercise_id}/validate")
async def validate(
    request: Request, exercise_id: str, user: PageAdmin, session: WebSession, res: ResourcesDep
) -> Response:
    """Run the reference solution and the starter code in the sandbox now."""
    exercise = await queries.exercise(session, parse_uuid(exercise_id))
    if exercise is None:
        raise NotFound("There is no exercise with this id.")
    outcome = await validate_spec(res.sandbox, to_spec(exercise), server_limits(res.settings))
    verdict = {"ok": outcome.ok, "problems": outcome.problems, "at": res.clock.now().isoformat()}
    await res.cache.set(
        _validation_key(exercise.id, exercise.content_hash),
        json.dumps(verdict),
        ttl_s=VALIDATION_TTL_S,
    )
    return render(
        request,
        "partials/validation.html",
        {"exercise": exercise, "validation": verdict},
    )
