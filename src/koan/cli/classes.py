"""`koan classes`: classes and their members, as an administrator manages them."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from koan.cli.common import console, with_session

app = typer.Typer(help="Classes: create, list, show, add, remove, export.")


async def _class_and_user(session: Any, class_code: str, email: str | None) -> tuple[Any, Any]:
    from koan.classes import repository as classes

    room = await classes.class_by_code(session, class_code.strip().upper())
    if room is None:
        console.print(f"[red]No class has the code {class_code}.[/red]")
        raise typer.Exit(1)
    user = None
    if email is not None:
        user = await classes.user_by_email(session, email.strip().lower())
        if user is None:
            console.print(f"[red]No account has the address {email}.[/red]")
            raise typer.Exit(1)
    return room, user


@app.command("create")
def classes_create(
    name: Annotated[str, typer.Option(help="The class's name.")],
    instructor: Annotated[str, typer.Option(help="Email of the instructor's account.")],
    timezone: Annotated[str, typer.Option(help="IANA time zone of the class.")] = "UTC",
) -> None:
    """Create a class with an instructor (administrators may create classes for anyone)."""
    from pydantic import ValidationError

    from koan.classes import service
    from koan.classes.schemas import ClassCreate

    try:
        data = ClassCreate(name=name, timezone=timezone)
    except ValidationError as exc:
        # Said as the API says it (a blank name, a time zone that is not IANA's), not as
        # a traceback.
        error = exc.errors()[0]
        raise typer.BadParameter(str(error["msg"]), param_hint=f"--{error['loc'][0]}") from exc

    async def work(session: Any, res: Any) -> None:
        user = await _class_user(session, instructor)
        settings = res.settings.model_copy(update={"class_creators": "anyone"})
        res.settings = settings
        room = await service.create_class(session, res, user, data)
        console.print(f"Created {room.name}: join code {room.join_code}.")

    asyncio.run(with_session(work, commit=True))


async def _class_user(session: Any, email: str) -> Any:
    from koan.classes import repository as classes

    user = await classes.user_by_email(session, email.strip().lower())
    if user is None:
        console.print(f"[red]No account has the address {email}.[/red]")
        raise typer.Exit(1)
    return user


@app.command("list")
def classes_list() -> None:
    """Every class with its code and number of members."""
    from koan.classes import repository as classes

    async def work(session: Any, res: Any) -> None:
        table = Table("code", "name", "time zone", "members", "created (UTC)")
        for room in await classes.all_classes(session):
            count = await classes.member_count(session, room.id)
            table.add_row(room.join_code, room.name, room.timezone, str(count),
                          f"{room.created_at:%Y-%m-%d %H:%M}")  # fmt: skip
        console.print(table)

    asyncio.run(with_session(work))


@app.command("show")
def classes_show(code: Annotated[str, typer.Argument(help="The class's join code.")]) -> None:
    """A class's members and their roles."""
    from koan.classes import repository as classes

    async def work(session: Any, res: Any) -> None:
        room, _ = await _class_and_user(session, code, None)
        console.print(f"{room.name} ({room.join_code}, {room.timezone})")
        table = Table("email", "name", "role", "joined (UTC)")
        for membership, user in await classes.members(session, room.id):
            table.add_row(user.email, user.name, membership.role,
                          f"{membership.joined_at:%Y-%m-%d %H:%M}")  # fmt: skip
        console.print(table)

    asyncio.run(with_session(work))


@app.command("add")
def classes_add(
    code: Annotated[str, typer.Argument(help="The class's join code.")],
    email: Annotated[str, typer.Argument(help="Email of the account to add.")],
    role: Annotated[str, typer.Option(help="learner, ta or instructor.")] = "learner",
) -> None:
    """Put an account in a class with a role (or change its role)."""
    from koan.classes import service

    if role not in ("learner", "ta", "instructor"):
        raise typer.BadParameter("role must be learner, ta or instructor")

    async def work(session: Any, res: Any) -> None:
        room, user = await _class_and_user(session, code, email)
        await service.add_member(session, res, room, user, role)
        console.print(f"{user.email} is now {role} in {room.name}.")

    asyncio.run(with_session(work, commit=True))


@app.command("remove")
def classes_remove(
    code: Annotated[str, typer.Argument(help="The class's join code.")],
    email: Annotated[str, typer.Argument(help="Email of the member to remove.")],
) -> None:
    """Take a member out of a class; their own work stays theirs."""
    from koan.classes import service

    async def work(session: Any, res: Any) -> None:
        room, user = await _class_and_user(session, code, email)
        # As an instructor of the class would: a non-member and the class's only
        # instructor are refused with the reason.
        await service.remove_member(session, service.Membership(room, "instructor"), user.id)
        console.print(f"{user.email} has been removed from {room.name}.")

    asyncio.run(with_session(work, commit=True))


@app.command("export")
def classes_export(
    code: Annotated[str, typer.Argument(help="The class's join code.")],
    what: Annotated[str, typer.Option(help="gradebook or roster.")] = "gradebook",
) -> None:
    """Print a class's gradebook (or roster) as CSV."""
    from koan.classes import dashboard
    from koan.classes.service import Membership

    if what not in ("gradebook", "roster"):
        raise typer.BadParameter("what must be gradebook or roster")

    async def work(session: Any, res: Any) -> str:
        room, _ = await _class_and_user(session, code, None)
        member = Membership(room, "instructor")
        if what == "roster":
            table = await dashboard.roster(
                session, member, now=res.clock.now(), sort="name", order="asc"
            )
            return dashboard.roster_csv(table)
        return dashboard.gradebook_csv(await dashboard.gradebook(session, member))

    sys.stdout.write(asyncio.run(with_session(work)))
