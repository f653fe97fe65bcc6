"""The rules of progress: what a verdict counts for, streaks, levels, achievements, exports."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive import GENERAL, SkillRating, level, mastery, starting_ratings
from koan.adaptive import service as adaptive
from koan.adaptive.model import EXPERIENCES, MIN_LEVEL
from koan.errors import ValidationFailed
from koan.models import Assignment, Exercise, Submission, User
from koan.models.progress import LearnerProgress
from koan.onboarding import service as onboarding
from koan.progress import achievements, repository, streaks
from koan.progress.achievements import Kind
from koan.progress.schemas import (
    AchievementsOut,
    DayActivity,
    EarnedAchievement,
    HistoryOut,
    LevelChange,
    LockedAchievement,
    ProgressOut,
    SkillMastery,
)
from koan.resources import Resources

ACTIVITY_DAYS = 90
HISTORY_DEFAULT_DAYS = 30
MAX_HISTORY_DAYS = 366
# How far from today a history may reach: keeps every day it computes a valid date.
HISTORY_REACH_DAYS = 100 * 365
LEVEL_EVENTS_SHOWN = 20


# --- the grading hooks ---------------------------------------------------------------------------


async def on_submission_graded(
    session: AsyncSession,
    res: Resources,
    *,
    user: User,
    submission: Submission,
    assignment: Assignment,
    exercise: Exercise,
    tests_ran: bool = True,
) -> list[str]:
    """Count a recorded verdict toward progress; return the codes of achievements it unlocked.

    A run that started no test (`tests_ran` false) is logged as practice but is not an attempt.

    Call it in the grading transaction, after the verdict and the assignment's new state are
    flushed (and after the adaptive ratings are updated, so level and mastery see this
    attempt). Calling it again for the same submission changes nothing and returns [].
    """
    if submission.status == "pending" or not submission.tier:
        return []  # no verdict (the grader failed or never ran): not an attempt
    progress = await lock_learner(session, user)
    now = res.clock.now()
    # The work counts on the day it was handed in, as a class's deadline judges it: code sent
    # at 23:59:58 and graded after midnight keeps the day's streak.
    at = submission.created_at
    day = streaks.local_day(at, user.timezone)
    # grade() stamps completed_at with the graded_at of the verdict that completed the
    # assignment; the log refuses to count one completion twice.
    logged = await repository.log_verdict(
        session,
        submission_id=submission.id,
        user_id=user.id,
        assignment_id=assignment.id,
        exercise_id=exercise.id,
        at=at,
        timezone=user.timezone,
        day=day,
        passed=submission.status == "passed",
        completes=(
            submission.status == "passed"
            and assignment.status == "completed"
            and assignment.completed_at == submission.graded_at
        ),
        attempt=assignment.attempts,
        hints_used=assignment.hints_used,
    )
    if logged is None:
        return []  # this submission was counted before

    progress.attempts += int(tests_ran)
    if logged.completed:
        progress.exercises_completed += int(not logged.exercise_completed_before)
        progress.first_try_passes += int(assignment.attempts == 1)
        await _count_day(session, progress, day)
        attempt, hints = assignment.attempts, assignment.hints_used
        if not logged.exercise_completed_before:
            # A first solve after giving the exercise up counts what those assignments took.
            attempt += logged.given_up_attempts
            hints += logged.given_up_hints
        completion = achievements.Completion(
            str(exercise.id), at, user.timezone, day, attempt, hints, exercise.language,
            exercise.difficulty,
        )  # fmt: skip
        kept = progress.achievement_summary
        summary = achievements.Summary.from_json(kept) if kept is not None else None
        if summary is not None and summary.follows(completion):
            summary = summary.add(completion, first=not logged.exercise_completed_before)
        else:  # built from the log (this completion is in it), as a streak is after a move west
            summary = achievements.Summary.of(await repository.completions(session, user.id))
        progress.achievement_summary = summary.to_json()
    # Read once for the level and the awards: nothing changes them in between.
    ratings = await _ratings(session, user)
    await _follow_level(session, user, progress, now, ratings)
    await repository.save_progress(session, progress)
    if submission.status != "passed":
        return []  # nothing is earned by a failed attempt
    return await _award(session, user, progress, ratings, submission_id=submission.id, now=now)


async def on_assignment_skipped(session: AsyncSession, res: Resources, *, user: User) -> None:
    """Record a level change a skip caused (call it after the adaptive update of the skip)."""
    progress = await lock_learner(session, user)
    await _follow_level(session, user, progress, res.clock.now())
    await repository.save_progress(session, progress)


async def lock_learner(session: AsyncSession, user: User) -> repository.Totals:
    """Take the learner's progress row FOR UPDATE, creating it on first use.

    The hooks take it first thing. Grading may take it earlier in its transaction, before other
    per-learner read-then-write work (the adaptive ratings), so that work queues up too; taking
    it again in the same transaction is free.
    """
    progress = await repository.lock_progress(session, user.id)
    if progress is not None:
        return progress
    # Where the learner started, so a change caused by the very first attempt is recorded as
    # an event.
    created = await repository.create_progress(
        session, user.id, level=await _starting_level(session, user)
    )
    if created is not None:
        return created
    # A concurrent submission of the same learner created it first.
    progress = await repository.lock_progress(session, user.id)
    if progress is None:  # pragma: no cover - the row was just created or found
        raise RuntimeError("learner_progress row vanished")
    return progress


async def _count_day(session: AsyncSession, progress: repository.Totals, day: date) -> None:
    updated = streaks.record(_streak_of(progress), day)
    if updated is None:
        updated = streaks.from_days(await repository.active_days(session, progress.user_id))
    progress.current_streak = updated.run
    progress.longest_streak = updated.longest
    progress.last_active_day = updated.last_active_day


async def _follow_level(
    session: AsyncSession,
    user: User,
    progress: repository.Totals,
    now: datetime,
    ratings: dict[str, SkillRating] | None = None,
) -> None:
    current = await _level(session, user, ratings)
    if current != progress.level:
        await repository.add_level_event(
            session, user.id, from_level=progress.level, to_level=current, at=now
        )
        progress.level = current


async def _award(
    session: AsyncSession,
    user: User,
    progress: repository.Totals,
    ratings: dict[str, SkillRating],
    *,
    submission_id: uuid.UUID,
    now: datetime,
) -> list[str]:
    """Award what the learner's record now earns; the codes awarded by this call, in the
    catalogue's order (what they held already is left as it is, in the same statement)."""
    facts = await _facts(session, user, now, progress, ratings)
    earned = [achievement.code for achievement in achievements.earned(facts)]
    awarded = await repository.award(session, user.id, earned, submission_id=submission_id, at=now)
    return [code for code in earned if code in awarded]


