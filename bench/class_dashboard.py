"""The instructor's dashboard on a big class: every page's answer time on PostgreSQL.

    .venv/bin/python bench/class_dashboard.py [--url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--runs 30] [--write]

Builds a database of its own (dropped at the end) on the given server: 300 learners in one
class (and 5 other classes of 300 around it), 100 exercises set in 9 assignments of 10 and
an adaptive one (5 picks per learner), 30,000 submissions of the class's learners (a third
passed; the failed ones' test results in 14 variants per exercise), hint use, tutor
conversations and a week of tutor spend. Then asks each dashboard page `--runs` times
through the whole app in process (authentication, queries, JSON or CSV), one request at a
time, and prints the median and p95, and the CPU each page cost in this process and in
PostgreSQL. Target: every page under 150 ms. `--profile` prints each page's slowest
statements."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import percentile, tree_cpu_seconds, write_section  # noqa: E402

from koan.app import create_app  # noqa: E402
from koan.auth import service as auth_service  # noqa: E402
from koan.config import Settings  # noqa: E402
from koan.db import create_engine  # noqa: E402
from koan.migrate import upgrade_connection  # noqa: E402
from koan.models import User  # noqa: E402
from koan.resources import Resources  # noqa: E402

LEARNERS = 300
EXERCISES = 100
ASSIGNMENTS = 10
SUBMISSIONS = 30_000
PICKS = 5
OTHER_CLASSES = 5
TARGET_MS = 150.0
TAG = "bench"
PROFILE = "--profile" in sys.argv


def seed_sql() -> list[str]:
    u = "md5('bu' || {})::uuid"
    e = "md5('be' || {})::uuid"
    k = "md5('bk' || {})::uuid"
    a = "md5('ba' || {})::uuid"
    users = LEARNERS * (OTHER_CLASSES + 1)
    # A failed submission's results: one of two tests fails, with one of seven messages (the
    # same mistake fails the same way), beside two passing tests.
    failed_tests = """json_build_array(
        json_build_object('name', CASE WHEN i % 5 = 0 THEN 'test_zero' ELSE 'test_small' END,
            'status', 'failed', 'message', 'expected 3, got ' || (i % 7)),
        json_build_object('name', 'test_large', 'status', 'passed', 'message', ''),
        json_build_object('name', 'test_negative', 'status', 'passed', 'message', ''))"""
    return [
        f"""INSERT INTO users (id, email, name, password_hash, role, email_verified_at, timezone,
                preferences, created_at, updated_at)
            SELECT {u.format("i")}, 'bench-' || i || '@example.com', 'Learner ' || i, 'x',
                'learner', now(), 'UTC', '{{}}', now(), now()
            FROM generate_series(0, {users}) AS i""",
        f"""INSERT INTO exercises (id, slug, title, language, difficulty, skills, statement,
                starter_code, solution, tests, hints, source, content_hash, rating,
                rating_uncertainty, rating_attempts, created_at, updated_at)
            SELECT {e.format("i")}, 'bench-ex-' || i, 'Exercise ' || i, 'python', 1 + i % 5,
                '["functions"]', 'Do it.', '', '', '', '["a", "b", "c"]', 'imported',
                md5(i::text), 0, 0.7, 0, now(), now()
            FROM generate_series(0, {EXERCISES - 1}) AS i""",
        f"""INSERT INTO classes (id, name, join_code, timezone, tutor_instructions, tutor_avoid,
                tutor_off, tutor_off_reason, created_at, updated_at)
            SELECT {k.format("i")}, 'Class ' || i, upper(substr(md5('bk' || i), 1, 12)), 'UTC',
                '', '[]', false, '', now(), now()
            FROM generate_series(0, {OTHER_CLASSES}) AS i""",
        # The instructor is user number `users` (the last); learners of class c are
        # c * 300 .. c * 300 + 299.
        f"""INSERT INTO class_memberships (class_id, user_id, role, joined_at)
            SELECT {k.format(f"i / {LEARNERS}")}, {u.format("i")}, 'learner', now()
            FROM generate_series(0, {users - 1}) AS i
            UNION ALL SELECT {k.format("0")}, {u.format(str(users))}, 'instructor', now()""",
        # Each class's last assignment is adaptive: five picks of exercises 90-99 per learner.
        f"""INSERT INTO class_assignments (id, class_id, title, kind, count, opens_at, due_at,
                created_at)
            SELECT {a.format("i")}, {k.format(f"i / {ASSIGNMENTS}")}, 'Week ' || i,
                CASE WHEN i % 10 = 9 THEN 'adaptive' ELSE 'exercises' END,
                CASE WHEN i % 10 = 9 THEN {PICKS} ELSE 10 END,
                now() - (10 - i % 10) * interval '1 day',
                now() + (i % 10 - 5) * interval '1 day', now()
            FROM generate_series(0, {(OTHER_CLASSES + 1) * ASSIGNMENTS - 1}) AS i""",
        f"""INSERT INTO class_assignment_items (id, class_assignment_id, class_id, exercise_id,
                position)
            SELECT md5('bki' || i)::uuid, {a.format("i / 10")},
                {k.format(f"i / 10 / {ASSIGNMENTS}")}, {e.format(f"i % {EXERCISES}")}, i % 10
            FROM generate_series(0, {(OTHER_CLASSES + 1) * ASSIGNMENTS * 10 - 1}) AS i
            WHERE (i / 10) % 10 <> 9""",
        f"""INSERT INTO class_assignment_items (id, class_assignment_id, class_id, exercise_id,
                user_id, position)
            SELECT md5('bkp' || i || '-' || j)::uuid,
                {a.format(f"(i / {LEARNERS}) * {ASSIGNMENTS} + 9")},
                {k.format(f"i / {LEARNERS}")}, {e.format("90 + (i + j) % 10")},
                {u.format("i")}, j
            FROM generate_series(0, {users - 1}) AS i, generate_series(0, {PICKS - 1}) AS j""",
        # Every learner's work on the exercises: (user, exercise) pairs with a few attempts.
        f"""INSERT INTO assignments (id, user_id, exercise_id, kind, status, reason, hints_used,
                attempts, assigned_at)
            SELECT md5('bas' || i)::uuid, {u.format(f"i % {users}")},
                {e.format(f"(i / {users}) % {EXERCISES}")}, 'practice', 'in_progress', '',
                i % 4, 1, now() - interval '3 days'
            FROM generate_series(0, {users * 33 - 1}) AS i""",
        f"""INSERT INTO submissions (id, user_id, exercise_id, assignment_id, code, status, passed,
                total, tests, stdout, stderr, duration_ms, tier, created_at)
            SELECT md5('bs' || i)::uuid, {u.format(f"i % {users}")},
                {e.format(f"(i / {users}) % {EXERCISES}")},
                md5('bas' || (i % ({users} * 33)))::uuid, 'def add(a, b): return a - b',
                CASE WHEN i % 3 = 0 THEN 'passed' ELSE 'failed' END, 1, 2,
                CASE WHEN i % 3 = 0 THEN '[]'::json ELSE {failed_tests} END, '', '', 40, 'full',
                -- One learner in ten has been away for three days.
                now() - (i % 5000) * interval '1 minute'
                    - CASE WHEN i % {users} % 10 = 0 THEN interval '3 days' ELSE interval '0' END
            FROM generate_series(0, {SUBMISSIONS * (OTHER_CLASSES + 1) - 1}) AS i""",
        f"""INSERT INTO conversations (id, user_id, exercise_id, title, message_count, created_at,
                updated_at)
            SELECT md5('bc' || i)::uuid, {u.format(f"i % {users}")},
                {e.format(f"i % {EXERCISES}")}, 'About it', 4, now(), now()
            FROM generate_series(0, {users * 5 - 1}) AS i""",
        f"""INSERT INTO chat_messages (id, conversation_id, seq, role, content, incomplete,
                input_tokens, output_tokens, cost_usd, leak_caught, created_at)
            SELECT md5('bm' || i)::uuid, md5('bc' || (i / 4))::uuid, 1 + i % 4,
                CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END, 'Why?', false, 10, 20,
                0.0001, false, now()
            FROM generate_series(0, {users * 20 - 1}) AS i""",
        # Today's tutor replies: five per learner on the class's exercises, and older days.
        f"""INSERT INTO llm_calls (id, user_id, purpose, provider, model, input_tokens,
                output_tokens, cost_usd, latency_ms, cache_hit, leak_caught, outcome,
                exercise_id, conversation_id, day, created_at)
            SELECT md5('bl' || i)::uuid, {u.format(f"i % {users}")}, 'chat', 'openai', 'gpt',
                300, 120, 0.0004, 900, false, false, 'ok', {e.format(f"i % {EXERCISES}")},
                md5('bc' || (i % ({users} * 5)))::uuid, current_date - (i / ({users} * 5)),
                now() - (i / ({users} * 5)) * interval '1 day'
            FROM generate_series(0, {users * 5 * 7 - 1}) AS i""",
        f"""INSERT INTO learner_progress (user_id, exercises_completed, attempts,
                first_try_passes, current_streak, longest_streak, last_active_day, level,
                updated_at)
            SELECT {u.format("i")}, 3, 30, 1, i % 9, 9, current_date, 1, now()
            FROM generate_series(0, {users - 1}) AS i""",
    ]


PAGES = [
    ("roster", "dashboard/roster?sort=attempts&order=desc"),
    ("roster CSV", "dashboard/roster?format=csv"),
    ("gradebook", "dashboard/gradebook"),
    ("gradebook CSV", "dashboard/gradebook?format=csv"),
    ("needs help", "dashboard/needs-help"),
    ("per exercise", "dashboard/exercises"),
    ("tutor spend", "dashboard/usage"),
    ("learner: submissions", "learners/{learner}/submissions"),
    ("learner: conversations", "learners/{learner}/conversations"),
    ("learner: conversation", "learners/{learner}/conversations/{conversation}"),
]


async def backend_pids(admin: AsyncEngine, database: str) -> list[int]:
    """The PostgreSQL backends serving the bench database (the app's pooled connections)."""
    async with admin.connect() as conn:
        found = await conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": database}
        )
        return [int(pid) for pid in found.scalars()]


