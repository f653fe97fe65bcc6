"""`koan users`: accounts, as an operator manages them."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import Annotated

import typer

from koan.cli.common import console
from koan.config import Settings

app = typer.Typer(help="User accounts.", no_args_is_help=True)


@app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Email address (marked verified).")],
    name: Annotated[str, typer.Option(help="Display name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make an administrator.")] = False,
    password: Annotated[
        str | None,
        typer.Option(envvar="KOAN_NEW_USER_PASSWORD", help="Password (asked when left out)."),
    ] = None,
) -> None:
    """Create a verified account (e.g. the first administrator)."""
    from pydantic import ValidationError

    from koan.auth.schemas import RegisterInput
    from koan.security import password_problem

    if password is None:
        if not sys.stdin.isatty():
            # getpass would fail with a bare "Aborted." where no one can type.
            console.print(
                "[red]No password given and no terminal to ask for one.[/red] Pass it with "
                "--password or the KOAN_NEW_USER_PASSWORD environment variable, e.g.\n"
                "  KOAN_NEW_USER_PASSWORD='a long passphrase' koan users create "
                "--email ... --name ..."
            )
            raise typer.Exit(2)
        password = getpass.getpass("Password: ")
    try:
        data = RegisterInput(email=email, name=name, password=password)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc.errors()[0]["msg"])) from exc
    problem = password_problem(password, email=data.email)
    if problem:
        raise typer.BadParameter(problem)
    asyncio.run(_create_user(data, admin))


async def _create_user(data: object, admin: bool) -> None:
    from koan.auth import repository
    from koan.auth.schemas import RegisterInput
    from koan.resources import Resources
    from koan.users import service as users

    assert isinstance(data, RegisterInput)
    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            if await repository.user_by_email(session, data.email):
                console.print(f"[red]An account with {data.email} already exists.[/red]")
                raise typer.Exit(1)
            await users.create_user(
                session,
                email=data.email,
                name=data.name,
                password_hash=await res.hasher.hash(data.password),
                role="admin" if admin else "learner",
                email_verified_at=res.clock.now(),
            )
            await session.commit()
            console.print(f"Created {'administrator' if admin else 'learner'} {data.email}.")
    finally:
        await res.close()
