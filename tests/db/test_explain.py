"""The hot queries use their indexes on tables of a realistic size (PostgreSQL query plans).

Tables are filled with generate_series inside the test's transaction (rolled back at the end),
ANALYZEd, and each query is the one the repository really sends: it is captured while the
repository function runs, then EXPLAINed with the same parameters. A sequential scan of a big
table, or a plan that ignores the index the query was written for, fails the test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from koan.auth import repository as auth_repository
from koan.chat import repository as chat_repository
from koan.classes import repository as class_repository
from koan.exercises import repository as exercise_repository
from koan.progress import repository as progress_repository
from koan.tutor_gateway import repository as gateway_repository
from koan.tutor_gateway.budgets import day_bounds
from koan.usage import repository as usage_repository
from tests.conftest import DATABASE_URL, Backend

pytestmark = [
    pytest.mark.skipif(not DATABASE_URL, reason="needs PostgreSQL (set KOAN_TEST_DATABASE_URL)"),
    # PostgreSQL only: SQLite's planner is not what production runs.
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
    # One worker seeds the tables once for the whole module (make test: --dist loadgroup).
    pytest.mark.xdist_group("explain"),
]

# Big enough that reading a whole table costs far more than an index probe (so a plan that
# ignores the index shows), small enough to seed in a few seconds on a 2-core CI machine.
USERS = 20_000
EXERCISES = 200
ASSIGNMENTS = 30_000
SUBMISSIONS = 60_000
CONVERSATIONS = 5_000
MESSAGES = 40_000
LLM_CALLS = 30_000
# Classes of 100 learners (class 0 has 300), each with assignments of 10 exercises.
CLASSES = 200
CLASS_ASSIGNMENTS = 5
INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}


def _seed_sql(tag: str) -> list[str]:
    """INSERT ... SELECT generate_series statements; ids are md5-derived so rows can refer to
    each other without a round trip (user i is md5('<tag>u' || i)::uuid, and so on)."""
    u = f"md5('{tag}u' || {{}})::uuid"
    e = f"md5('{tag}e' || {{}})::uuid"
    a = f"md5('{tag}a' || {{}})::uuid"
    c = f"md5('{tag}c' || {{}})::uuid"
    k = f"md5('{tag}k' || {{}})::uuid"
    ka = f"md5('{tag}ka' || {{}})::uuid"
    return [
        f"""INSERT INTO users (id, email, name, password_hash, role, email_verified_at, timezone,
                preferences, created_at, updated_at)
            SELECT {u.format("i")}, '{tag}-' || i || '@example.com', 'Learner ' || i, 'x',
                'learner', now(), 'UTC', '{{}}', now() - i * interval '1 minute', now()
            FROM generate_series(0, {USERS - 1}) AS i""",
        f"""INSERT INTO exercises (id, slug, title, language, difficulty, skills, statement,
                starter_code, solution, tests, hints, source, content_hash, rating,
                rating_attempts, created_at, updated_at)
            SELECT {e.format("i")}, '{tag}-ex-' || i, 'Exercise ' || i,
                CASE WHEN i % 4 = 0 THEN 'javascript' ELSE 'python' END, 1 + i % 5,
                '["functions"]', 'Do it.', '', '', '', '[]', 'imported', md5(i::text), 0, 0,
                now(), now()
            FROM generate_series(0, {EXERCISES - 1}) AS i""",
        # One open daily assignment for a third of the learners, the rest closed.
        f"""INSERT INTO assignments (id, user_id, exercise_id, kind, status, reason, hints_used,
                attempts, assigned_at)
            SELECT {a.format("i")}, {u.format(f"i % {USERS}")}, {e.format(f"i % {EXERCISES}")},
                CASE WHEN i % 5 = 4 THEN 'practice' ELSE 'daily' END,
                CASE WHEN i < {USERS} AND i % 3 = 0 THEN 'assigned'
                     WHEN i % 7 = 0 THEN 'skipped' ELSE 'completed' END,
                '', 0, 1, now() - i * interval '1 minute'
            FROM generate_series(0, {ASSIGNMENTS - 1}) AS i""",
        f"""INSERT INTO submissions (id, user_id, exercise_id, assignment_id, code, status, passed,
                total, tests, stdout, stderr, duration_ms, tier, created_at)
            SELECT md5('{tag}s' || i)::uuid, {u.format(f"(i % {ASSIGNMENTS}) % {USERS}")},
                {e.format(f"(i % {ASSIGNMENTS}) % {EXERCISES}")},
                {a.format(f"i % {ASSIGNMENTS}")}, 'def add(a, b): return a + b',
                CASE WHEN i % 3 = 0 THEN 'passed' ELSE 'failed' END, 1, 4, '[]', '', '', 40,
                'full', now() - i * interval '1 second'
            FROM generate_series(0, {SUBMISSIONS - 1}) AS i""",
        f"""INSERT INTO conversations (id, user_id, exercise_id, title, message_count, created_at,
                updated_at)
            SELECT {c.format("i")}, {u.format(f"i % {USERS}")}, NULL, 'About loops',
                {MESSAGES // CONVERSATIONS}, now() - i * interval '1 minute', now()
            FROM generate_series(0, {CONVERSATIONS - 1}) AS i""",
        f"""INSERT INTO chat_messages (id, conversation_id, seq, role, content, incomplete,
                input_tokens, output_tokens, cost_usd, leak_caught, created_at)
            SELECT md5('{tag}m' || i)::uuid, {c.format(f"i % {CONVERSATIONS}")},
                1 + i / {CONVERSATIONS}, CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END,
                'What does a loop do?', false, 10, 20, 0.0001, false,
                now() - i * interval '1 second'
            FROM generate_series(0, {MESSAGES - 1}) AS i""",
        f"""INSERT INTO llm_calls (id, user_id, purpose, provider, model, input_tokens,
                output_tokens, cost_usd, latency_ms, cache_hit, leak_caught, outcome, day,
                created_at)
            SELECT md5('{tag}l' || i)::uuid, {u.format(f"i % {USERS}")}, 'chat', 'openai', 'gpt',
                100, 50, 0.0002, 300, false, false, 'ok',
                current_date - (i % 60), now() - i * interval '1 minute'
            FROM generate_series(0, {LLM_CALLS - 1}) AS i""",
        f"""INSERT INTO learner_progress (user_id, exercises_completed, attempts,
                first_try_passes, current_streak, longest_streak, last_active_day, level,
                updated_at)
            SELECT {u.format("i")}, 1, 3, 0, i % 7, 7, current_date - (i % 3), 1, now()
            FROM generate_series(0, {USERS - 1}) AS i""",
        f"""INSERT INTO classes (id, name, join_code, timezone, tutor_instructions, tutor_avoid,
                tutor_off, tutor_off_reason, created_at, updated_at)
            SELECT {k.format("i")}, 'Class ' || i, upper(substr(md5('{tag}k' || i), 1, 12)),
                'UTC', '', '[]', false, '', now(), now()
            FROM generate_series(0, {CLASSES - 1}) AS i""",
        # Learner i is in class i / 100; class 0 also has learners 100..299 (300 in all).
        f"""INSERT INTO class_memberships (class_id, user_id, role, joined_at)
            SELECT {k.format("i / 100")}, {u.format("i")}, 'learner', now()
            FROM generate_series(0, {CLASSES * 100 - 1}) AS i
            UNION ALL
            SELECT {k.format("0")}, {u.format("i")}, 'learner', now()
            FROM generate_series(100, 299) AS i""",
        f"""INSERT INTO class_assignments (id, class_id, title, kind, count, opens_at, due_at,
                created_at)
            SELECT {ka.format("i")}, {k.format(f"i / {CLASS_ASSIGNMENTS}")}, 'Week ' || i,
                'exercises', 10, now() - interval '1 day', now() + interval '1 day', now()
            FROM generate_series(0, {CLASSES * CLASS_ASSIGNMENTS - 1}) AS i""",
        f"""INSERT INTO class_assignment_items (id, class_assignment_id, class_id, exercise_id,
                position)
            SELECT md5('{tag}ki' || i)::uuid, {ka.format("i / 10")},
                {k.format(f"i / 10 / {CLASS_ASSIGNMENTS}")}, {e.format(f"i % {EXERCISES}")},
                i % 10
            FROM generate_series(0, {CLASSES * CLASS_ASSIGNMENTS * 10 - 1}) AS i""",
    ]


@dataclass
class Seeded:
    tag: str
    user_id: uuid.UUID
    exercise_id: uuid.UUID
    conversation_id: uuid.UUID
    email: str
    class_id: uuid.UUID


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def explain_connection(backend: Backend) -> AsyncIterator[AsyncConnection]:
    """One connection for the module, in a transaction rolled back at the end: the seeded rows
    are shared by its tests (seeding is the slow part) and never committed."""
    async with backend.engine.connect() as conn:
        transaction = await conn.begin()
        yield conn
        await transaction.rollback()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def seeded(explain_connection: AsyncConnection) -> Seeded:
    connection = explain_connection
    tag = f"x{uuid.uuid4().hex[:8]}"
    try:
        # Foreign keys hold by construction; skipping their triggers makes seeding ~3x faster.
        async with connection.begin_nested():
            await connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
    except Exception:  # not a superuser: seed with the checks on
        pass
    for statement in _seed_sql(tag):
        await connection.exec_driver_sql(statement)
    await connection.exec_driver_sql("SET LOCAL session_replication_role = DEFAULT")
    for table in ("users", "exercises", "assignments", "submissions", "conversations",
                  "chat_messages", "llm_calls", "learner_progress", "classes",
                  "class_memberships", "class_assignments", "class_assignment_items"):  # fmt: skip
        await connection.exec_driver_sql(f"ANALYZE {table}")

    async def one(sql: str) -> Any:
        return (await connection.execute(text(sql))).scalar_one()

    # A learner with an open daily assignment, submissions and a conversation (user 300).
    return Seeded(
        tag=tag,
        user_id=uuid.UUID(str(await one(f"SELECT md5('{tag}u' || 300)::uuid"))),
        exercise_id=uuid.UUID(str(await one(f"SELECT md5('{tag}e' || 100)::uuid"))),
        conversation_id=uuid.UUID(str(await one(f"SELECT md5('{tag}c' || 300)::uuid"))),
        email=f"{tag}-300@example.com",
        class_id=uuid.UUID(str(await one(f"SELECT md5('{tag}k' || 0)::uuid"))),
    )


@dataclass
class Plan:
    sql: str
    tree: dict[str, Any]

    def nodes(self) -> Iterator[dict[str, Any]]:
        stack = [self.tree]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.get("Plans", []))

    def index_scans(self, table: str) -> set[str]:
        return {
            str(n.get("Index Name"))
            for n in self.nodes()
            if n["Node Type"] in INDEX_SCANS and n.get("Relation Name", table) == table
        }

    def seq_scans(self) -> set[str]:
        return {str(n.get("Relation Name")) for n in self.nodes() if n["Node Type"] == "Seq Scan"}

    def __str__(self) -> str:
        return f"{self.sql}\n{json.dumps(self.tree, indent=1)}"


async def explain_repository_call(
    connection: AsyncConnection, call: Callable[[AsyncSession], Awaitable[object]]
) -> list[Plan]:
    """Run `call` with a session on the test's connection, capture every statement it sends,
    and return the plan PostgreSQL makes for each, with the same parameters."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    sync_conn = connection.sync_connection
    assert sync_conn is not None
    event.listen(sync_conn, "before_cursor_execute", capture)
    try:
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint")
        async with session:
            await call(session)
    finally:
        event.remove(sync_conn, "before_cursor_execute", capture)
    plans = []
    for statement, parameters in captured:
        if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
            continue  # SAVEPOINT and friends
        result = await connection.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + statement, tuple(parameters or ())
        )
        raw = result.scalar_one()
        document = json.loads(raw) if isinstance(raw, str) else raw
        plans.append(Plan(statement, document[0]["Plan"]))
    assert plans, "the repository call sent no SELECT"
    return plans


