"""CPU of the grading hook's award pass for a learner with a long history.

    .venv/bin/python bench/award_history.py [--histories 10 100 1000] [--runs 30]
        [--database-url postgresql+asyncpg://...]

A learner is seeded with N completions (practice log, assignments and submissions written
directly), then completes one more exercise `--runs` times through
`koan.progress.service.on_submission_graded`, the hook every passing submission goes through.
Each run is timed twice, alternating: with the achievement summary kept on the learner's
progress row (what every pass after the first does), and with it cleared first (the summary
built from the whole practice log, as every pass did before it was kept). Reported: the
median and 10th percentile of the process's CPU per hook call, in milliseconds. SQLite in a
temporary file by default; `--database-url` for PostgreSQL (a database of its own: the
schema is migrated in it and its rows are left behind).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine, percentile  # noqa: E402
from sqlalchemy import insert, update  # noqa: E402
from tests.fixtures.factories import create_exercise  # noqa: E402

from koan.clock import Clock  # noqa: E402
from koan.db import create_engine, create_session_factory  # noqa: E402
from koan.migrate import upgrade_connection  # noqa: E402
from koan.models import Assignment, Submission, User  # noqa: E402
from koan.models.progress import LearnerProgress, PracticeEntry  # noqa: E402
from koan.progress import service as progress  # noqa: E402

START = datetime(2027, 1, 4, 11, 0, tzinfo=UTC)


class _Res:
    """The one thing the hook reads of Resources: the clock."""

    def __init__(self, now: datetime) -> None:
        self.clock = Clock()
        self.clock.advance(now - self.clock.now())


def _completion(user: User, exercise_id: uuid.UUID, at: datetime) -> tuple[dict, dict, dict]:
    assignment_id, submission_id = uuid.uuid4(), uuid.uuid4()
    assignment = {
        "id": assignment_id, "user_id": user.id, "exercise_id": exercise_id, "kind": "practice",
        "status": "completed", "assigned_at": at, "completed_at": at, "hints_used": 0,
        "attempts": 1,
    }  # fmt: skip
    submission = {
        "id": submission_id, "user_id": user.id, "exercise_id": exercise_id,
        "assignment_id": assignment_id, "code": "pass", "status": "passed", "passed": 1,
        "total": 1, "tests": [], "stdout": "", "stderr": "", "duration_ms": 1, "tier": "full",
        "created_at": at, "graded_at": at,
    }  # fmt: skip
    entry = {
        "submission_id": submission_id, "user_id": user.id, "assignment_id": assignment_id,
        "exercise_id": exercise_id, "at": at, "timezone": "Europe/Paris", "day": at.date(),
        "passed": True, "completed": True, "attempt": 1, "hints_used": 0,
    }  # fmt: skip
    return assignment, submission, entry


async def measure(url: str, history: int, runs: int) -> dict[str, list[float]]:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(upgrade_connection)
    sessions = create_session_factory(engine)
    timings: dict[str, list[float]] = {"kept": [], "built": []}
    async with sessions() as session:
        user = User(
            id=uuid.uuid4(), email=f"bench-{uuid.uuid4().hex}@example.com", name="Bench",
            password_hash="x", role="learner", timezone="Europe/Paris",
            email_verified_at=START,
        )  # fmt: skip
        session.add(user)
        await session.flush()
        exercises = [await create_exercise(session) for _ in range(50)]
        rows = [
            _completion(user, exercises[i % 50].id, START - timedelta(days=history - i))
            for i in range(history)
        ]
        for table, index in ((Assignment, 0), (Submission, 1), (PracticeEntry, 2)):
            if rows:
                await session.execute(insert(table), [row[index] for row in rows])
        await session.commit()
        for run in range(runs * 2):
            mode = "kept" if run % 2 else "built"
            at = START + timedelta(minutes=run)
            assignment, submission, _ = _completion(user, exercises[run % 50].id, at)
            session.add(Assignment(**assignment))
            session.add(found := Submission(**submission))
            await session.flush()
            if mode == "built":
                await session.execute(
                    update(LearnerProgress)
                    .where(LearnerProgress.user_id == user.id)
                    .values(achievement_summary=None)
                )
            held = await session.get(Assignment, assignment["id"])
            exercise = await session.get(type(exercises[0]), assignment["exercise_id"])
            started = time.process_time()
            await progress.on_submission_graded(
                session, _Res(at), user=user, submission=found, assignment=held, exercise=exercise
            )  # type: ignore[arg-type]
            timings[mode].append(time.process_time() - started)
            await session.commit()
    await engine.dispose()
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--histories", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    print("| completions before | summary kept: median (p10) ms | built from the log |")
    print("|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for history in args.histories:
            url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench-{history}.db"
            t = await measure(url, history, args.runs)
            cells = [
                f"{statistics.median(t[m]) * 1000:.2f} ({percentile(t[m], 10) * 1000:.2f})"
                for m in ("kept", "built")
            ]
            print(f"| {history} | {cells[0]} | {cells[1]} |")
    print(f"\n_{machine()}_")


if __name__ == "__main__":
    asyncio.run(main())