# --- derived values ------------------------------------------------------------------------------


async def _ratings(session: AsyncSession, user: User) -> dict[str, SkillRating]:
    # Progress only reads them: the rows the request has loaded (a verdict's adaptive update),
    # else plain values.
    return await adaptive.shown_ratings(session, user.id)


async def _starting_level(session: AsyncSession, user: User) -> int:
    experience = await onboarding.experience_of(session, user.id)
    if experience not in EXPERIENCES:
        return MIN_LEVEL
    return level(starting_ratings(experience))


async def _level(
    session: AsyncSession, user: User, ratings: dict[str, SkillRating] | None = None
) -> int:
    """The overall level from the skill ratings; where the learner started if there are none."""
    ratings = await _ratings(session, user) if ratings is None else ratings
    return level(ratings) if ratings else await _starting_level(session, user)


def _masteries(ratings: dict[str, SkillRating], now: datetime) -> dict[str, float]:
    # The general ability is not a skill a learner can master; it is shown as the level.
    return {skill: mastery(r, now) for skill, r in ratings.items() if skill != GENERAL}


async def _summary(
    session: AsyncSession,
    user: User,
    progress: repository.Totals | LearnerProgress | None,
) -> achievements.Summary:
    """The learner's achievement summary as kept, or built from the practice log when it has
    not been kept yet (a learner from before it was, or one with no completion)."""
    if progress is not None and progress.achievement_summary is not None:
        return achievements.Summary.from_json(progress.achievement_summary)
    return achievements.Summary.of(await repository.completions(session, user.id))


