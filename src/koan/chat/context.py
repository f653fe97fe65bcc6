"""What the tutor is told: the learner's profile and the exercise with their latest attempt."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from koan.exercises import repository as exercises
from koan.llm import FailingTest, LearnerBrief, TutorContext, is_leak
from koan.models import Exercise, User
from koan.models import LearnerProfile as ProfileRow
from koan.onboarding import service as profiles


async def learner_profile(
    session: AsyncSession, user: User, row: ProfileRow | None = None
) -> LearnerBrief:
    """The onboarding answers the system prompt uses (name, experience, goals, language)."""
    profile = row if row is not None else await profiles.profile_of(session, user)
    return LearnerBrief(
        display_name=user.name,
        experience=profile.experience or "beginner",
        goals=(profile.goals.strip(),) if profile.goals.strip() else (),
        preferred_language=profile.language,
    )


@dataclass(frozen=True)
class LeakGuard:
    """What a reply about one exercise must not give away, and what to say instead."""

    solution: str
    starter: str
    language: str
    threshold: float
    hints_left: int
    failing: tuple[FailingTest, ...] = ()

    def leaks(self, reply: str) -> bool:
        """Whether the reply reproduces enough of the reference solution to withhold it."""
        return is_leak(
            reply, self.solution, self.language, self.threshold, starter=self.starter or None
        )


async def exercise_context(
    session: AsyncSession, user: User, exercise: Exercise, *, threshold: float
) -> tuple[TutorContext, LeakGuard]:
    """The statement, the hints seen so far, the latest code and its failing tests."""
    submission = await exercises.latest_submission(session, user.id, exercise.id)
    assignment = await exercises.latest_assignment(session, user.id, exercise.id)
    hints_used = assignment.hints_used if assignment is not None else 0
    failing: list[tuple[str, str]] = []
    if submission is not None:
        for test in submission.tests or []:
            if test.get("status") != "passed":
                failing.append((str(test.get("name", "test")), str(test.get("message", ""))))
        if not failing and submission.status not in ("passed", "pending") and submission.stderr:
            # A crash before any test ran (syntax error, time-out) still deserves a pointer.
            failing.append((submission.status, submission.stderr))
    context = TutorContext.build(
        exercise_statement=exercise.statement,
        hints=list(exercise.hints),
        hints_used=hints_used,
        latest_code=submission.code if submission is not None else None,
        failing_tests=failing,
        language=exercise.language,
        title=exercise.title,
    )
    guard = LeakGuard(
        solution=exercise.solution,
        starter=exercise.starter_code,
        language=exercise.language,
        threshold=threshold,
        hints_left=max(0, len(exercise.hints) - hints_used),
        failing=context.failing_tests,
    )
    return context, guard


STRICTER = """\
IMPORTANT: your previous draft was withheld because it contained code from the solution. \
Write no code at all this time, not even a fragment of the function. Explain in words and \
ask one guiding question."""


def hint_style_answer(guard: LeakGuard) -> str:
    """What the learner gets when every draft gave the solution away: a nudge, no code."""
    parts = [
        "I started writing something that would have handed you the solution, and that would "
        "spoil the exercise, so let's take a step back."
    ]
    if guard.failing:
        test = guard.failing[0]
        line = next((ln.strip() for ln in test.message.splitlines() if ln.strip()), "")
        if line:
            parts.append(f"The test `{test.name}` says:\n\n    {line[:300]}")
        parts.append(
            f"What did `{test.name}` expect, and at which line does your code start doing "
            "something different?"
        )
    else:
        parts.append(
            "What is the smallest input whose answer you can work out by hand, and what would "
            "each line of your code do with it?"
        )
    if guard.hints_left:
        parts.append("If you are stuck, the next hint of this exercise is waiting for you.")
    return "\n\n".join(parts)