def assert_uses_index(plan: Plan, table: str, indexes: set[str]) -> None:
    assert table not in plan.seq_scans(), f"sequential scan of {table}:\n{plan}"
    used = plan.index_scans(table)
    assert used & indexes, f"expected {table} read through {indexes}, got {used or 'none'}:\n{plan}"


async def test_login_finds_the_user_by_email_through_the_unique_index(
    explain_connection: AsyncConnection, seeded: Seeded
) -> None:
    (plan,) = await explain_repository_call(
        explain_connection, lambda s: auth_repository.user_by_email(s, seeded.email)
    )
    assert_uses_index(plan, "users", {"uq_users_email"})


async def test_the_open_daily_assignment_comes_from_an_index_not_a_scan(
    explain_connection: AsyncConnection, seeded: Seeded
) -> None:
    plans = await explain_repository_call(
        explain_connection, lambda s: exercise_repository.open_daily(s, seeded.user_id)
    )
    # The partial unique index (one open daily per learner) answers it; the (user, status)
    # index would be as good, and is what a generic plan (parameters unknown) can use.
    assert_uses_index(
        plans[0], "assignments", {"uq_assignments_open_daily", "ix_assignments_user_status"}
    )
    # selectinload's second query: the assignment's exercise by primary key.
    assert_uses_index(plans[1], "exercises", {"pk_exercises"})