async def _facts(
    session: AsyncSession,
    user: User,
    now: datetime,
    progress: repository.Totals | LearnerProgress | None,
    ratings: dict[str, SkillRating] | None = None,
) -> achievements.Facts:
    """What the rules read: the kept totals and summary, and today's masteries."""
    summary = await _summary(session, user, progress)
    return summary.facts(
        exercises=progress.exercises_completed if progress is not None else 0,
        streak=progress.longest_streak if progress is not None else 0,
        mastered_skills=await _mastered_skills(session, user, now, ratings),
    )


async def _mastered_skills(
    session: AsyncSession,
    user: User,
    now: datetime,
    ratings: dict[str, SkillRating] | None = None,
) -> int:
    ratings = await _ratings(session, user) if ratings is None else ratings
    masteries = _masteries(ratings, now)
    return achievements.count_mastered(masteries.values())


def _streak_of(
    progress: LearnerProgress | repository.Totals | repository.PageTotals | None,
) -> streaks.Streak:
    if progress is None:
        return streaks.Streak()
    return streaks.Streak(
        progress.current_streak, progress.longest_streak, progress.last_active_day
    )


async def current_streaks(
    session: AsyncSession, zones: Mapping[uuid.UUID, str], now: datetime
) -> dict[uuid.UUID, int]:
    """Each learner's streak as their own progress page shows it at `now`, for many learners
    (learner id -> their time zone) in one query: a class's roster."""
    found = await repository.progress_of_many(session, list(zones))
    return {
        user_id: streaks.current(_streak_of(found.get(user_id)), streaks.local_day(now, zone))
        for user_id, zone in zones.items()
    }


async def active_today(session: AsyncSession, user: User, now: datetime) -> bool:
    """Whether the learner completed an exercise today, as their progress page says: each
    completion on the day it was lived on, in the zone the learner was in then."""
    found = await repository.progress_of(session, user.id)
    last = found.last_active_day if found is not None else None
    return last is not None and last >= streaks.local_day(now, user.timezone)


def today_for(res: Resources, user: User) -> date:
    return streaks.local_day(res.clock.now(), user.timezone)


def _series(counts: Sequence[repository.DayCounts], start: date, end: date) -> list[DayActivity]:
    by_day = {c.day: c for c in counts}
    days: list[DayActivity] = []
    day = start
    while day <= end:
        found = by_day.get(day)
        days.append(
            DayActivity(
                date=day,
                completed=found.completed if found else 0,
                attempts=found.attempts if found else 0,
            )
        )
        day += streaks.ONE_DAY
    return days


# --- reading -------------------------------------------------------------------------------------


async def overview(session: AsyncSession, res: Resources, user: User) -> ProgressOut:
    now = res.clock.now()
    today = streaks.local_day(now, user.timezone)
    start = today - timedelta(days=ACTIVITY_DAYS - 1)
    read = await repository.overview(
        session, user.id, start=start, end=today, events=LEVEL_EVENTS_SHOWN
    )
    totals = read.totals
    streak = _streak_of(totals)
    ratings = await adaptive.shown_ratings(session, user.id)
    masteries = _masteries(ratings, now)
    activity = _series(read.days, start, today)
    return ProgressOut(
        exercises_completed=totals.exercises_completed if totals else 0,
        attempts=totals.attempts if totals else 0,
        first_try_passes=totals.first_try_passes if totals else 0,
        hints_used=read.hints_used,
        current_streak=streaks.current(streak, today),
        longest_streak=streak.longest,
        active_today=streak.last_active_day is not None and streak.last_active_day >= today,
        level=await _level(session, user, ratings),
        level_events=[
            LevelChange(from_level=e.from_level, to_level=e.to_level, at=e.at)
            for e in read.level_events
        ],
        skills=[
            SkillMastery(
                skill=skill,
                mastery=round(masteries[skill], 4),
                rating=round(r.rating, 4),
                uncertainty=round(r.uncertainty, 4),
                attempts=r.attempts,
                last_practised=r.last_practised,
                mastered=masteries[skill] >= achievements.MASTERY_THRESHOLD,
            )
            for skill, r in ratings.items()
            if skill in masteries
        ],
        timezone=user.timezone,
        today=today,
        activity=activity,
    )


