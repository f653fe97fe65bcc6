"""What learners and administrators see of the tutor's usage, through HTTP and the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from koan.cli import app as cli
from koan.db import create_engine, create_session_factory
from koan.migrate import upgrade
from koan.models import LLMCall, User
from koan.resources import Resources
from koan.tutor_gateway.budgets import utc_day
from tests.chat.helpers import ask, new_conversation
from tests.fixtures.factories import create_user
from tests.fixtures.llm_server import FakeLLMServer, Reply

Tutor = Callable[..., Resources]


def call(
    user: User | None, days_ago: int, cost: str, purpose: str = "chat", **kw: object
) -> LLMCall:
    day = utc_day(datetime.now(UTC)) - timedelta(days=days_ago)
    return LLMCall(
        user_id=user.id if user else None, purpose=purpose, provider="openai",
        model="tutor-test", cost_usd=Decimal(cost), input_tokens=100, output_tokens=10,
        day=day, **kw,
    )  # fmt: skip


async def test_a_learner_sees_today_against_the_budget_and_the_last_30_days(
    client: httpx.AsyncClient,
    session: AsyncSession,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    session.add_all(
        [call(learner, 3, "0.05"), call(learner, 3, "0.01", "hint"), call(learner, 40, "9")]
    )
    await session.flush()
    llm_server.script(Reply(text="Hm?", input_tokens=1000, output_tokens=500))
    conversation_id = await new_conversation(client, headers)
    await ask(client, headers, conversation_id, "hello")

    me = (await client.get("/api/v1/users/me/usage", headers=headers)).json()
    assert me["spent_usd"] == "0.150000"
    assert me["budget_usd"] == "0.500000"
    assert me["remaining_usd"] == "0.350000"
    assert me["calls_by_purpose"] == {"chat": 1, "hint": 0, "generation": 0}
    tomorrow = date.fromisoformat(me["day"]) + timedelta(days=1)
    assert me["resets_at"] in (f"{tomorrow}T00:00:00Z", f"{tomorrow}T00:00:00+00:00")
    days = [(d["spent_usd"], d["calls"]) for d in me["last_30_days"]]
    assert days == [("0.150000", 1), ("0.060000", 2)]  # the 40-day-old call is out of range
    assert (await client.get("/api/v1/users/me/usage")).status_code == 401


async def test_administrators_page_through_everyones_usage(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    other = await create_user(session, resources)
    session.add_all(
        [
            call(learner, 0, "0.10"), call(learner, 0, "0.02", cache_hit=True),
            call(learner, 1, "0.03", leak_caught=True), call(other, 0, "0.07"),
            call(None, 2, "0.01"),  # an account deleted since
        ]
    )  # fmt: skip
    await session.flush()
    assert (await client.get("/api/v1/admin/usage", headers=headers)).status_code == 403

    rows: list[dict[str, object]] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (
            await client.get("/api/v1/admin/usage", headers=admin_headers, params=params)
        ).json()
        rows += page["items"]
        assert page["total_cost_usd"] == "0.230000"
        cursor = page["next_cursor"]
        if not cursor:
            break
    mine = [r for r in rows if r["user_id"] == str(learner.id)]
    assert [(r["cost_usd"], r["calls"], r["cache_hits"], r["leaks_caught"]) for r in mine] == [
        ("0.120000", 2, 1, 0), ("0.030000", 1, 0, 1),
    ]  # fmt: skip
    assert mine[0]["email"] == learner.email
    assert mine[0]["budget_usd"] == "0.500000"
    assert {r["email"] for r in rows} == {learner.email, other.email, None}
    assert len(rows) == 4
    assert [r["day"] for r in rows] == sorted((r["day"] for r in rows), reverse=True)

    only = await client.get(
        "/api/v1/admin/usage", headers=admin_headers, params={"user_id": str(other.id)}
    )
    assert [r["cost_usd"] for r in only.json()["items"]] == ["0.070000"]
    bad = await client.get("/api/v1/admin/usage", headers=admin_headers, params={"cursor": "%%"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "BadCursor"


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'koan.db'}"
    monkeypatch.setenv("KOAN_DATABASE_URL", url)
    monkeypatch.setenv("KOAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    # The CLI's console was sized when first imported; give it room for the table.
    monkeypatch.setattr("koan.cli.common.console", Console(width=200))
    upgrade(url)
    return url


def test_usage_report_prints_a_table_per_learner_per_day(cli_db: str) -> None:
    async def seed() -> None:
        engine = create_engine(cli_db)
        async with create_session_factory(engine)() as session:
            user = User(email="ada@example.com", name="Ada", password_hash="x", preferences={})
            session.add(user)
            await session.flush()
            session.add_all([call(user, 0, "0.25"), call(user, 0, "0.5"), call(user, 1, "0.125")])
            await session.commit()
        await engine.dispose()

    asyncio.run(seed())
    result = CliRunner().invoke(cli, ["usage", "report", "--days", "7"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "ada@example.com" in line]
    assert len(lines) == 2
    assert "0.7500" in lines[0]
    assert "0.1250" in lines[1]
    assert "0.8750" in result.output  # the total

    nobody = CliRunner().invoke(cli, ["usage", "report", "--user", "nobody@example.com"])
    assert nobody.exit_code == 1
    assert "No account" in nobody.output


def test_usage_report_keeps_whole_columns_when_piped(
    cli_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_email = "a.very.long.address.for.a.learner@classroom.example.com"

    async def seed() -> None:
        engine = create_engine(cli_db)
        async with create_session_factory(engine)() as session:
            user = User(email=long_email, name="Long", password_hash="x", preferences={})
            session.add(user)
            await session.flush()
            session.add(call(user, 0, "0.25"))
            await session.commit()
        await engine.dispose()

    asyncio.run(seed())
    monkeypatch.setattr("koan.cli.common.console", Console(width=40))  # narrow, and not a terminal
    result = CliRunner().invoke(cli, ["usage", "report", "--days", "7"])
    assert result.exit_code == 0, result.output
    header, row, total = result.output.splitlines()
    assert header.split("\t")[:3] == ["day (UTC)", "learner", "calls"]
    assert row.split("\t")[1] == long_email
    assert row.split("\t")[-1] == "0.2500"
    assert total.split("\t")[0] == "total"
