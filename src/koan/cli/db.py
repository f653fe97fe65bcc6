"""`koan db`: the database schema."""

from __future__ import annotations

from typing import Annotated

import typer

from koan.cli.common import console, database_errors, fail
from koan.config import Settings

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the migrations up to REVISION (default: the newest)."""
    import asyncio

    from alembic.util import CommandError

    from koan.migrate import current_revision, is_known, upgrade

    settings = Settings()
    if settings.effective_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    with database_errors():
        try:
            upgrade(settings.effective_database_url, revision)
        except CommandError as exc:
            current = asyncio.run(current_revision(settings.effective_database_url))
            if current is not None and not is_known(current):
                fail(
                    f"The database is at revision {current}, which this Koan's migrations do "
                    "not include: it was migrated by a newer release. Install that release "
                    "(or newer) to use it."
                )
            fail(f"Cannot upgrade to {revision!r}: {exc}.")
    console.print("Database is up to date.")
