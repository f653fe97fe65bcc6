"""What every command group uses: the console, a unit of work, tables for people or programs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


@contextmanager
def database_errors() -> Iterator[None]:
    """End the command with one line and status 1, not a traceback, when Koan refuses (an
    unknown account, a rule) or the database cannot be reached, opened or read."""
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from koan.errors import KoanError

    try:
        yield
    except KoanError as exc:
        fail(exc.detail)
    except DBAPIError as exc:
        fail(
            f"The database could not be used ({str(exc.orig).strip()}). Check "
            "KOAN_DATABASE_URL, and that `koan db upgrade` has been run."
        )
    except ArgumentError as exc:
        fail(f"KOAN_DATABASE_URL cannot be used ({exc}).")
    except OSError as exc:
        # A server that refuses the connection or a host name that does not resolve: the
        # driver raises these as they come, not wrapped as database errors.
        fail(
            f"The database could not be reached ({exc.strerror or exc}). Check "
            "KOAN_DATABASE_URL, and that the database server is running."
        )


async def with_session(work: Any, *, commit: bool = False) -> Any:
    """Run `work(session, res)` in one unit of work (committed when `commit`), its failures
    said as `database_errors` says them."""
    # Its session events tell running workers about changed accounts when this commits.
    from koan.auth import snapshots  # noqa: F401
    from koan.cache import SESSION_CACHE
    from koan.db import transactional
    from koan.resources import Resources

    with database_errors():
        res = Resources.from_settings(Settings())
        try:
            async with res.session_factory() as session:
                session.info[SESSION_CACHE] = res.cache
                if not commit:
                    return await work(session, res)
                # Committed as a request's work is, with what must follow the commit.
                async with transactional(session):
                    return await work(session, res)
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
