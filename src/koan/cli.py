"""The `koan` command line."""

from __future__ import annotations

import asyncio
import getpass
import multiprocessing
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from koan.config import Settings
from koan.db import transactional

if TYPE_CHECKING:
    from koan.exercises.bank import ImportResult
    from koan.exercises.pack import ExerciseSpec, PackEntry
    from koan.exercises.validation import ValidationOutcome

app = typer.Typer(help="Koan: a self-hosted AI coding tutor.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
mail_app = typer.Typer(help="The development outbox.", no_args_is_help=True)
exercises_app = typer.Typer(help="Exercise packs: import, validate, export.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(exercises_app, name="exercises")
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
    if workers > 1:
        from koan.ops.metrics import MULTIPROCESS_ENV, prepare_multiprocess_dir

        # The workers share one port, so a scrape reaches any one of them: they keep their
        # numbers in shared files and every /metrics adds them all up.
        prepare_multiprocess_dir(
            Path(os.environ.get(MULTIPROCESS_ENV) or settings.data_dir / "prometheus")
        )
    console.print(f"Koan ({settings.env}) on http://{host}:{port}")
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        # In-flight gradings and tutor streams get this long after SIGTERM (systemd: 30 s).
        "timeout_graceful_shutdown": 25,
        # Idle client connections stay open 75 s (uvicorn: 5 s), longer than a reverse proxy's
        # upstream idle timeout (nginx and most load balancers: 60 s), so the proxy never
        # sends a request on a connection Koan is closing; a learner's next question also
        # skips the new connection.
        "timeout_keep_alive": 75,
        # Koan believes X-Forwarded-* only from KOAN_TRUSTED_PROXIES (koan.middleware);
        # uvicorn's own handling would trust 127.0.0.1 (or FORWARDED_ALLOW_IPS) instead.
        "proxy_headers": False,
        # Koan logs each request itself, without query strings (they can hold tokens).
        "access_log": False,
        "log_level": settings.log_level.lower(),
    }
    if workers > 1 and not reload and hasattr(socket, "SO_REUSEPORT"):
        raise typer.Exit(serve_reuseport(options, workers))
    uvicorn.run("koan.app:create_app", workers=workers, reload=reload, **options)


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket of this worker's own on a port other workers also listen on."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _reuseport_worker(options: dict[str, Any]) -> None:
    import uvicorn

    sock = reuseport_socket(options["host"], options["port"])
    config = uvicorn.Config("koan.app:create_app", **options)
    uvicorn.Server(config).run(sockets=[sock])


def serve_reuseport(options: dict[str, Any], workers: int) -> int:
    """Run `workers` processes, each accepting on a socket of its own (SO_REUSEPORT).

    With one shared socket (uvicorn's own multi-worker mode) whichever worker wakes first takes
    each new connection, and under light load one worker often took them all while the other
    idled, its sandbox slot with it. With a socket each, the kernel spreads new connections
    evenly over the workers. SIGTERM and SIGINT are passed on; each worker shuts down
    gracefully, then the process ends by that signal (a worker that failed: its status)."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_reuseport_worker, args=(options,)) for _ in range(workers)]
    for process in processes:
        process.start()

    received: list[int] = []

    def pass_on(signum: int, _frame: object) -> None:
        received.append(signum)
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    for process in processes:
        process.join()
    failed = [
        code
        for code in (p.exitcode or 0 for p in processes)
        if code not in (0, *(-s for s in received))
    ]
    if failed:
        return failed[0] if failed[0] > 0 else 128 - failed[0]
    if received:
        # As one uvicorn process does: once shut down, end by the signal that asked for it.
        signal.signal(received[0], signal.SIG_DFL)
        os.kill(os.getpid(), received[0])
    return 0


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
            # soft_wrap: links must survive intact for copy and paste.
            console.print(f"Subject: {mail.subject}\n\n{mail.body}", markup=False, soft_wrap=True)
        return
    table = Table("id", "sent (UTC)", "to", "subject")
    for mail in mails:
        table.add_row(
            str(mail.id), f"{mail.created_at:%Y-%m-%d %H:%M}", mail.to_address, mail.subject
        )
    console.print(table)


PackPath = Annotated[
    Path | None,
    typer.Argument(help="A .jsonl file or a directory of .yaml/.json exercise files."),
]
Builtin = Annotated[bool, typer.Option("--builtin", help="Use the built-in exercise bank.")]


def _pack_path(path: Path | None, builtin: bool) -> Path:
    from koan.exercises.pack import builtin_pack_path

    if builtin:
        return builtin_pack_path()
    if path is None:
        raise typer.BadParameter("give a PATH, or --builtin for the built-in bank")
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    return path


def _read(path: Path) -> tuple[list[ExerciseSpec], list[PackEntry]]:
    from koan.exercises.pack import check_unique, read_pack

    try:
        entries = check_unique(read_pack(path))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    specs = [e.spec for e in entries if e.spec is not None]
    return specs, [e for e in entries if e.spec is None]


def _report_rejected(rejected: list[PackEntry]) -> None:
    for entry in rejected:
        console.print(f"[red]rejected[/red] {entry.origin}: {entry.error}", soft_wrap=True)


@exercises_app.command("import")
def exercises_import(path: PackPath = None, builtin: Builtin = False) -> None:
    """Import exercises (idempotent by slug: re-importing updates them)."""
    pack = _pack_path(path, builtin)
    specs, rejected = _read(pack)
    result = asyncio.run(_import(specs, source="builtin" if builtin else "imported"))
    _report_rejected(rejected)
    console.print(
        f"{len(result.created)} created, {len(result.updated)} updated, "
        f"{len(result.unchanged)} unchanged, {len(rejected)} rejected."
    )
    if rejected:
        raise typer.Exit(1)


async def _import(specs: list[ExerciseSpec], *, source: str) -> ImportResult:
    from rich.progress import Progress

    from koan.exercises.bank import ImportResult, import_specs
    from koan.resources import Resources

    res = Resources.from_settings(Settings())
    total = ImportResult()
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("Importing", total=len(specs))
            batch = 20
            for start in range(0, len(specs), batch):
                chunk = specs[start : start + batch]
                async with res.session_factory() as session, transactional(session):
                    result = await import_specs(session, chunk, source=source)
                total.created += result.created
                total.updated += result.updated
                total.unchanged += result.unchanged
                progress.advance(task, len(chunk))
    finally:
        await res.close()
    return total


@exercises_app.command("validate")
def exercises_validate(
    path: PackPath = None,
    builtin: Builtin = False,
    jobs: Annotated[int, typer.Option(min=0, help="Parallel gradings; 0 = cores.")] = 0,
) -> None:
    """Run each reference solution (must pass) and starter (must fail) in the sandbox."""
    pack = _pack_path(path, builtin)
    specs, rejected = _read(pack)
    _report_rejected(rejected)
    outcomes = asyncio.run(_validate(specs, jobs))
    table = Table("exercise", "language", "solution", "starter", "result")
    for outcome, spec in zip(outcomes, specs, strict=True):
        table.add_row(
            spec.slug,
            spec.language,
            f"{outcome.solution.passed}/{outcome.solution.total}" if outcome.solution else "-",
            f"{outcome.starter.passed}/{outcome.starter.total}" if outcome.starter else "-",
            "[green]ok[/green]" if outcome.ok else "[red]" + "; ".join(outcome.problems) + "[/red]",
        )
    console.print(table)
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        for problem in outcome.problems:
            console.print(f"[red]invalid[/red] {outcome.slug}: {problem}", soft_wrap=True)
    console.print(
        f"{len(outcomes) - len(failed)} valid, {len(failed)} invalid, {len(rejected)} rejected."
    )
    if failed or rejected:
        raise typer.Exit(1)


async def _validate(specs: list[ExerciseSpec], jobs: int) -> list[ValidationOutcome]:
    from dataclasses import replace

    from rich.progress import Progress

    from koan.exercises.validation import validate_all
    from koan.grading.limits import sandbox_config, server_limits
    from koan.grading.sandbox import Sandbox

    settings = Settings()
    config = sandbox_config(settings)
    if jobs:
        config = replace(config, slots=jobs)
    sandbox = Sandbox(config)
    await sandbox.start()
    try:
        with Progress(console=console, transient=True) as progress:
            label = f"Validating ({sandbox.tier.name.lower()} sandbox)"
            task = progress.add_task(label, total=len(specs))
            return await validate_all(
                sandbox, specs, server_limits(settings), on_done=lambda _: progress.advance(task)
            )
    finally:
        await sandbox.close()


@exercises_app.command("export")
def exercises_export(
    path: Annotated[Path, typer.Argument(help="A .jsonl file, or a directory to fill.")],
) -> None:
    """Write the installed exercises out in the pack format."""
    count = asyncio.run(_export(path))
    console.print(f"Exported {count} exercises to {path}.")


async def _export(path: Path) -> int:
    from koan.exercises import repository
    from koan.exercises.bank import to_spec
    from koan.exercises.pack import write_pack
    from koan.resources import Resources

    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            specs = [to_spec(e) for e in await repository.all_exercises(session)]
    finally:
        await res.close()
    return write_pack(specs, path)


usage_app = typer.Typer(help="AI tutor usage and budgets.", no_args_is_help=True)
app.add_typer(usage_app, name="usage")


@usage_app.command("report")
def usage_report(
    days: Annotated[int, typer.Option(min=1, max=366, help="How many UTC days, up to today.")] = 7,
    user: Annotated[str | None, typer.Option(help="Only this learner (email).")] = None,
) -> None:
    """Spending on the AI tutor per learner per day (from the llm_calls records)."""
    asyncio.run(_usage_report(days, user))


async def _usage_report(days: int, email: str | None) -> None:
    from datetime import timedelta

    from koan.resources import Resources
    from koan.tutor_gateway.budgets import utc_day
    from koan.usage import repository

    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            user_id = None
            if email:
                found = await repository.user_by_email(session, email)
                if found is None:
                    console.print(f"[red]No account with {email}.[/red]")
                    raise typer.Exit(1)
                user_id = found.id
            until = utc_day(res.clock.now())
            rows = await repository.report(
                session, since=until - timedelta(days=days - 1), until=until, user_id=user_id
            )
    finally:
        await res.close()
    if not rows:
        console.print(f"No AI tutor calls in the last {days} days.")
        return
    columns = (
        "day (UTC)", "learner", "calls", "cached", "leaks caught", "tokens in", "tokens out",
        "cost (USD)",
    )  # fmt: skip
    cells = [
        (
            row.day.isoformat(),
            row.email or "(deleted account)",
            str(row.calls),
            str(row.cache_hits),
            str(row.leaks_caught),
            str(row.input_tokens),
            str(row.output_tokens),
            f"{row.cost_usd:.4f}",
        )
        for row in rows
    ]
    total = sum((row.cost_usd for row in rows), start=rows[0].cost_usd * 0)
    totals = ("total", "", str(sum(r.calls for r in rows)), "", "", "", "", f"{total:.4f}")
    if not console.is_terminal:
        # Piped or redirected: every column whole, tab-separated, for the next program.
        for line in (columns, *cells, totals):
            typer.echo("\t".join(line))
        return
    table = Table(*columns, title=f"AI tutor usage, last {days} days")
    for line in cells:
        table.add_row(*line)
    table.add_section()
    table.add_row(*totals)
    console.print(table)


if __name__ == "__main__":
    app()


classes_app = typer.Typer(help="Classes: create, list, show, add, remove, export.")
app.add_typer(classes_app, name="classes")


async def _with_session(work: Any, *, commit: bool = False) -> Any:
    """Run `work(session, res)` in one unit of work (committed when `commit`)."""
    from koan.resources import Resources

    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            result = await work(session, res)
            if commit:
                await session.commit()
            return result
    finally:
        await res.close()


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


@classes_app.command("create")
def classes_create(
    name: Annotated[str, typer.Option(help="The class's name.")],
    instructor: Annotated[str, typer.Option(help="Email of the instructor's account.")],
    timezone: Annotated[str, typer.Option(help="IANA time zone of the class.")] = "UTC",
) -> None:
    """Create a class with an instructor (administrators may create classes for anyone)."""
    from koan.classes import service
    from koan.classes.schemas import ClassCreate

    async def work(session: Any, res: Any) -> None:
        user = await _class_user(session, instructor)
        data = ClassCreate(name=name, timezone=timezone)
        settings = res.settings.model_copy(update={"class_creators": "anyone"})
        res.settings = settings
        room = await service.create_class(session, res, user, data)
        console.print(f"Created {room.name}: join code {room.join_code}.")

    asyncio.run(_with_session(work, commit=True))


async def _class_user(session: Any, email: str) -> Any:
    from koan.classes import repository as classes

    user = await classes.user_by_email(session, email.strip().lower())
    if user is None:
        console.print(f"[red]No account has the address {email}.[/red]")
        raise typer.Exit(1)
    return user


@classes_app.command("list")
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

    asyncio.run(_with_session(work))


@classes_app.command("show")
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

    asyncio.run(_with_session(work))


@classes_app.command("add")
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

    asyncio.run(_with_session(work, commit=True))


@classes_app.command("remove")
def classes_remove(
    code: Annotated[str, typer.Argument(help="The class's join code.")],
    email: Annotated[str, typer.Argument(help="Email of the member to remove.")],
) -> None:
    """Take a member out of a class; their own work stays theirs."""
    from koan.classes import repository as classes

    async def work(session: Any, res: Any) -> None:
        room, user = await _class_and_user(session, code, email)
        await classes.remove_member(session, room.id, user.id)
        console.print(f"{user.email} has been removed from {room.name}.")

    asyncio.run(_with_session(work, commit=True))


@classes_app.command("export")
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

    sys.stdout.write(asyncio.run(_with_session(work)))