async def test_a_learners_submissions_for_an_exercise_come_newest_first_from_the_index(
    explain_connection: AsyncConnection, seeded: Seeded
) -> None:
    (plan,) = await explain_repository_call(
        explain_connection,
        lambda s: exercise_repository.submissions(
            s, seeded.user_id, seeded.exercise_id, before=None, limit=20
        ),
    )
    assert_uses_index(plan, "submissions", {"ix_submissions_user_exercise_created"})
    # The next page: after the last one shown, by its time and id.
    before = (datetime.now(UTC), uuid.uuid4())
    (paged,) = await explain_repository_call(
        explain_connection,
        lambda s: exercise_repository.submissions(
            s, seeded.user_id, seeded.exercise_id, before=before, limit=20
        ),
    )
    assert_uses_index(paged, "submissions", {"ix_submissions_user_exercise_created"})


async def test_a_learners_assignments_are_read_through_a_user_index(
    explain_connection: AsyncConnection, seeded: Seeded
) -> None:
    plans = await explain_repository_call(
        explain_connection,
        lambda s: exercise_repository.assignments(
            s,
            seeded.user_id,
            status=None,
            skipped_since=datetime.now(UTC),
            before=None,
            limit=20,
        ),  # fmt: skip
    )
    assert_uses_index(
        plans[0],
        "assignments",
        {"ix_assignments_user_status", "ix_assignments_user_exercise", "uq_assignments_open_daily"},
    )