async def history(
    session: AsyncSession,
    res: Resources,
    user: User,
    *,
    start: date | None,
    end: date | None,
) -> HistoryOut:
    """A daily series between two local dates (inclusive); `to` defaults to today and `from`
    to 30 days before `to`."""
    today = today_for(res, user)
    for day in (start, end):
        if day is not None and abs((day - today).days) > HISTORY_REACH_DAYS:
            raise ValidationFailed(
                f"Ask for days within {HISTORY_REACH_DAYS // 365} years of today."
            )
    end = end or today
    start = start or end - timedelta(days=HISTORY_DEFAULT_DAYS - 1)
    if start > end:
        raise ValidationFailed("'from' must be on or before 'to'.")
    if (end - start).days + 1 > MAX_HISTORY_DAYS:
        raise ValidationFailed(f"Ask for at most {MAX_HISTORY_DAYS} days at a time.")
    days = _series(
        await repository.daily_counts(session, user.id, start=start, end=end), start, end
    )
    return HistoryOut(
        start=start,
        end=end,
        timezone=user.timezone,
        days=days,
        completed=sum(d.completed for d in days),
        attempts=sum(d.attempts for d in days),
    )


async def achievement_list(session: AsyncSession, res: Resources, user: User) -> AchievementsOut:
    catalogue = await repository.catalogue(session)
    earned = {row.achievement_code: row for row in await repository.earned(session, user.id)}
    progress = await repository.progress_of(session, user.id)
    facts = await _facts(session, user, res.clock.now(), progress)
    locked: list[LockedAchievement] = []
    for row in catalogue:
        if row.code in earned:
            continue
        rule = achievements.BY_CODE.get(row.code)
        current, target = achievements.progress(rule, facts) if rule else (0, row.threshold)
        locked.append(
            LockedAchievement(
                code=row.code,
                title=row.title,
                description=row.description,
                current=current,
                target=target,
                counts=achievements.MEASURES[rule.kind] if rule else "",
            )
        )
    titles = {row.code: row for row in catalogue}
    return AchievementsOut(
        earned=[
            EarnedAchievement(
                code=code,
                title=titles[code].title,
                description=titles[code].description,
                earned_at=row.earned_at,
            )
            for code, row in earned.items()
        ],
        locked=locked,
    )


# --- recompute -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The numbers progress keeps; `stored` and `recompute` must always be equal."""

    exercises_completed: int
    attempts: int
    first_try_passes: int
    current_streak: int
    longest_streak: int
    last_active_day: date | None
    level: int
    achievements: frozenset[str]


async def stored(session: AsyncSession, user: User) -> Snapshot:
    """The values the grading hook maintained."""
    progress = await repository.progress_of(session, user.id)
    held = frozenset(row.achievement_code for row in await repository.earned(session, user.id))
    if progress is None:
        return Snapshot(0, 0, 0, 0, 0, None, await _level(session, user), held)
    return Snapshot(
        exercises_completed=progress.exercises_completed,
        attempts=progress.attempts,
        first_try_passes=progress.first_try_passes,
        current_streak=progress.current_streak,
        longest_streak=progress.longest_streak,
        last_active_day=progress.last_active_day,
        level=progress.level,
        achievements=held,
    )


async def recompute(session: AsyncSession, res: Resources, user: User) -> Snapshot:
    """Rebuild every number from the rows: assignments for totals, the practice log for what
    only it knows (the local day of each completion, which attempt passed)."""
    totals = await repository.assignment_totals(session, user.id)
    done = await repository.completions(session, user.id)
    streak = streaks.from_days(c.day for c in done)
    mastered = await _mastered_skills(session, user, res.clock.now())
    facts = achievements.facts_from(done, mastered_skills=mastered)
    held = {row.achievement_code for row in await repository.earned(session, user.id)}
    # Mastery fades, so a mastery achievement earned earlier may not be earned again from
    # today's ratings; every other rule reads values that only grow.
    kept = {
        code
        for code in held
        if code in achievements.BY_CODE and achievements.BY_CODE[code].kind is Kind.MASTERED_SKILLS
    }
    return Snapshot(
        exercises_completed=totals.exercises_completed,
        attempts=totals.attempts,
        first_try_passes=await repository.first_try_passes(session, user.id),
        current_streak=streak.run,
        longest_streak=streak.longest,
        last_active_day=streak.last_active_day,
        level=await _level(session, user),
        achievements=frozenset({a.code for a in achievements.earned(facts)} | kept),
    )
