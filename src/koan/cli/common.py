"""What every command group uses: the console, a unit of work, tables for people or programs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from koan.config import Settings

console = Console()


async def with_session(work: Any, *, commit: bool = False) -> Any:
    """Run `work(session, res)` in one unit of work (committed when `commit`)."""
    from koan.resources import Resources

    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            result = await work(session, res)
            if commit:
                await session.commit()
            return result
    finally:
        await res.close()


def print_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    footer: Sequence[str] | None = None,
) -> None:
    """A table on a terminal; piped or redirected, every column whole and tab-separated (one
    line per row, the header first), for the next program."""
    if not console.is_terminal:
        for line in (columns, *rows, *([footer] if footer else [])):
            typer.echo("\t".join(line))
        return
    table = Table(*columns, title=title)
    for line in rows:
        table.add_row(*line)
    if footer:
        table.add_section()
        table.add_row(*footer)
    console.print(table)