async def test_conversation_messages_are_paged_through_the_sequence_index(
    explain_connection: AsyncConnection, seeded: Seeded
) -> None:
    for before_seq in (None, 5):
        (plan,) = await explain_repository_call(
            explain_connection,
            lambda s, b=before_seq: chat_repository.messages_before(
                s, seeded.conversation_id, before_seq=b, limit=50
            ),
        )
        assert_uses_index(plan, "chat_messages", {"uq_chat_messages_conversation_id_seq"})


async def test_a_learners_conversations_are_listed_through_their_index(
    explain_connection: AsyncConnection, seeded: Seeded
) -> None:
    (plan,) = await explain_repository_call(
        explain_connection,
        lambda s: chat_repository.conversations(s, seeded.user_id, before=None, limit=20),
    )
    assert_uses_index(plan, "conversations", {"ix_conversations_user_updated"})


async def test_usage_per_learner_per_day_reads_the_user_day_index(
    explain_connection: AsyncConnection, seeded: Seeded
) -> None:
    today = date.today()
    (spent,) = await explain_repository_call(
        explain_connection, lambda s: gateway_repository.spent_on(s, today, seeded.user_id)
    )
    assert_uses_index(spent, "llm_calls", {"ix_llm_calls_user_day"})
    (purposes,) = await explain_repository_call(
        explain_connection, lambda s: usage_repository.calls_by_purpose(s, seeded.user_id, today)
    )
    assert_uses_index(purposes, "llm_calls", {"ix_llm_calls_user_day"})
    (history,) = await explain_repository_call(
        explain_connection, lambda s: usage_repository.daily_totals(s, seeded.user_id, today)
    )
    assert_uses_index(history, "llm_calls", {"ix_llm_calls_user_day"})
    # The site-wide total of one day (the global budget) has an index of its own.
    (site,) = await explain_repository_call(
        explain_connection, lambda s: gateway_repository.spent_on(s, today, None)
    )
    assert_uses_index(site, "llm_calls", {"ix_llm_calls_day"})


# Every table a class dashboard reads, seeded above at a size where a full read shows.
CLASS_READS = {
    "users", "exercises", "submissions", "assignments", "conversations", "chat_messages",
    "llm_calls", "learner_progress", "class_memberships", "class_assignments",
    "class_assignment_items",
}  # fmt: skip


