"""The `koan` command line."""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from koan.config import Settings

app = typer.Typer(help="Koan: a self-hosted AI coding tutor.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
mail_app = typer.Typer(help="The development outbox.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(mail_app, name="mail")

console = Console()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve Koan over HTTP."""
    import uvicorn

    settings = Settings()
    console.print(f"Koan ({settings.env}) on http://{host}:{port}")
    uvicorn.run(
        "koan.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        proxy_headers=True,
        log_level=settings.log_level.lower(),
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the migrations up to REVISION (default: the newest)."""
    from koan.migrate import upgrade

    settings = Settings()
    if settings.effective_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url, revision)
    console.print("Database is up to date.")


@users_app.command("create")
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

    from koan.auth.passwords import password_problem
    from koan.auth.schemas import RegisterInput

    if password is None:
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
    from koan.models import LearnerProfile, User
    from koan.resources import Resources

    assert isinstance(data, RegisterInput)
    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            if await repository.user_by_email(session, data.email):
                console.print(f"[red]An account with {data.email} already exists.[/red]")
                raise typer.Exit(1)
            user = User(
                email=data.email,
                name=data.name,
                password_hash=await res.hasher.hash(data.password),
                role="admin" if admin else "learner",
                email_verified_at=res.clock.now(),
            )
            session.add(user)
            session.add(LearnerProfile(user=user))
            await session.commit()
            console.print(f"Created {'administrator' if admin else 'learner'} {data.email}.")
    finally:
        await res.close()


@mail_app.command("list")
def mail_list(
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    to: Annotated[str | None, typer.Option(help="Only mail to this address.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Print each mail's body.")] = False,
) -> None:
    """Show the mails stored in the development outbox (used when no SMTP host is set)."""
    asyncio.run(_mail_list(limit, to, full))


async def _mail_list(limit: int, to: str | None, full: bool) -> None:
    from koan.models import OutboxMail
    from koan.resources import Resources

    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            query = select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)
            if to:
                query = query.where(OutboxMail.to_address == to.strip().lower())
            mails = (await session.execute(query)).scalars().all()
    finally:
        await res.close()
    if not mails:
        console.print("The outbox is empty.")
        return
    if full:
        for mail in mails:
            console.rule(f"#{mail.id} {mail.created_at:%Y-%m-%d %H:%M} to {mail.to_address}")
            console.print(f"Subject: {mail.subject}\n\n{mail.body}", markup=False)
        return
    table = Table("id", "sent (UTC)", "to", "subject")
    for mail in mails:
        table.add_row(str(mail.id), f"{mail.created_at:%Y-%m-%d %H:%M}", mail.to_address, mail.subject)
    console.print(table)


if __name__ == "__main__":
    app()
