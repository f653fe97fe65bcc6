"""`koan classes create / list / show / add / remove / export` as an administrator runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from koan.cli import app
from koan.migrate import upgrade

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "koan.db"
    monkeypatch.setenv("KOAN_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.setenv("KOAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KOAN_PASSWORD_TIME_COST", "1")
    monkeypatch.setenv("KOAN_PASSWORD_MEMORY_KIB", "8")
    monkeypatch.setenv("KOAN_PASSWORD_PARALLELISM", "1")
    monkeypatch.setenv("COLUMNS", "200")
    upgrade(f"sqlite+aiosqlite:///{db}")
    return tmp_path


def _user(email: str, name: str) -> None:
    r = runner.invoke(
        app, ["users", "create", "--email", email, "--name", name],
        env={"KOAN_NEW_USER_PASSWORD": "a long passphrase 0xC0FFEE"},
    )  # fmt: skip
    assert r.exit_code == 0, r.output


def test_an_administrator_runs_a_class_from_the_command_line(cli_env: Path) -> None:
    _user("teach@example.com", "Teacher")
    _user("ann@example.com", "Ann")
    made = runner.invoke(
        app, ["classes", "create", "--name", "CS 101", "--instructor", "teach@example.com"]
    )
    assert made.exit_code == 0, made.output
    code = made.output.strip().rsplit(" ", 1)[1].rstrip(".")
    listed = runner.invoke(app, ["classes", "list"])
    assert code in listed.output
    assert "CS 101" in listed.output
    added = runner.invoke(app, ["classes", "add", code, "ann@example.com"])
    assert added.exit_code == 0, added.output
    shown = runner.invoke(app, ["classes", "show", code])
    assert "ann@example.com" in shown.output
    assert "learner" in shown.output
    exported = runner.invoke(app, ["classes", "export", code, "--what", "roster"])
    assert exported.exit_code == 0, exported.output
    assert exported.output.splitlines()[1].startswith("Ann,ann@example.com,0,0")
    removed = runner.invoke(app, ["classes", "remove", code, "ann@example.com"])
    assert removed.exit_code == 0, removed.output
    assert "ann@example.com" not in runner.invoke(app, ["classes", "show", code]).output
    unknown = runner.invoke(app, ["classes", "show", "NOPE2345"])
    assert unknown.exit_code == 1


def _code(output: str) -> str:
    return output.strip().rsplit(" ", 1)[1].rstrip(".")


def test_the_command_line_keeps_a_class_with_an_instructor(cli_env: Path) -> None:
    _user("teach@example.com", "Teacher")
    _user("ann@example.com", "Ann")
    code = _code(
        runner.invoke(
            app, ["classes", "create", "--name", "CS 101", "--instructor", "teach@example.com"]
        ).output
    )

    removed = runner.invoke(app, ["classes", "remove", code, "teach@example.com"])
    demoted = runner.invoke(app, ["classes", "add", code, "teach@example.com", "--role", "ta"])
    outsider = runner.invoke(app, ["classes", "remove", code, "ann@example.com"])

    assert removed.exit_code == 1
    assert "at least one instructor" in removed.stderr
    assert demoted.exit_code == 1
    assert "at least one instructor" in demoted.stderr
    assert outsider.exit_code == 1
    assert "not a member" in outsider.stderr
    shown = runner.invoke(app, ["classes", "show", code]).output
    assert "teach@example.com" in shown
    assert "instructor" in shown
    # With a second instructor, the first may go.
    assert (
        runner.invoke(
            app, ["classes", "add", code, "ann@example.com", "--role", "instructor"]
        ).exit_code
        == 0
    )
    assert runner.invoke(app, ["classes", "remove", code, "teach@example.com"]).exit_code == 0
    assert "teach@example.com" not in runner.invoke(app, ["classes", "show", code]).output


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [("--timezone", "Mars/Olympus", "IANA time zone"), ("--name", "   ", "at least 1")],
)
def test_a_class_the_api_would_refuse_is_refused_in_one_line(
    cli_env: Path, option: str, value: str, said: str
) -> None:
    _user("teach@example.com", "Teacher")
    args = {"--name": "CS 101", "--timezone": "UTC", option: value}
    made = runner.invoke(
        app, ["classes", "create", "--instructor", "teach@example.com",
              *[part for pair in args.items() for part in pair]],
    )  # fmt: skip
    assert made.exit_code == 2, made.output
    assert said in made.output
    assert "Traceback" not in made.output
    assert runner.invoke(app, ["classes", "list"]).output.count("CS 101") == 0