def database_cpu(backends: list[int]) -> float:
    return sum(tree_cpu_seconds(pid) for pid in backends)


async def main(url: str, runs: int, write: bool) -> None:
    load_before = os.getloadavg()
    name = f"koan_bench_classes_{uuid.uuid4().hex[:6]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = make_url(url).set(database=name).render_as_string(hide_password=False)
    try:
        engine = create_engine(db_url)
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_connection)
            for statement in seed_sql():
                await conn.execute(text(statement))
        # As autovacuum leaves a live server's tables: statistics known, pages all-visible.
        vacuum = create_engine(db_url, isolation_level="AUTOCOMMIT")
        async with vacuum.connect() as conn:
            await conn.execute(text("VACUUM ANALYZE"))
        await vacuum.dispose()
        async with engine.begin() as conn:
            instructor_id = (
                await conn.execute(text(f"SELECT md5('bu' || {LEARNERS * (OTHER_CLASSES + 1)})"))
            ).scalar_one()
            class_id = (await conn.execute(text("SELECT md5('bk' || 0)::uuid"))).scalar_one()
            learner = (await conn.execute(text("SELECT md5('bu' || 7)::uuid"))).scalar_one()
            # Learner 7's conversation about exercise 7.
            conversation = (await conn.execute(text("SELECT md5('bc' || 7)::uuid"))).scalar_one()
            count = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM submissions WHERE user_id IN (SELECT user_id FROM "
                        "class_memberships WHERE class_id = :c AND role = 'learner')"
                    ),
                    {"c": class_id},
                )
            ).scalar_one()
        settings = Settings(
            env="test", database_url=db_url, secret_key="bench-secret-key-" + "x" * 32,
            log_level="WARNING", _env_file=None,
        )  # fmt: skip
        res = Resources.from_settings(settings, engine=engine)
        await res.start()
        async with res.session_factory() as session:
            user = await session.get(User, uuid.UUID(str(instructor_id)))
            assert user is not None
            tokens = await auth_service.open_session(session, res, user, user_agent="bench")
            await session.commit()
        headers = {"Authorization": f"Bearer {tokens.access_token}"}
        app = create_app(resources=res)
        # As `koan serve` does once started (app.py): what lives as long as the process is
        # kept out of the collector's sight.
        gc.collect()
        gc.freeze()
        transport = httpx.ASGITransport(app=app)
        slow: list[tuple[float, str]] = []
        if PROFILE:
            from sqlalchemy import event

            def before(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
                conn.info["t"] = time.perf_counter()

            def after(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
                slow.append(((time.perf_counter() - conn.info["t"]) * 1000, statement[:160]))

            event.listen(engine.sync_engine, "before_cursor_execute", before)
            event.listen(engine.sync_engine, "after_cursor_execute", after)
        rows = []
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for label, path in PAGES:
                full = f"/api/v1/classes/{class_id}/" + path.format(
                    learner=learner, conversation=conversation
                )
                slow.clear()
                started = time.perf_counter()
                first = await client.get(full, headers=headers)
                if PROFILE:
                    print(label, round((time.perf_counter() - started) * 1000), "ms")
                    for ms, sql in sorted(slow, reverse=True)[:4]:
                        print(f"   {ms:8.1f} {sql!r}")
                assert first.status_code == 200, (full, first.text[:300])
                times = []
                backends = await backend_pids(admin, name)
                app_before, db_before = time.process_time(), database_cpu(backends)
                for _ in range(runs):
                    started = time.perf_counter()
                    r = await client.get(full, headers=headers)
                    times.append((time.perf_counter() - started) * 1000)
                    assert r.status_code == 200
                app_ms = (time.process_time() - app_before) * 1000 / runs
                db_ms = (database_cpu(backends) - db_before) * 1000 / runs
                rows.append((label, statistics.median(times), percentile(times, 95), app_ms, db_ms))
        await res.close()
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
    worst = max(row[2] for row in rows)
    lines = [
        "| page | median ms | p95 ms | CPU ms per request: Koan | PostgreSQL |",
        "|---|---|---|---|---|",
        *[
            f"| {label} | {median:.1f} | {p95:.1f} | {app:.1f} | {db:.1f} |"
            for label, median, p95, app, db in rows
        ],
    ]
    load = " / ".join(f"{a:.1f}" for a in load_before)
    load_end = " / ".join(f"{a:.1f}" for a in os.getloadavg())
    body = (
        f"`.venv/bin/python bench/class_dashboard.py --runs {runs} --write`: one class of "
        f"{LEARNERS} learners, {EXERCISES} exercises in {ASSIGNMENTS} assignments (one "
        f"adaptive, {PICKS} picks per learner), {count} submissions of its learners (and "
        f"{OTHER_CLASSES} other classes of the same size in the database), PostgreSQL on "
        f"loopback; each page asked {runs} times, one at a time, through the whole app in "
        "process (authentication, queries, JSON or CSV).\n\n"
        + "\n".join(lines)
        + f"\n\nTarget: every page under {TARGET_MS:.0f} ms; worst p95 {worst:.1f} ms "
        f"({'met' if worst < TARGET_MS else 'NOT met'}). Load average (1, 5, 15 min) at the "
        f"start {load}, at the end {load_end}: the CPU columns (this process, and the database "
        "server's backends serving it, over all runs of a page) are what a page costs "
        "whatever else the machine is doing."
    )
    print(body)
    if write:
        write_section("Class dashboard", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print each page's slowest SQL")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.runs, args.write))
