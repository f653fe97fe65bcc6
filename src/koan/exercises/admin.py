"""The exercise bank as administrators see it: searched a page at a time with each exercise's
submissions, its latest validation verdict, and the whole bank validated as one job.

Verdicts and the job's progress live in the shared cache (Redis in production), so any worker
can show them and a reload finds the job where it is. The job itself runs in the worker that
started it, after the response; a lock with a heartbeat says it is alive, so a job whose
worker died shows as interrupted (and may be started again) instead of running forever."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import structlog
from fastapi import BackgroundTasks
from sqlalchemy.ext.asyncio import AsyncSession

from koan.errors import Conflict, KoanError, NotFound
from koan.exercises import repository
from koan.exercises.bank import to_spec
from koan.exercises.pack import ExerciseSpec
from koan.exercises.validation import ValidationOutcome, validate_spec
from koan.grading.limits import server_limits
from koan.models import Exercise
from koan.pagination import decode_cursor, next_cursor
from koan.resources import Resources

log = structlog.get_logger(__name__)

VERDICT_TTL_S = 30 * 24 * 3600
JOB_KEY = "exercises:bank-validation:job"
LOCK_KEY = "exercises:bank-validation:running"
# The running job renews its lock every LOCK_TTL_S / 3: a job whose worker died is seen as
# interrupted within LOCK_TTL_S.
LOCK_TTL_S = 60


# -- one exercise's verdict --------------------------------------------------------------------


def verdict_key(exercise_id: uuid.UUID, content_hash: str) -> str:
    # Keyed by content hash: editing an exercise makes its old verdict disappear. (The
    # prefix is the one verdicts were first stored under, so they outlive this move.)
    return f"web:validation:{exercise_id}:{content_hash}"


def _verdict(outcome: ValidationOutcome, at: str) -> dict[str, Any]:
    return {"ok": outcome.ok, "problems": outcome.problems, "at": at}


async def verdicts(res: Resources, exercises: Sequence[Exercise]) -> dict[uuid.UUID, Any]:
    """The latest verdict of each exercise's current content (None: never checked)."""
    raw = await res.cache.get_many([verdict_key(e.id, e.content_hash) for e in exercises])
    return {e.id: json.loads(r) if r else None for e, r in zip(exercises, raw, strict=True)}


async def validate_exercise(
    session: AsyncSession, res: Resources, exercise_id: uuid.UUID
) -> tuple[Exercise, dict[str, Any]]:
    """Run the exercise's reference solution and starter in the sandbox now; keep the verdict."""
    exercise = await repository.exercise_by_id(session, exercise_id)
    if exercise is None:
        raise NotFound("There is no exercise with this id.")
    outcome = await validate_spec(res.sandbox, to_spec(exercise), server_limits(res.settings))
    verdict = _verdict(outcome, res.clock.now().isoformat())
    await res.cache.set(
        verdict_key(exercise.id, exercise.content_hash), json.dumps(verdict), ttl_s=VERDICT_TTL_S
    )
    return exercise, verdict


# -- the bank, a page at a time -----------------------------------------------------------------


@dataclass(frozen=True)
class BankRow:
    exercise: Exercise
    submissions: int
    passed: int
    verdict: dict[str, Any] | None


@dataclass(frozen=True)
class BankPage:
    items: list[BankRow]
    next_cursor: str | None
    total: int


