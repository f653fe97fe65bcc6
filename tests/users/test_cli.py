"""`koan users`: create, list, show, disable, enable, promote and demote accounts."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koan.cli import app
from koan.errors import AccountDisabled
from tests.exercises.test_cli import cli_env

__all__ = ["cli_env"]  # the fixture, shared with the exercise commands' tests

runner = CliRunner()


def test_users_create_makes_a_verified_account_with_a_profile(cli_env: Path) -> None:
    result = runner.invoke(
        app,
        ["users", "create", "--email", "first-admin@example.com", "--name", "First", "--admin"],
        env={"KOAN_NEW_USER_PASSWORD": "a long admin passphrase 31"},
    )
    assert result.exit_code == 0, result.output
    with sqlite3.connect(cli_env / "koan.db") as db:
        role, verified, completed = db.execute(
            "SELECT role, email_verified_at IS NOT NULL, onboarding_completed FROM users "
            "JOIN learner_profiles ON learner_profiles.user_id = users.id "
            "WHERE email = 'first-admin@example.com'"
        ).fetchone()
    assert (role, verified, completed) == ("admin", 1, 0)


def test_users_create_without_a_terminal_says_how_to_pass_the_password(cli_env: Path) -> None:
    result = runner.invoke(
        app, ["users", "create", "--email", "no-tty@example.com", "--name", "Nobody"], input=""
    )
    assert result.exit_code == 2
    assert "KOAN_NEW_USER_PASSWORD" in result.output
    assert "--password" in result.output
    assert "Aborted" not in result.output


PASSPHRASE = "a long passphrase 0xC0FFEE"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # As the test app hashes (a setting, not a code branch): the CLI reads its own settings.
    monkeypatch.setenv("KOAN_PASSWORD_TIME_COST", "1")
    monkeypatch.setenv("KOAN_PASSWORD_MEMORY_KIB", "8")
    monkeypatch.setenv("KOAN_PASSWORD_PARALLELISM", "1")


def _create(email: str, name: str, *, admin: bool = False) -> None:
    args = ["users", "create", "--email", email, "--name", name] + (["--admin"] if admin else [])
    result = runner.invoke(app, args, env={"KOAN_NEW_USER_PASSWORD": PASSPHRASE})
    assert result.exit_code == 0, result.output


def _log_in(email: str) -> None:
    """A login as the web app or an API client makes it, on the CLI's database."""

    async def go() -> None:
        from koan.auth import service as auth_service
        from koan.auth.schemas import LoginInput
        from koan.config import Settings
        from koan.resources import Resources

        res = Resources.from_settings(Settings())
        try:
            async with res.session_factory() as session:
                data = LoginInput(email=email, password=PASSPHRASE)
                await auth_service.login(session, res, data, address="127.0.0.1", user_agent="t")
                await session.commit()
        finally:
            await res.close()

    asyncio.run(go())


def _sessions(cli_env: Path, email: str) -> list[tuple[str | None, str | None]]:
    with sqlite3.connect(cli_env / "koan.db") as db:
        return db.execute(
            "SELECT revoked_at, revoked_reason FROM auth_sessions JOIN users "
            "ON users.id = auth_sessions.user_id WHERE email = ?",
            (email,),
        ).fetchall()


def test_users_list_filters_and_pipes_whole_columns(cli_env: Path) -> None:
    _create("ops@example.com", "Operator", admin=True)
    _create("ada.lovelace@example.com", "Ada Lovelace")
    _create("grace@example.com", "Grace [bold]Hopper")
    _log_in("grace@example.com")
    assert runner.invoke(app, ["users", "disable", "ada.lovelace@example.com"]).exit_code == 0

    # Not a terminal: a header line, then one tab-separated line per account, newest first.
    listed = runner.invoke(app, ["users", "list"])
    assert listed.exit_code == 0, listed.output
    header, *lines = listed.stdout.splitlines()
    assert header.split("\t") == [
        "email", "name", "role", "verified", "status", "created (UTC)", "last active (UTC)"
    ]  # fmt: skip
    rows = {line.split("\t")[0]: line.split("\t") for line in lines}
    assert list(rows) == ["grace@example.com", "ada.lovelace@example.com", "ops@example.com"]
    assert rows["grace@example.com"][1] == "Grace [bold]Hopper"  # as typed, never markup
    assert rows["grace@example.com"][6] != "never"  # logged in just now
    assert rows["ada.lovelace@example.com"][4:7:2] == ["disabled", "never"]
    assert rows["ops@example.com"][2] == "admin"

    def emails(*args: str) -> list[str]:
        result = runner.invoke(app, ["users", "list", *args])
        assert result.exit_code == 0, result.output
        return [line.split("\t")[0] for line in result.stdout.splitlines()[1:]]

    assert emails("--search", "LOVELACE") == ["ada.lovelace@example.com"]  # name, any case
    assert emails("-s", "grace@") == ["grace@example.com"]  # email
    assert emails("--role", "admin") == ["ops@example.com"]
    assert emails("--disabled") == ["ada.lovelace@example.com"]
    assert emails("--enabled") == ["grace@example.com", "ops@example.com"]
    assert emails("--search", "%") == []  # a wildcard is a character like any other

    limited = runner.invoke(app, ["users", "list", "--limit", "1"])
    assert len(limited.stdout.splitlines()) == 2
    assert "Showing the newest 1 of 3 matching accounts" in limited.stderr
    nobody = runner.invoke(app, ["users", "list", "--search", "zebra"])
    assert (nobody.exit_code, nobody.stdout.strip()) == (0, "No account matches.")
    bad_role = runner.invoke(app, ["users", "list", "--role", "wizard"])
    assert bad_role.exit_code == 2
    assert "wizard" in bad_role.output


