"""`koan exercises`: exercise packs, imported, validated in the sandbox and exported."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from koan.cli.common import console, database_errors, fail
from koan.config import Settings
from koan.db import transactional

if TYPE_CHECKING:
    from koan.exercises.bank import ImportResult
    from koan.exercises.pack import ExerciseSpec, PackEntry
    from koan.exercises.validation import ValidationOutcome

app = typer.Typer(help="Exercise packs: import, validate, export.", no_args_is_help=True)


PackPath = Annotated[
    Path | None,
    typer.Argument(help="A .jsonl file or a directory of .yaml/.json exercise files."),
]
Builtin = Annotated[bool, typer.Option("--builtin", help="Use the built-in exercise bank.")]


def _pack_path(path: Path | None, builtin: bool) -> Path:
    from koan.exercises.pack import builtin_pack_path

    if builtin:
        if path is not None:
            raise typer.BadParameter(f"give a PATH or --builtin, not both ({path} and --builtin)")
        return builtin_pack_path()
    if path is None:
        raise typer.BadParameter("give a PATH, or --builtin for the built-in bank")
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    return path


def _read(path: Path) -> tuple[list[ExerciseSpec], list[PackEntry]]:
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from koan.exercises.pack import check_unique, read_pack

    # A pack of thousands of files takes a while to parse: the count shows it is moving.
    columns = (SpinnerColumn(), TextColumn("Reading {task.fields[path]}: {task.completed} read"))
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("Reading", total=None, path=path)
            read = []
            for entry in read_pack(path):
                read.append(entry)
                progress.advance(task)
        entries = check_unique(read)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {exc.filename or path}: {exc.strerror}") from exc
    specs = [e.spec for e in entries if e.spec is not None]
    return specs, [e for e in entries if e.spec is None]


def _report_rejected(rejected: list[PackEntry]) -> None:
    for entry in rejected:
        console.print(f"[red]rejected[/red] {entry.origin}: {entry.error}", soft_wrap=True)


@app.command("import")
def exercises_import(path: PackPath = None, builtin: Builtin = False) -> None:
    """Import exercises (idempotent by slug: re-importing updates them)."""
    pack = _pack_path(path, builtin)
    specs, rejected = _read(pack)
    with database_errors():
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


@app.command("validate")
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

    if not specs:
        return []
    settings = Settings()
    config = sandbox_config(settings)
    # Each slot validates one exercise at a time: more slots than exercises would only be
    # started (a warm process each) and never used.
    config = replace(config, slots=min(jobs or config.slots, len(specs)))
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


@app.command("export")
def exercises_export(
    path: Annotated[Path, typer.Argument(help="A .jsonl file, or a directory to fill.")],
    include_generated: Annotated[
        bool,
        typer.Option(
            "--include-generated",
            help="Also write the exercises the model wrote for one learner that no "
            "administrator or class instructor approved.",
        ),
    ] = False,
) -> None:
    """Write the installed exercises out in the pack format: authored ones and approved
    generated ones (--include-generated: every generated one too)."""
    from koan.exercises.pack import write_pack

    with database_errors():
        specs, left_out = asyncio.run(_export(include_generated=include_generated))
    try:
        count = write_pack(specs, path)
    except OSError as exc:
        fail(f"Cannot write {exc.filename or path}: {exc.strerror or exc}.")
    console.print(f"Exported {count} exercises to {path}.")
    if left_out:
        what = "exercise nobody approved was" if left_out == 1 else "exercises nobody approved were"
        console.print(
            f"{left_out} generated {what} left out (--include-generated writes them too)."
        )


async def _export(*, include_generated: bool) -> tuple[list[ExerciseSpec], int]:
    from koan.exercises import repository
    from koan.exercises.bank import to_spec
    from koan.resources import Resources

    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            found, left_out = await repository.exportable_exercises(
                session, include_generated=include_generated
            )
            return [to_spec(e) for e in found], left_out
    finally:
        await res.close()