async def bank_page(
    session: AsyncSession,
    res: Resources,
    *,
    text: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> BankPage:
    """Exercises whose title or slug contains `text`, by language, difficulty and slug."""
    after = decode_cursor(cursor, str, int, str) if cursor else None
    text = " ".join((text or "").split()) or None
    rows = await repository.bank_page(session, text=text, after=after, limit=limit + 1)
    page = list(rows[:limit])
    counts = await repository.submission_counts(session, [e.id for e in page])
    found = await verdicts(res, page)
    return BankPage(
        items=[BankRow(e, *counts.get(e.id, (0, 0)), found[e.id]) for e in page],
        next_cursor=next_cursor(rows, limit, lambda e: (e.language, e.difficulty, e.slug)),
        total=await repository.bank_count(session, text=text),
    )


# -- the whole bank as one job ------------------------------------------------------------------

JobState = Literal["running", "finished", "interrupted"]


@dataclass
class Failure:
    exercise_id: str
    slug: str
    title: str
    problems: list[str]


@dataclass
class BankValidation:
    """A validation of the whole bank: how far it is, and what failed so far."""

    id: str
    started_at: str
    started_by: str
    total: int
    done: int = 0
    failures: list[Failure] = field(default_factory=list)
    finished_at: str | None = None
    state: JobState = "running"

    @property
    def valid(self) -> int:
        return self.done - len(self.failures)

    def dump(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, raw: str) -> BankValidation:
        data = json.loads(raw)
        data["failures"] = [Failure(**f) for f in data.get("failures", [])]
        return cls(**data)


async def bank_validation(res: Resources) -> BankValidation | None:
    """The latest whole-bank validation (None: never run, or too long ago)."""
    raw, owner = await res.cache.get_many([JOB_KEY, LOCK_KEY])
    if raw is None:
        return None
    job = BankValidation.load(raw)
    if job.state == "running" and owner != job.id:
        job.state = "interrupted"  # its worker stopped before finishing
    return job


@dataclass(frozen=True)
class _Item:
    exercise_id: uuid.UUID
    content_hash: str
    title: str
    spec: ExerciseSpec


async def start_bank_validation(
    session: AsyncSession, res: Resources, tasks: BackgroundTasks, *, started_by: str
) -> BankValidation:
    """Start validating every exercise in the sandbox, after the response; one job at a time
    across every worker (409 while one runs)."""
    job_id = uuid.uuid4().hex
    if not await res.cache.set_if_absent(LOCK_KEY, job_id, ttl_s=LOCK_TTL_S):
        running = await bank_validation(res)
        where = f": {running.done} of {running.total} done" if running else ""
        raise Conflict(f"The whole bank is already being validated{where}.")
    try:
        items = [
            _Item(e.id, e.content_hash, e.title, to_spec(e))
            for e in await repository.all_exercises(session)
        ]
        job = BankValidation(
            id=job_id,
            started_at=res.clock.now().isoformat(),
            started_by=started_by,
            total=len(items),
        )
        await res.cache.set(JOB_KEY, job.dump(), ttl_s=VERDICT_TTL_S)
    except BaseException:
        await res.cache.delete(LOCK_KEY)
        raise
    tasks.add_task(run_bank_validation, res, job, items)
    log.info("exercises.bank_validation_started", job=job_id, total=len(items))
    return job


async def _heartbeat(res: Resources, job_id: str) -> None:
    while True:
        await asyncio.sleep(LOCK_TTL_S / 3)
        await res.cache.set(LOCK_KEY, job_id, ttl_s=LOCK_TTL_S)


async def run_bank_validation(res: Resources, job: BankValidation, items: list[_Item]) -> None:
    """Validate each exercise, saving the progress after each one. At most half the sandbox's
    slots at a time: learners' submissions keep the rest while the job runs."""
    gate = asyncio.Semaphore(max(1, res.sandbox.config.slots // 2))
    saving = asyncio.Lock()
    limits = server_limits(res.settings)

    async def one(item: _Item) -> None:
        problems: list[str]
        async with gate:
            try:
                outcome = await validate_spec(res.sandbox, item.spec, limits)
            except KoanError as exc:  # the sandbox down or busy: not a verdict on the exercise
                problems = [f"could not be checked: {exc.detail}"]
            except Exception:
                log.exception("exercises.bank_validation_error", slug=item.spec.slug)
                problems = ["could not be checked: an unexpected error (logged)"]
            else:
                problems = outcome.problems
                verdict = _verdict(outcome, res.clock.now().isoformat())
                await res.cache.set(
                    verdict_key(item.exercise_id, item.content_hash),
                    json.dumps(verdict),
                    ttl_s=VERDICT_TTL_S,
                )
        async with saving:
            job.done += 1
            if problems:
                job.failures.append(
                    Failure(str(item.exercise_id), item.spec.slug, item.title, problems)
                )
            await res.cache.set(JOB_KEY, job.dump(), ttl_s=VERDICT_TTL_S)

    heartbeat = asyncio.create_task(_heartbeat(res, job.id))
    try:
        await asyncio.gather(*(one(item) for item in items))
        job.state = "finished"
        job.finished_at = res.clock.now().isoformat()
        await res.cache.set(JOB_KEY, job.dump(), ttl_s=VERDICT_TTL_S)
        log.info("exercises.bank_validation_finished", job=job.id, failures=len(job.failures))
    except Exception:
        # After the response: nobody waits on it, so it is logged here; the lock goes below,
        # and the job shows as interrupted.
        log.exception("exercises.bank_validation_failed", job=job.id)
    finally:
        heartbeat.cancel()
        await res.cache.delete(LOCK_KEY)
