"""`koan usage`: what the AI tutor cost, per learner per day."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from koan.cli.common import console, database_errors, print_rows
from koan.config import Settings

app = typer.Typer(help="AI tutor usage and budgets.", no_args_is_help=True)


@app.command("report")
def usage_report(
    days: Annotated[int, typer.Option(min=1, max=366, help="How many UTC days, up to today.")] = 7,
    user: Annotated[str | None, typer.Option(help="Only this learner (email).")] = None,
) -> None:
    """Spending on the AI tutor per learner per day (from the llm_calls records)."""
    with database_errors():
        asyncio.run(_usage_report(days, user))


async def _usage_report(days: int, email: str | None) -> None:
    from datetime import timedelta

    from koan.resources import Resources
    from koan.tutor_gateway.budgets import utc_day
    from koan.usage import repository

    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            user_id = None
            if email:
                found = await repository.user_by_email(session, email)
                if found is None:
                    console.print(f"[red]No account with {email}.[/red]")
                    raise typer.Exit(1)
                user_id = found.id
            until = utc_day(res.clock.now())
            rows = await repository.report(
                session, since=until - timedelta(days=days - 1), until=until, user_id=user_id
            )
    finally:
        await res.close()
    if not rows:
        console.print(f"No AI tutor calls in the last {days} days.")
        return
    columns = (
        "day (UTC)", "learner", "calls", "cached", "leaks caught", "tokens in", "tokens out",
        "cost (USD)",
    )  # fmt: skip
    cells = [
        (
            row.day.isoformat(),
            row.email or "(deleted account)",
            str(row.calls),
            str(row.cache_hits),
            str(row.leaks_caught),
            str(row.input_tokens),
            str(row.output_tokens),
            f"{row.cost_usd:.4f}",
        )
        for row in rows
    ]
    total = sum((row.cost_usd for row in rows), start=rows[0].cost_usd * 0)
    totals = ("total", "", str(sum(r.calls for r in rows)), "", "", "", "", f"{total:.4f}")
    print_rows(columns, cells, title=f"AI tutor usage, last {days} days", footer=totals)
