"""The tutor's policy a class sets for its learners' conversations about its exercises:
strictness, the teacher's instructions and words to avoid, the tutor off (at all times, or in
an exam window, when it is off for every conversation of the class's learners), and daily
budgets, per learner and for the whole class, within the server's.

The app hands `tutor_policy_for` to the chat (`app.state.tutor_policy`), which sits below
classes: the chat applies the policy to the prompt, refuses while the tutor is off, and holds
every model call of the conversation against the class's budgets (`tutor_gateway.budgets`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from koan.classes import repository
from koan.classes.service import distinct_words, exam_window_open, local_label
from koan.models import ClassRoom, User
from koan.tutor_gateway import repository as gateway
from koan.tutor_gateway.budgets import Limit, day_bounds

_STRICTNESS_ORDER = {"open": 0, "hints": 1, "socratic": 2}


@dataclass(frozen=True)
class TutorPolicy:
    """What the classes a learner is working for say about the tutor, for one exercise.

    `strictness` None means the server's KOAN_TUTOR_STRICTNESS. When the learner is in several
    classes that set the exercise, the strictest of each setting wins, and every class's
    budgets apply.
    """

    class_names: tuple[str, ...]
    strictness: str | None
    instructions: str
    avoid: tuple[str, ...]
    off: bool
    off_reason: str
    budgets: tuple[Limit, ...] = ()

    def system_prompt(self) -> str:
        """The class's part of the tutor's system prompt (empty when it adds nothing)."""
        parts = []
        # The words to avoid first: the prompt keeps the class's part to a bounded length, and
        # what it cuts is then the end of the free text.
        if self.avoid:
            parts.append(
                "Do not use or mention these words or topics: " + "; ".join(self.avoid) + "."
            )
        if self.instructions:
            parts.append(f"The learner's teacher asks: {self.instructions}")
        return "\n".join(parts)


def tutor_is_off(room: ClassRoom, now: datetime) -> str | None:
    """Why the class's tutor is off at `now`, or None when it is on."""
    if exam_window_open(room, now):
        until = local_label(room.tutor_off_until, room.timezone)  # type: ignore[arg-type]
        reason = room.tutor_off_reason or "Exam in progress"
        return f"{reason}: your teacher has switched the tutor off for {room.name} until {until}."
    if room.tutor_off:
        reason = room.tutor_off_reason or "Your teacher has switched the tutor off"
        return f"{reason} ({room.name})."
    return None


async def class_spend(
    class_id: uuid.UUID,
    user_id: uuid.UUID | None,
    timezone: str,
    session: AsyncSession,
    day: date,
) -> Decimal:
    """What the tutor cost for the class's exercises on `day`, a day in the class's time
    zone: one learner's, or the whole class's. What the class's budgets count."""
    learners = [user_id] if user_id is not None else await repository.learner_ids(session, class_id)
    spend = await gateway.spent_on_exercises(
        session,
        day_bounds(day, timezone),
        learners,
        await repository.exercise_ids(session, class_id),
    )
    return sum(spend.values(), Decimal(0))


def budgets_of(room: ClassRoom, user_id: uuid.UUID) -> list[Limit]:
    """The class's daily budgets a learner's conversation counts against."""
    found = []
    if room.learner_daily_budget_usd is not None:
        found.append(
            Limit(
                scope=f"class:{room.id}:user:{user_id}",
                limit_usd=room.learner_daily_budget_usd,
                whose=f"Your daily AI tutor budget in {room.name}",
                seed=partial(class_spend, room.id, user_id, room.timezone),
                timezone=room.timezone,
            )
        )
    if room.class_daily_cap_usd is not None:
        found.append(
            Limit(
                scope=f"class:{room.id}",
                limit_usd=room.class_daily_cap_usd,
                whose=f"The daily AI tutor budget of the whole class {room.name}",
                seed=partial(class_spend, room.id, None, room.timezone),
                timezone=room.timezone,
            )
        )
    return found


async def tutor_policy_for(
    session: AsyncSession, user: User, exercise_id: uuid.UUID | None, *, now: datetime
) -> TutorPolicy | None:
    """The class controls over a conversation of `user` about `exercise_id` (None: about no
    exercise), or None when no class of theirs has a say (then the server's settings alone
    apply). The classes that set the exercise bring their settings and budgets; a class in an
    exam window switches the tutor off for everything its learners ask, since a conversation
    about another exercise or none could carry the exam's. One query: the budgets' spend is
    kept by the budgets themselves, not read here."""
    ruling = await repository.classes_ruling_tutor(session, user.id, exercise_id, now)
    if not ruling:
        return None
    rooms = [room for room, sets in ruling if sets]
    strictness = [r.tutor_strictness for r in rooms if r.tutor_strictness]
    # A class that does not set the exercise is here for its exam alone.
    reasons = [
        why
        for room, sets in ruling
        if (sets or exam_window_open(room, now)) and (why := tutor_is_off(room, now))
    ]
    return TutorPolicy(
        class_names=tuple(room.name for room, _ in ruling),
        strictness=max(strictness, key=_STRICTNESS_ORDER.__getitem__) if strictness else None,
        instructions="\n".join(r.tutor_instructions for r in rooms if r.tutor_instructions),
        avoid=tuple(distinct_words(w for r in rooms for w in (r.tutor_avoid or []))),
        off=bool(reasons),
        off_reason=" ".join(reasons),
        budgets=tuple(limit for r in rooms for limit in budgets_of(r, user.id)),
    )
