"""What every command group uses: the console, a unit of work, tables for people or programs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from koan.config import Settings

console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Say what went wrong (in red, to stderr) and end with status 1."""
    err_console.print(message, style="red", markup=False, soft_wrap=True)
    raise typer.Exit(1)


async def with_session(work: Any, *, commit: bool = False) -> Any:
    """Run `work(session, res)` in one unit of work (committed when `commit`). A refusal of
    Koan's (an unknown account, a rule) or a database that cannot be read ends the command
    with its message and status 1, not a traceback."""
    from sqlalchemy.exc import DBAPIError

    # Its session events tell running workers about changed accounts when this commits.
    from koan.auth import snapshots  # noqa: F401
    from koan.cache import SESSION_CACHE
    from koan.db import transactional
    from koan.errors import KoanError
    from koan.resources import Resources

    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            session.info[SESSION_CACHE] = res.cache
            if not commit:
                return await work(session, res)
            # Committed as a request's work is, with what must follow the commit.
            async with transactional(session):
                return await work(session, res)
    except KoanError as exc:
        fail(exc.detail)
    except DBAPIError as exc:
        fail(
            f"The database could not be used ({str(exc.orig).strip()}). Check "
            "KOAN_DATABASE_URL, and that `koan db upgrade` has been run."
        )
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
        # Text, not markup: a learner named "[red]x" is shown as typed.
        table.add_row(*(Text(cell) for cell in line))
    if footer:
        table.add_section()
        table.add_row(*(Text(cell) for cell in footer))
    console.print(table)
