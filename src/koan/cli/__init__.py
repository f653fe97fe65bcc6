"""The `koan` command line: one module per command group."""

from __future__ import annotations

import os
from typing import Any

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from koan.cli import classes, db, exercises, mail, server, usage, users
from koan.cli.common import fail
from koan.config import Settings, settings_problem
from koan.llm.errors import LLMConfigError


class _Koan(TyperGroup):
    """The root group: refuses arguments that are not text before any command reads them."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Bytes that are not UTF-8 (a terminal set to another encoding) reach Python as lone
        # surrogates, which no database accepts: said here, not as a database failure. A path
        # that exists is bytes to the system, and is let through.
        for arg in args:
            if any("\udc80" <= ch <= "\udcff" for ch in arg) and not os.path.lexists(arg):
                shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                raise typer.BadParameter(
                    f"{shown!r} is not UTF-8 text: set the terminal's encoding to UTF-8."
                )
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        # Every command reads the settings: a KOAN_* value of the wrong kind is said in one
        # line naming the variable, not as the traceback of the first command to read it.
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            if exc.title != Settings.__name__:
                raise
            fail(settings_problem(exc))
        except LLMConfigError as exc:
            # A tutor set up in a way that cannot work (no key, a missing price table) is
            # found when the resources are built, which every command and worker does.
            fail(f"Invalid settings: KOAN_LLM_*: {exc}.")


app = typer.Typer(cls=_Koan, help="Koan: a self-hosted AI coding tutor.", no_args_is_help=True)
app.command()(server.serve)
app.add_typer(db.app, name="db")
app.add_typer(exercises.app, name="exercises")
app.add_typer(users.app, name="users")
app.add_typer(mail.app, name="mail")
app.add_typer(usage.app, name="usage")
app.add_typer(classes.app, name="classes")
