"""Every `koan` command that needs the database says in one line why it cannot use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from koan.cli import app

runner = CliRunner()

COMMANDS = [
    ["users", "list"],
    ["classes", "list"],
    ["mail", "list"],
    ["usage", "report"],
    ["exercises", "import", "--builtin"],
    ["exercises", "export", "exported.jsonl"],
]


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, args: list[str]) -> str:
    monkeypatch.setenv("KOAN_DATABASE_URL", url)
    monkeypatch.setenv("KOAN_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    # Ended by Koan with its message, not by the error it met.
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.stderr


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_database_never_upgraded_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    assert "koan db upgrade" in run(tmp_path, monkeypatch, url, args)
    assert not (tmp_path / "exported.jsonl").exists()


@pytest.mark.parametrize("args", [*COMMANDS, ["db", "upgrade"]], ids=lambda a: " ".join(a[:2]))
def test_a_database_server_that_refuses_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    url = "postgresql+asyncpg://koan@127.0.0.1:1/koan"
    said = run(tmp_path, monkeypatch, url, args)
    assert "The database could not be reached" in said
    assert "database server is running" in said


@pytest.mark.parametrize("args", [["users", "list"], ["db", "upgrade"]], ids=" ".join)
def test_a_database_url_koan_cannot_use_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    said = run(tmp_path, monkeypatch, "mysql-nope://db/koan", args)
    assert said.startswith("KOAN_DATABASE_URL cannot be used")


@pytest.mark.parametrize("args", [["users", "list"], ["db", "upgrade"], ["serve"]], ids=" ".join)
def test_a_database_url_that_cannot_be_read_is_named_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    url = "postgresql://koan:hunter2-secret@127.0.0.1:5432x/koan"
    said = run(tmp_path, monkeypatch, url, args)
    assert "KOAN_DATABASE_URL" in said
    assert len(said.strip().splitlines()) == 1, said
    assert "hunter2" not in said


def test_upgrading_to_a_revision_that_does_not_exist_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'koan.db'}"
    said = run(tmp_path, monkeypatch, url, ["db", "upgrade", "no-such-revision"])
    assert "Cannot upgrade to 'no-such-revision'" in said


def test_upgrading_an_upgraded_database_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOAN_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'koan.db'}")
    monkeypatch.setenv("KOAN_DATA_DIR", str(tmp_path))
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert "Database is up to date." in result.output


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_serve_refuses_a_port_that_cannot_be_listened_on(port: str) -> None:
    result = runner.invoke(app, ["serve", "--port", port])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--port'" in result.output
    assert "Koan (" not in result.output  # nothing was started


@pytest.mark.parametrize(
    "args",
    [
        ["users", "show", "caf\udce9"],
        ["classes", "show", "caf\udce9"],
        ["mail", "list", "--to", "\udce9"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_an_argument_that_is_not_utf8_is_refused_before_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    # What a terminal set to Latin-1 passes for "café": the byte 0xE9, not UTF-8.
    monkeypatch.setenv("KOAN_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'koan.db'}")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "is not UTF-8 text" in result.output
    assert "database" not in result.output


def test_serve_refuses_a_database_never_upgraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    said = run(tmp_path, monkeypatch, url, ["serve"])
    assert "no tables yet: run `koan db upgrade` first" in said
    assert started == []


def test_serve_warns_of_a_database_behind_its_migrations_and_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from alembic.script import ScriptDirectory

    from koan.migrate import alembic_config, upgrade

    first = list(ScriptDirectory.from_config(alembic_config()).walk_revisions())[-1].revision
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    upgrade(url, first)
    monkeypatch.setenv("KOAN_DATABASE_URL", url)
    monkeypatch.setenv("KOAN_DATA_DIR", str(tmp_path))
    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    assert f"The database is at revision {first}, behind" in result.stderr
    assert len(started) == 1


def test_upgrading_a_database_a_newer_release_migrated_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    db = tmp_path / "koan.db"
    url = f"sqlite+aiosqlite:///{db}"
    monkeypatch.setenv("KOAN_DATABASE_URL", url)
    monkeypatch.setenv("KOAN_DATA_DIR", str(tmp_path))
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    with sqlite3.connect(db) as conn:  # as a later release's migration leaves it
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfacecafe'")
    said = run(tmp_path, monkeypatch, url, ["db", "upgrade"])
    assert "at revision f00dfacecafe, which this Koan's migrations do not include" in said


def test_a_pack_whose_path_is_not_utf8_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import os

    from tests.fixtures.factories import exercise_spec

    folder = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9")  # a Latin-1 name on disk
    os.mkdir(folder)
    spec = exercise_spec(slug="from-latin1-folder").model_dump(exclude_none=True)
    Path(folder, "one.json").write_text(json.dumps(spec))
    monkeypatch.setenv("KOAN_SANDBOX_SLOTS", "1")
    result = runner.invoke(app, ["exercises", "validate", folder])
    assert result.exit_code == 0, result.output
    assert "1 valid" in result.output


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"KOAN_DATABASE_POOL_SIZE": "twenty"}, "KOAN_DATABASE_POOL_SIZE"),
        ({"KOAN_REQUEST_TURNS": "-1"}, "KOAN_REQUEST_TURNS"),
        ({"KOAN_SUBMISSION_LIMIT": "10/fortnight"}, "KOAN_SUBMISSION_LIMIT"),
        ({"KOAN_LOGIN_LIMIT_PER_ADDRESS": "20 a minute"}, "KOAN_LOGIN_LIMIT_PER_ADDRESS"),
        ({"KOAN_LOG_LEVEL": "LOUD"}, "KOAN_LOG_LEVEL"),
        ({"KOAN_ENV": "prod"}, "KOAN_ENV"),
        ({"KOAN_ENV": "production", "KOAN_SECRET_KEY": "short"}, "KOAN_SECRET_KEY"),
        ({"KOAN_REDIS_URL": "127.0.0.1:6379"}, "KOAN_REDIS_URL"),
        ({"KOAN_REDIS_URL": "redis://:pw@127.0.0.1:port/0"}, "KOAN_REDIS_URL"),
        ({"KOAN_SMTP_PORT": "70000"}, "KOAN_SMTP_PORT"),
        ({"KOAN_BASE_URL": "koan.example.com"}, "KOAN_BASE_URL"),
        ({"KOAN_LLM_BASE_URL": "localhost:11434/v1"}, "KOAN_LLM_BASE_URL"),
        ({"KOAN_SMTP_TIMEOUT_S": "0"}, "KOAN_SMTP_TIMEOUT_S"),
        ({"KOAN_LLM_FALLBACK": "offline,openia"}, "KOAN_LLM_FALLBACK"),
        ({"KOAN_LLM_PROVIDER": "openai"}, "KOAN_LLM_"),
        ({"KOAN_LLM_PRICING_FILE": "/nonexistent/prices.yaml"}, "/nonexistent/prices.yaml"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
@pytest.mark.parametrize("args", [["serve"], ["users", "list"]], ids=" ".join)
def test_a_bad_setting_stops_the_command_in_one_line_naming_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    named: str,
    args: list[str],
) -> None:
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    url = f"sqlite+aiosqlite:///{tmp_path / 'koan.db'}"
    said = run(tmp_path, monkeypatch, url, args)
    assert named in said
    assert len(said.strip().splitlines()) == 1, said
    assert started == []
