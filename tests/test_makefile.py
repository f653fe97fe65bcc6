"""`make run`: mails link to the host and port being served unless KOAN_BASE_URL says otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`make run` with a stand-in `koan` that prints the base URL it was given."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    koan = fake / "koan"
    koan.write_text(
        '#!/bin/sh\n[ "$1" = serve ] && echo "serving with ${KOAN_BASE_URL:-none}"\nexit 0\n'
    )
    koan.chmod(0o755)
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    environment = {k: v for k, v in os.environ.items() if k != "KOAN_BASE_URL"}
    result = subprocess.run(
        ["make", "-s", "-o", "install", "-o", "system-deps", "run", f"BIN={fake}", *args],
        cwd=tmp_path, env={**environment, **(env or {})}, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return result.stdout


def test_make_run_sets_the_base_url_from_host_and_port_unless_given(tmp_path: Path) -> None:
    assert "serving with http://127.0.0.1:9123" in _run(tmp_path, "PORT=9123")
    assert "serving with https://koan.example" in _run(
        tmp_path, "PORT=9123", env={"KOAN_BASE_URL": "https://koan.example"}
    )
    (tmp_path / ".env").write_text("KOAN_BASE_URL=https://from-dotenv.example\n")
    # The stand-in does not read .env; Koan does. What matters is that make left it alone.
    assert "serving with none" in _run(tmp_path, "PORT=9123")
