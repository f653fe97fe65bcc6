"""`koan users create`: a verified account, made with its profile like any other."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from koan.cli import app
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