def test_users_show_tells_everything_an_operator_asks_about(cli_env: Path) -> None:
    _create("teach@example.com", "Teacher")
    _create("ann@example.com", "Ann")
    _log_in("ann@example.com")
    made = runner.invoke(
        app, ["classes", "create", "--name", "CS 101", "--instructor", "teach@example.com"]
    )
    code = made.output.strip().rsplit(" ", 1)[1].rstrip(".")
    assert runner.invoke(app, ["classes", "add", code, "ann@example.com"]).exit_code == 0

    shown = runner.invoke(app, ["users", "show", "ANN@example.com"])
    assert shown.exit_code == 0, shown.output
    fields = dict(line.split(":", 1) for line in shown.stdout.splitlines())
    fields = {key: value.strip() for key, value in fields.items()}
    assert fields["name"] == "Ann"
    assert fields["role"] == "learner"
    assert fields["status"] == "active"
    assert fields["classes"] == "CS 101 (learner)"
    assert fields["onboarding"] == "not done"
    assert fields["last active"].endswith("UTC")
    by_id = runner.invoke(app, ["users", "show", fields["id"]])
    assert "ann@example.com" in by_id.stdout

    teacher = runner.invoke(app, ["users", "show", "teach@example.com"])
    assert "last active: never logged in" in teacher.stdout
    assert "CS 101 (instructor)" in teacher.stdout


def test_disabling_ends_the_sessions_and_enabling_lets_the_account_back(cli_env: Path) -> None:
    _create("ops@example.com", "Operator", admin=True)
    _create("bob@example.com", "Bob")
    _log_in("bob@example.com")
    _log_in("bob@example.com")
    assert _sessions(cli_env, "bob@example.com") == [(None, None), (None, None)]

    disabled = runner.invoke(app, ["users", "disable", "bob@example.com"])
    assert disabled.exit_code == 0, disabled.output
    assert "Disabled bob@example.com" in disabled.stdout
    assert [reason for _, reason in _sessions(cli_env, "bob@example.com")] == [
        "account_disabled", "account_disabled"
    ]  # fmt: skip
    shown = runner.invoke(app, ["users", "show", "bob@example.com"])
    assert "status:      disabled since" in shown.stdout
    again = runner.invoke(app, ["users", "disable", "bob@example.com"])
    assert (again.exit_code, again.stdout.strip()) == (0, "bob@example.com was already disabled.")
    with pytest.raises(AccountDisabled):
        _log_in("bob@example.com")

    enabled = runner.invoke(app, ["users", "enable", "bob@example.com"])
    assert enabled.exit_code == 0, enabled.output
    assert "can log in again" in enabled.stdout
    _log_in("bob@example.com")
    # The sessions it had stay ended; the new login is live.
    assert sorted(reason or "" for _, reason in _sessions(cli_env, "bob@example.com")) == [
        "", "account_disabled", "account_disabled"
    ]  # fmt: skip
    assert "is not disabled" in runner.invoke(app, ["users", "enable", "bob@example.com"]).stdout


def test_promote_and_demote_keep_one_administrator(cli_env: Path) -> None:
    _create("ops@example.com", "Operator", admin=True)
    _create("cy@example.com", "Cy")

    alone = runner.invoke(app, ["users", "demote", "ops@example.com"])
    assert alone.exit_code == 1
    assert "only administrator" in alone.stderr
    assert "Traceback" not in alone.output
    cannot = runner.invoke(app, ["users", "disable", "ops@example.com"])
    assert cannot.exit_code == 1
    assert "only administrator" in cannot.stderr

    promoted = runner.invoke(app, ["users", "promote", "cy@example.com"])
    assert (promoted.exit_code, promoted.stdout.strip()) == (
        0, "cy@example.com is now an administrator."
    )  # fmt: skip
    again = runner.invoke(app, ["users", "promote", "cy@example.com"])
    assert again.stdout.strip() == "cy@example.com is already an administrator."
    demoted = runner.invoke(app, ["users", "demote", "ops@example.com"])
    assert demoted.stdout.strip() == "ops@example.com is now a learner."
    unchanged = runner.invoke(app, ["users", "demote", "ops@example.com"])
    assert unchanged.stdout.strip() == "ops@example.com is already a learner."
    with sqlite3.connect(cli_env / "koan.db") as db:
        roles = dict(db.execute("SELECT email, role FROM users").fetchall())
    assert roles == {"ops@example.com": "learner", "cy@example.com": "admin"}


@pytest.mark.parametrize("command", ["show", "disable", "enable", "promote", "demote"])
def test_an_unknown_account_is_named_without_a_traceback(cli_env: Path, command: str) -> None:
    result = runner.invoke(app, ["users", command, "nobody@example.com"])
    assert result.exit_code == 1
    assert "No account has the email address or id 'nobody@example.com'" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_database_never_upgraded_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOAN_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("KOAN_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["users", "list"])
    assert result.exit_code == 1
    assert "koan db upgrade" in result.stderr
    assert isinstance(result.exception, SystemExit)