async def test_every_class_dashboard_query_reads_through_indexes(
    explain_connection: AsyncConnection, seeded: Seeded
) -> None:
    class_id, user_id = seeded.class_id, seeded.user_id
    now = datetime.now(UTC)
    session = AsyncSession(bind=explain_connection, join_transaction_mode="create_savepoint")
    learners = await class_repository.learner_ids(session, class_id)
    exercises = await class_repository.exercise_ids(session, class_id)
    assert (len(learners), len(exercises)) == (300, 50)
    work_set = class_repository.work_set
    calls: dict[str, Callable[[AsyncSession], Awaitable[object]]] = {
        "member_of": lambda s: class_repository.class_and_membership(s, class_id, user_id),
        "members": lambda s: class_repository.members(s, class_id, role="learner"),
        "member": lambda s: class_repository.member(s, class_id, user_id),
        "learner_ids": lambda s: class_repository.learner_ids(s, class_id),
        "exercise_ids": lambda s: class_repository.exercise_ids(s, class_id),
        "class_assignments": lambda s: class_repository.class_assignments(s, class_id),
        "due_times": lambda s: class_repository.due_times(s, class_id, user_id),
        "work_by_group": lambda s: exercise_repository.work_by_group(
            s, learners, exercises, work_set(class_id)
        ),
        "work_by_group, open now": lambda s: exercise_repository.work_by_group(
            s, learners, exercises, work_set(class_id, open_at=now)
        ),
        "groups_done_by_learner": lambda s: exercise_repository.groups_done_by_learner(
            s, learners, exercises, work_set(class_id, opened_by=now)
        ),
        "work_by_learner": lambda s: exercise_repository.work_by_learner(s, learners, exercises),
        "work_by_exercise": lambda s: exercise_repository.work_by_exercise(s, learners, exercises),
        "common_failures": lambda s: exercise_repository.common_failures(s, learners, exercises),
        "hints_by_learner": lambda s: exercise_repository.hints_by_learner(s, learners, exercises),
        "hints_by_exercise": lambda s: exercise_repository.hints_by_exercise(
            s, learners, exercises
        ),
        "failing_without_pass": lambda s: exercise_repository.failing_without_pass(
            s, learners, exercises, since=now - timedelta(hours=1), at_least=3
        ),
        "ladders_used_up": lambda s: exercise_repository.ladders_used_up(s, learners, exercises),
        "titles": lambda s: exercise_repository.titles(s, exercises),
        "submissions_to": lambda s: exercise_repository.submissions_to(
            s, user_id, exercises, before=None, limit=20
        ),
        "learner_work": lambda s: exercise_repository.learner_work(s, user_id, exercises),
        "questions_by_learner": lambda s: chat_repository.questions_by_learner(
            s, learners, exercises
        ),
        "conversations_about": lambda s: chat_repository.conversations_about(s, user_id, exercises),
        "current_streaks": lambda s: progress_repository.progress_of_many(s, learners),
        "spent_on_exercises": lambda s: gateway_repository.spent_on_exercises(
            s, day_bounds(now.date(), "Europe/Paris"), learners, exercises
        ),
        "classes_of": lambda s: class_repository.classes_of(s, user_id),
        "tutor policy": lambda s: class_repository.classes_ruling_tutor(
            s, user_id, seeded.exercise_id, now
        ),
        "tutor policy, no exercise": lambda s: class_repository.classes_ruling_tutor(
            s, user_id, None, now
        ),
        "daily exclusion": lambda s: class_repository.open_class_exercise_ids(s, user_id, now),
    }
    # The aggregates over many learners' work read it through an index written for it.
    submissions = ("submissions", {"ix_submissions_user_exercise_created"})
    hints = ("assignments", {"ix_assignments_user_exercise"})
    expected: dict[str, tuple[str, set[str]]] = {
        "work_by_group": submissions,
        "groups_done_by_learner": submissions,
        "work_by_learner": submissions,
        "work_by_exercise": submissions,
        "failing_without_pass": submissions,
        "hints_by_learner": hints,
        "hints_by_exercise": hints,
        "ladders_used_up": hints,
        "questions_by_learner": ("conversations", {"ix_conversations_user_updated"}),
        # The learners' calls of the day, or the day's calls: whichever is fewer.
        "spent_on_exercises": ("llm_calls", {"ix_llm_calls_user_day", "ix_llm_calls_day"}),
    }
    problems = []
    # A class of 300 is 1.5% of this seeded user base, where reading a small table whole is
    # the planner's right choice; on a real server's tables it is not. What must hold at any
    # size is that an index serves every query: with sequential scans priced out, a plan
    # that still scans a table has no index to use.
    await explain_connection.exec_driver_sql("SET enable_seqscan = off")
    try:
        for name, call in calls.items():
            for plan in await explain_repository_call(explain_connection, call):
                scanned = plan.seq_scans() & CLASS_READS
                if scanned:
                    problems.append(f"{name}: sequential scan of {scanned}:\n{plan}")
                if name in expected:
                    table, indexes = expected[name]
                    if not plan.index_scans(table) & indexes:
                        problems.append(f"{name}: {table} not read through {indexes}:\n{plan}")
    finally:
        await explain_connection.exec_driver_sql("RESET enable_seqscan")
    assert not problems, "\n\n".join(problems)
