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
    from alembic.util import CommandError

    from koan.migrate import upgrade

    settings = Settings()
    if settings.effective_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    with database_errors():
        try:
            upgrade(settings.effective_database_url, revision)
        except CommandError as exc:  # a revision Koan does not know
            fail(f"Cannot upgrade to {revision!r}: {exc}.")
    console.print("Database is up to date.")
