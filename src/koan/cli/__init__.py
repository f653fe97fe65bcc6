"""The `koan` command line: one module per command group."""

from __future__ import annotations

import typer

from koan.cli import classes, db, exercises, mail, server, usage, users

app = typer.Typer(help="Koan: a self-hosted AI coding tutor.", no_args_is_help=True)
app.command()(server.serve)
app.add_typer(db.app, name="db")
app.add_typer(exercises.app, name="exercises")
app.add_typer(users.app, name="users")
app.add_typer(mail.app, name="mail")
app.add_typer(usage.app, name="usage")
app.add_typer(classes.app, name="classes")
