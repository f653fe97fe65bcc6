"""`koan users`: accounts, as an operator manages them."""

from __future__ import annotations

import asyncio
import getpass
import sys
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from koan.cli.common import console, err_console, print_rows, with_session
from koan.config import Settings

app = typer.Typer(help="User accounts.", no_args_is_help=True)


class Role(StrEnum):
    learner = "learner"
    admin = "admin"


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


Who = Annotated[str, typer.Argument(help="The account's email address or id.")]


def _when(moment: datetime | None, never: str = "never") -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else never


ROLE_NAMES = {"admin": "administrator", "learner": "learner"}


@app.command("list")
def users_list(
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Part of the email address or name.")
    ] = None,
    role: Annotated[Role | None, typer.Option(help="Only this role.")] = None,
    disabled: Annotated[
        bool | None,
        typer.Option("--disabled/--enabled", help="Only disabled (or only enabled) accounts."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many.")] = 200,
) -> None:
    """Accounts, newest first: a table on a terminal, tab-separated when piped."""
    from koan.users import admin

    async def work(session: Any, res: Any) -> Any:
        return await admin.list_accounts(
            session,
            text=search,
            role=role.value if role else None,
            disabled=disabled,
            limit=limit,
        )

    page = asyncio.run(with_session(work))
    if not page.items:
        console.print("No account matches." if page.total == 0 else "No more accounts.")
        return
    columns = ("email", "name", "role", "verified", "status", "created (UTC)", "last active (UTC)")
    rows = [
        (
            row.user.email,
            row.user.name,
            row.user.role,
            "yes" if row.user.email_verified else "no",
            "disabled" if row.user.disabled else "active",
            _when(row.user.created_at),
            _when(row.last_seen_at),
        )
        for row in page.items
    ]
    print_rows(columns, rows, title=f"{page.total} accounts")
    if page.total > len(rows):
        err_console.print(
            f"Showing the newest {len(rows)} of {page.total} matching accounts; "
            "narrow with --search, --role or --disabled, or raise --limit.",
            markup=False,
            soft_wrap=True,
        )


@app.command("show")
def users_show(who: Who) -> None:
    """One account: its role, status, profile, last activity and classes."""
    from koan.classes import service as classes
    from koan.onboarding import service as profiles
    from koan.users import admin

    async def work(session: Any, res: Any) -> list[tuple[str, str]]:
        user = await admin.find(session, who)
        profile = await profiles.profile_of(session, user)
        rooms = await classes.my_classes(session, res, user)
        seen = await admin.last_seen(session, user)
        status = f"disabled since {_when(user.disabled_at)} UTC" if user.disabled else "active"
        learner = [
            f"language {profile.language}",
            f"experience {profile.experience or '-'}",
            f"{profile.minutes_per_day} minutes a day" if profile.minutes_per_day else "",
            f"goals: {profile.goals}" if profile.goals else "",
        ]
        return [
            ("name", user.name),
            ("email", user.email + ("" if user.email_verified else " (not verified)")),
            ("id", str(user.id)),
            ("role", ROLE_NAMES.get(user.role, user.role)),
            ("status", status),
            ("created", f"{_when(user.created_at)} UTC"),
            ("last active", _when(seen, "never logged in") + (" UTC" if seen else "")),
            ("time zone", user.timezone),
            ("onboarding", "done" if profile.onboarding_completed else "not done"),
            ("profile", ", ".join(part for part in learner if part) if profile.language else "-"),
            ("classes", "; ".join(f"{c.name} ({c.role})" for c in rooms) or "none"),
        ]

    for label, value in asyncio.run(with_session(work)):
        typer.echo(f"{label + ':':<13}{value}")


@app.command("disable")
def users_disable(who: Who) -> None:
    """Disable an account: its sessions end at once and it cannot log in."""
    from koan.users import admin

    async def work(session: Any, res: Any) -> tuple[str, bool]:
        user = await admin.find(session, who)
        return user.email, await admin.disable(session, res, user)

    email, changed = asyncio.run(with_session(work, commit=True))
    if changed:
        console.print(
            f"Disabled {email}: its sessions have ended and it cannot log in "
            "(`koan users enable` undoes this).",
            markup=False,
            soft_wrap=True,
        )
    else:
        console.print(f"{email} was already disabled.", markup=False, soft_wrap=True)


@app.command("enable")
def users_enable(who: Who) -> None:
    """Let a disabled account log in again."""
    from koan.users import admin

    async def work(session: Any, res: Any) -> tuple[str, bool]:
        user = await admin.find(session, who)
        return user.email, await admin.enable(session, user)

    email, changed = asyncio.run(with_session(work, commit=True))
    message = f"Enabled {email}: it can log in again." if changed else f"{email} is not disabled."
    console.print(message, markup=False, soft_wrap=True)


def _set_role(who: str, role: str) -> None:
    from koan.users import admin

    async def work(session: Any, res: Any) -> tuple[str, bool]:
        user = await admin.find(session, who)
        return user.email, await admin.set_role(session, user, role)

    email, changed = asyncio.run(with_session(work, commit=True))
    name = ROLE_NAMES[role]
    article = "an" if name[0] in "aeiou" else "a"
    said = (
        f"{email} is now {article} {name}." if changed else f"{email} is already {article} {name}."
    )
    console.print(said, markup=False, soft_wrap=True)


@app.command("promote")
def users_promote(who: Who) -> None:
    """Make an account an administrator."""
    _set_role(who, "admin")


@app.command("demote")
def users_demote(who: Who) -> None:
    """Make an administrator a learner again."""
    _set_role(who, "learner")
