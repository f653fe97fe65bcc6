"""`koan exercises import / validate / export` as an administrator runs them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koan.cli import app
from koan.exercises.pack import read_pack
from koan.migrate import upgrade
from tests.fixtures.factories import exercise_spec

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "koan.db"
    monkeypatch.setenv("KOAN_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.setenv("KOAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KOAN_SANDBOX_SLOTS", "2")
    monkeypatch.setenv("COLUMNS", "200")
    upgrade(f"sqlite+aiosqlite:///{db}")
    return tmp_path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_is_idempotent_and_reports_rejects(cli_env: Path) -> None:
    good = [exercise_spec(slug=f"cli-{i}").model_dump(exclude_none=True) for i in range(3)]
    pack = write_jsonl(cli_env / "pack.jsonl", good)
    first = runner.invoke(app, ["exercises", "import", str(pack)])
    assert first.exit_code == 0, first.output
    assert "3 created, 0 updated, 0 unchanged, 0 rejected" in first.output
    again = runner.invoke(app, ["exercises", "import", str(pack)])
    assert "0 created, 0 updated, 3 unchanged" in again.output

    changed = [{**good[0], "title": "Renamed"}, {**good[1], "slug": "NOT VALID"}]
    bad = runner.invoke(
        app, ["exercises", "import", str(write_jsonl(cli_env / "b.jsonl", changed))]
    )
    assert bad.exit_code == 1
    assert "1 updated" in bad.output
    assert "1 rejected" in bad.output
    assert "b.jsonl:2" in bad.output
    assert "slug" in bad.output

    out = cli_env / "export.jsonl"
    exported = runner.invoke(app, ["exercises", "export", str(out)])
    assert exported.exit_code == 0
    assert "Exported 3" in exported.output
    titles = {e.spec.slug: e.spec.title for e in read_pack(out) if e.spec}
    assert titles["cli-0"] == "Renamed"
    folder = cli_env / "exported"
    runner.invoke(app, ["exercises", "export", str(folder)])
    assert len(list(folder.rglob("*.yaml"))) == 3


def test_validate_flags_broken_exercises(cli_env: Path) -> None:
    rows = [
        exercise_spec(slug="fine").model_dump(exclude_none=True),
        exercise_spec(slug="wrong-solution", solution="def add(a, b):\n    return 0\n").model_dump(
            exclude_none=True
        ),
        exercise_spec(
            slug="starter-passes", starter_code="def add(a, b):\n    return a + b\n"
        ).model_dump(exclude_none=True),
    ]
    pack = write_jsonl(cli_env / "v.jsonl", rows)
    result = runner.invoke(app, ["exercises", "validate", str(pack)])
    assert result.exit_code == 1, result.output
    assert "1 valid, 2 invalid" in result.output
    assert "reference solution does not pass" in result.output
    assert "starter code passes" in result.output


def test_missing_path_is_a_clear_error(cli_env: Path) -> None:
    result = runner.invoke(app, ["exercises", "import", str(cli_env / "nope.jsonl")])
    assert result.exit_code != 0
    assert "does not exist" in result.output
    result = runner.invoke(app, ["exercises", "import"])
    assert result.exit_code != 0
    assert "--builtin" in result.output


@pytest.mark.parametrize("command", ["import", "validate"])
def test_a_pack_and_the_built_in_bank_at_once_are_refused(cli_env: Path, command: str) -> None:
    # Which one was meant cannot be known: nothing is read rather than the other one.
    pack = write_jsonl(cli_env / "mine.jsonl", [exercise_spec(slug="mine").model_dump()])
    result = runner.invoke(app, ["exercises", command, str(pack), "--builtin"])
    assert result.exit_code == 2, result.output
    assert "not both" in result.output
    listed = runner.invoke(app, ["exercises", "export", str(cli_env / "out.jsonl")])
    assert "Exported 0 exercises" in listed.output


def test_an_export_that_cannot_be_written_says_where(cli_env: Path) -> None:
    runner.invoke(
        app,
        [
            "exercises",
            "import",
            str(
                write_jsonl(
                    cli_env / "p.jsonl", [exercise_spec(slug="kept").model_dump(exclude_none=True)]
                )
            ),
        ],
    )
    taken = cli_env / "notes.txt"
    taken.write_text("mine")
    result = runner.invoke(app, ["exercises", "export", str(taken)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"Cannot write {taken}" in result.stderr
    # What to give instead, not the system's "File exists".
    assert "not a directory" in result.stderr
    assert ".jsonl" in result.stderr
    assert taken.read_text() == "mine"


def test_reading_a_pack_shows_its_progress_on_a_terminal(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    from koan.cli import exercises as command

    for i in range(3):
        spec = exercise_spec(slug=f"shown-{i}").model_dump(exclude_none=True)
        (cli_env / f"shown-{i}.json").write_text(json.dumps(spec))
    screen = io.StringIO()
    monkeypatch.setattr(command, "console", Console(file=screen, force_terminal=True, width=200))
    result = runner.invoke(app, ["exercises", "import", str(cli_env)])
    assert result.exit_code == 0, result.output
    # A live count while the files are read (a terminal only; it is cleared once done).
    assert f"Reading {cli_env}: " in screen.getvalue()
    assert "rejected." in screen.getvalue()


def test_validate_starts_no_more_sandbox_slots_than_it_has_exercises(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from koan.grading import sandbox

    started: list[int] = []
    real = sandbox.Sandbox.__init__

    def recording(self: sandbox.Sandbox, config: sandbox.SandboxConfig) -> None:
        started.append(config.slots)
        real(self, config)

    monkeypatch.setattr(sandbox.Sandbox, "__init__", recording)
    one = write_jsonl(cli_env / "one.jsonl", [exercise_spec().model_dump(exclude_none=True)])
    result = runner.invoke(app, ["exercises", "validate", str(one), "--jobs", "50"])
    assert result.exit_code == 0, result.output
    assert started == [1]

    # Nothing left to run once every entry is rejected: no sandbox at all.
    bad = write_jsonl(cli_env / "bad.jsonl", [{"slug": "NOT VALID"}])
    result = runner.invoke(app, ["exercises", "validate", str(bad)])
    assert result.exit_code == 1
    assert "0 valid, 0 invalid, 1 rejected" in result.output
    assert started == [1]


def test_export_leaves_out_generated_exercises_nobody_approved(cli_env: Path) -> None:
    from datetime import UTC, datetime

    from koan.db import create_engine, create_session_factory, transactional
    from koan.exercises.bank import import_specs
    from koan.exercises.repository import exercises_by_slug
    from koan.models import ClassExerciseReview, ClassRoom

    async def seed() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{cli_env / 'koan.db'}")
        async with create_session_factory(engine)() as session, transactional(session):
            await import_specs(session, [exercise_spec(slug="authored")], source="imported")
            slugs = ["written-for-one", "shared-by-admin", "shared-by-class", "refused-by-class"]
            await import_specs(session, [exercise_spec(slug=s) for s in slugs], source="generated")
            made = await exercises_by_slug(session, slugs)
            made["shared-by-admin"].approved_at = datetime(2025, 3, 1, tzinfo=UTC)
            room = ClassRoom(name="CS 101", join_code="EXPORT23")
            session.add(room)
            await session.flush()
            session.add_all(
                [
                    ClassExerciseReview(
                        class_id=room.id, exercise_id=made["shared-by-class"].id, status="approved"
                    ),
                    ClassExerciseReview(
                        class_id=room.id, exercise_id=made["refused-by-class"].id, status="rejected"
                    ),
                ]
            )
        await engine.dispose()

    asyncio.run(seed())
    out = cli_env / "export.jsonl"
    exported = runner.invoke(app, ["exercises", "export", str(out)])
    assert exported.exit_code == 0, exported.output
    assert {e.spec.slug for e in read_pack(out) if e.spec} == {
        "authored",
        "shared-by-admin",
        "shared-by-class",
    }
    assert "Exported 3 exercises" in exported.output
    assert "2 generated exercises nobody approved were left out" in exported.output

    everything = cli_env / "everything.jsonl"
    exported = runner.invoke(app, ["exercises", "export", str(everything), "--include-generated"])
    assert exported.exit_code == 0, exported.output
    assert {e.spec.slug for e in read_pack(everything) if e.spec} == {
        "authored",
        "written-for-one",
        "shared-by-admin",
        "shared-by-class",
        "refused-by-class",
    }
    assert "left out" not in exported.output
