"""What the tutor is told: the learner's profile and the exercise with their latest attempt."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koan.config import Settings
from koan.errors import KoanError
from koan.exercises import repository as exercises
from koan.exercises import service as exercise_rules
from koan.grading.limits import effective_limits
from koan.grading.sandbox import Limits, Sandbox
from koan.llm import FailingTest, LearnerBrief, TutorContext, leak_check
from koan.llm.leak_check import (
    CLEAN,
    Attempt,
    ExerciseSecrets,
    KnownPrograms,
    Runner,
    Strictness,
    Trial,
    Verdict,
)
from koan.models import Exercise, User
from koan.models import LearnerProfile as ProfileRow
from koan.onboarding import service as profiles

log = structlog.get_logger(__name__)


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


# A guard run is a quick probe, not a grading: a suggestion that loops is simply not a fix.
# Per candidate program; the whole trial of a reply's candidates stops at GUARD_TRIAL_S.
GUARD_LIMITS = Limits(cpu_s=1.0, wall_s=1.0)
GUARD_TRIAL_S = 4.0


@dataclass(frozen=True)
class LeakGuard:
    """What a reply about one exercise must not give away, and how to prove a fix by running it."""

    secrets: ExerciseSecrets
    hints_left: int
    failing: tuple[FailingTest, ...] = ()
    runner: Runner | None = None
    exercise_id: uuid.UUID | None = None

    @property
    def strictness(self) -> Strictness:
        return self.secrets.strictness

    @property
    def exercise_ids(self) -> tuple[uuid.UUID, ...]:
        """The exercise a reply it let through counts towards."""
        return (self.exercise_id,) if self.exercise_id is not None else ()

    async def check(self, reply: str, tried: set[str] | None = None) -> Verdict:
        """Whether the reply gives the solution or a working fix away (`tried`: programs
        already run clean for an earlier part of the same reply)."""
        return await leak_check.check(reply, self.secrets, self.runner, tried)

    def with_shown(
        self, shown: Sequence[str], elsewhere: Mapping[uuid.UUID, Sequence[str]] | None = None
    ) -> LeakGuard:
        """The guard for a conversation that has already shown these replies (`elsewhere`:
        what the learner was shown about the exercise besides, shown first)."""
        before = (elsewhere or {}).get(self.exercise_id) if self.exercise_id else None
        return replace(self, secrets=replace(self.secrets, shown=(*(before or ()), *shown)))


# The most pieces of code shown before that a reply's check adds up, per exercise: the newest.
SHOWN_LIMIT = 200

# How many of a learner's open exercises a conversation about none is guarded against: the
# newest, which the daily exercise and the work in hand are.
OPEN_WORK_GUARDED = 3


@dataclass(frozen=True)
class WorkGuard:
    """What a reply in a conversation about no exercise must not give away: the solution or a
    working fix of any exercise the learner has open. The statement and the code pasted into
    a general conversation are that exercise's question all the same."""

    guards: tuple[LeakGuard, ...]
    hints_left: int = 0
    failing: tuple[FailingTest, ...] = ()

    @property
    def strictness(self) -> Strictness:
        return max((g.strictness for g in self.guards), key=STRICTER.index)

    async def check(self, reply: str, tried: set[str] | None = None) -> Verdict:
        """The first exercise the reply gives away, if any. `tried` keeps each exercise's
        programs run clean apart (a program that fixes nothing in one may fix another)."""
        for index, guard in enumerate(self.guards):
            mark = f"{index}\x00"
            own = None if tried is None else {t[len(mark) :] for t in tried if t.startswith(mark)}
            verdict = await guard.check(reply, own)
            if tried is not None and own is not None:
                tried.update(mark + program for program in own)
            if verdict.leak:
                return verdict
        return CLEAN

    @property
    def exercise_ids(self) -> tuple[uuid.UUID, ...]:
        """The exercises a reply it let through counts towards: every one it was checked
        against."""
        return tuple(i for g in self.guards for i in g.exercise_ids)

    def with_shown(
        self, shown: Sequence[str], elsewhere: Mapping[uuid.UUID, Sequence[str]] | None = None
    ) -> WorkGuard:
        return replace(self, guards=tuple(g.with_shown(shown, elsewhere) for g in self.guards))


# From the laxest to the strictest.
STRICTER = (Strictness.OPEN, Strictness.HINTS, Strictness.SOCRATIC)
# What guards a reply: one exercise's guard, or the open work's in a conversation about none.
ReplyGuard = LeakGuard | WorkGuard


def sandbox_runner(
    sandbox: Sandbox, exercise: Exercise, owner: str, known: KnownPrograms
) -> Runner:
    """Try candidate programs against the exercise's tests in one grading-sandbox run: only
    the tests the attempt failed, stopping at the first program that passes one. Programs
    tried before against the same tests (`known`) are not run again."""
    limits = effective_limits(
        GUARD_LIMITS, time_limit_s=exercise.time_limit_s, memory_limit_mb=exercise.memory_limit_mb
    )
    tests = hashlib.sha256(exercise.tests.encode("utf-8", "surrogatepass")).hexdigest()

    async def run(programs: Sequence[str], failed: frozenset[str] | None) -> Trial | None:
        only = sorted(failed) if failed is not None else None
        scope = json.dumps([exercise.language, tests, only, asdict(limits)])
        keys = [known.key(scope, program) for program in programs]
        seen = [known.get(key) for key in keys]
        if True in seen:
            return Trial(seen.index(True), 0)
        pending = [index for index, fixed in enumerate(seen) if fixed is None]
        if not pending:
            return Trial(None, len(programs))
        try:
            report = await sandbox.try_programs(
                language=exercise.language,  # type: ignore[arg-type]
                programs=[programs[index] for index in pending],
                tests=exercise.tests,
                only=failed,
                stop="all" if failed is None else "any",
                limits=limits,
                total_wall_s=GUARD_TRIAL_S,
                owner=owner,
            )
        except KoanError as exc:  # busy or down: the candidates prove nothing
            log.info("tutor.leak_check_skipped", reason=exc.code)
            return None
        for position, (index, outcome) in enumerate(zip(pending, report.outcomes, strict=True)):
            if position == report.stopped_at:
                known.put(keys[index], True)
            elif outcome.status in ("tests", "import"):
                # Only what a run decided: a time-out may be the machine's, not the program's.
                known.put(keys[index], False)
        if report.stopped_at is not None:
            return Trial(pending[report.stopped_at], report.stopped_at + 1)
        ran = [index for index, o in zip(pending, report.outcomes, strict=True)
               if o.status != "not_run"]  # fmt: skip
        # Programs known clean or run, up to the first the trial left no time for.
        left = next((index for index in pending if index not in ran), len(programs))
        return Trial(None, left)

    return run


def strictness_of(settings: Settings, override: str | None = None) -> Strictness:
    """The tutor's strictness: a class's own when it has one, else KOAN_TUTOR_STRICTNESS."""
    return Strictness(override or settings.tutor_strictness)


async def open_work_guard(
    session: AsyncSession,
    user: User,
    *,
    threshold: float,
    strictness_for: Callable[[uuid.UUID], Awaitable[Strictness]],
    sandbox: Sandbox | None = None,
    known: KnownPrograms | None = None,
) -> WorkGuard | None:
    """The guard of a conversation about no exercise: the learner's newest open exercises,
    each at least as strict as in a conversation about it (`strictness_for`); None when they
    have none open."""
    guards = []
    for assignment in await exercises.open_work(session, user.id, limit=OPEN_WORK_GUARDED):
        _, guard = await exercise_context(
            session, user, assignment.exercise, threshold=threshold,
            strictness=await strictness_for(assignment.exercise_id), sandbox=sandbox,
            known=known, hints_used=assignment.hints_used,
        )  # fmt: skip
        guards.append(guard)
    return WorkGuard(tuple(guards)) if guards else None


async def exercise_context(
    session: AsyncSession,
    user: User,
    exercise: Exercise,
    *,
    threshold: float,
    strictness: Strictness = Strictness.SOCRATIC,
    sandbox: Sandbox | None = None,
    known: KnownPrograms | None = None,
    hints_used: int | None = None,
) -> tuple[TutorContext, LeakGuard]:
    """The statement, the hints seen so far, the latest code and its failing tests (`known`:
    programs the guard has run before, so it need not run them again; `hints_used`: the
    hints the learner's latest assignment of the exercise has shown, when the caller has
    just read it).

    Without `hints_used`, the hints taken are given as the learner was shown them: a rung the
    model tailored in its kept text (read only once a hint is taken), so the tutor talks about
    the wording the learner has. With it (a hint being tailored), the authored rungs: that
    prompt holds nothing of one learner's, so learners with the same code share its reply."""
    submission = await exercises.latest_submission(session, user.id, exercise.id)
    hints = list(exercise.hints)
    if hints_used is None:
        assignment = await exercises.latest_assignment(session, user.id, exercise.id)
        hints_used = assignment.hints_used if assignment is not None else 0
        taken = await exercise_rules.hints_taken(session, exercise, assignment)
        hints[: len(taken)] = [hint.text for hint in taken]
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
        hints=hints,
        hints_used=hints_used,
        latest_code=submission.code if submission is not None else None,
        failing_tests=failing,
        language=exercise.language,
        title=exercise.title,
    )
    attempt: Attempt | None
    if submission is not None and submission.status != "passed":
        failed = {name for name, _ in failing}
        # A crash before any test ran fails them all: any passing test is progress.
        attempt = Attempt(submission.code, frozenset(failed) if submission.tests else None)
    else:
        # Nothing submitted (or passed): a suggestion is a leak only if it passes everything.
        attempt = Attempt(exercise.starter_code, None) if submission is None else None
    guard = LeakGuard(
        secrets=ExerciseSecrets(
            solution=exercise.solution,
            starter=exercise.starter_code,
            language=exercise.language,
            attempt=attempt,
            threshold=threshold,
            strictness=strictness,
        ),
        hints_left=max(0, len(exercise.hints) - hints_used),
        failing=context.failing_tests,
        runner=(
            sandbox_runner(sandbox, exercise, str(user.id), known or KnownPrograms())
            if sandbox is not None
            else None
        ),
        exercise_id=exercise.id,
    )
    return context, guard


def hint_style_answer(guard: ReplyGuard) -> str:
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
