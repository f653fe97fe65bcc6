"""Real processes for the scale tests: Koan servers, throwaway databases, a private PostgreSQL.

Everything listens on loopback ports picked free at start, waits are bounded polls, and every
process started here is stopped (by its own pid) when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from koan.config import Settings
from koan.db import create_engine
from koan.migrate import upgrade_connection
from koan.models import LearnerProfile, User
from koan.security import Hasher

SECRET_KEY = "scale-test-secret-key-0123456789-abcdefghij"
PASSWORD = "correct-horse-battery-9"
START_TIMEOUT_S = 90.0  # generous: CI machines are small and may be busy
STOP_TIMEOUT_S = 30.0
KOAN_SERVE = [sys.executable, "-m", "koan.cli", "serve"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a Koan server for tests: cheap hashing, no mail, no surprises."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOAN_")}
    env.update(
        {
            "KOAN_ENV": "test",
            "KOAN_SECRET_KEY": SECRET_KEY,
            "KOAN_DATA_DIR": str(data_dir),
            "KOAN_PASSWORD_TIME_COST": "1",
            "KOAN_PASSWORD_MEMORY_KIB": "8",
            "KOAN_PASSWORD_PARALLELISM": "1",
            "KOAN_LOGIN_SLOWDOWN_STEP_S": "0",
            "KOAN_SANDBOX_MIN_TIER": "rlimits",
            "KOAN_SANDBOX_SLOTS": "1",
            "KOAN_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(settings)
    return env


class KoanServer:
    """`koan serve` in a process of its own (same interpreter as the tests)."""

    def __init__(
        self, env: dict[str, str], workdir: Path, *, name: str = "koan", workers: int = 1
    ) -> None:
        self.env = env
        self.workdir = workdir
        self.workers = workers
        self.port = free_port()
        self.log_path = workdir / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KoanServer:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*KOAN_SERVE, "--port", str(self.port), "--workers", str(self.workers)],
                env=self.env,
                cwd=self.workdir,  # no stray .env file is read
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_live(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Poll /health/live until it answers (bounded); fail with the log if the process died."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"koan serve exited early:\n{self.log()}")
                try:
                    if (await client.get("/health/live")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"koan serve did not start in {timeout_s} s:\n{self.log()}")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """The exit code, or None if the process is still running after `timeout_s`."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.05)
        return None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it will not go (only this process, by pid)."""
        stop_all([self])


def stop_all(servers: list[KoanServer]) -> None:
    """Stop several servers at once: SIGTERM to all, then wait (SIGKILL past the bound)."""
    running = [s.proc for s in servers if s.proc is not None and s.proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in through the API; the Authorization header for the access token."""
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


# -- databases -------------------------------------------------------------------------------


async def create_database(admin_url: str, name: str) -> str:
    """A fresh, migrated PostgreSQL database `name`; returns its URL."""
    url = make_url(admin_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    admin = create_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    db_url = url.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_connection)
    finally:
        await engine.dispose()
    return db_url


async def drop_database(admin_url: str, name: str) -> None:
    url = make_url(admin_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    admin = create_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_connection)
    finally:
        await engine.dispose()


async def add_user(
    engine: AsyncEngine,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    verified: bool = True,
    onboarded: bool = True,
    role: str = "learner",
) -> User:
    """A committed account (hashed with the tests' cheap Argon2 parameters)."""
    hasher = Hasher(
        Settings(
            env="test",
            password_time_cost=1,
            password_memory_kib=8,
            password_parallelism=1,
            _env_file=None,
        )  # fmt: skip
    )
    now = datetime.now(UTC)
    user = User(
        email=email or f"scale-{uuid.uuid4().hex[:12]}@example.com",
        name="Scale Learner",
        password_hash=await hasher.hash(password),
        role=role,
        email_verified_at=now if verified else None,
        preferences={},
    )
    async with AsyncSession(engine, expire_on_commit=False) as session:
        session.add(user)
        await session.flush()
        answers: dict[str, Any] = {
            "language": "python",
            "experience": "beginner",
            "goals": "Learn.",
            "interests": ["text"],
            "learning_style": "examples",
            "minutes_per_day": 20,
            "timezone": "UTC",
        }
        session.add(
            LearnerProfile(
                user_id=user.id,
                answers=answers if onboarded else {},
                onboarding_completed=onboarded,
                completed_at=now if onboarded else None,
                language="python" if onboarded else None,
                experience="beginner" if onboarded else None,
                goals="Learn." if onboarded else "",
                interests=["text"] if onboarded else [],
                learning_style="examples" if onboarded else None,
                minutes_per_day=20 if onboarded else None,
            )
        )
        await session.commit()
    return user


# -- a private PostgreSQL instance -----------------------------------------------------------


def postgres_bin(tool: str) -> str:
    """`tool` from the newest PostgreSQL installed under /usr/lib/postgresql (Debian layout)."""
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    found = shutil.which(tool)
    if not found:
        raise AssertionError(f"PostgreSQL's {tool} is needed for this test")
    return found


def _as_postgres_user(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; the Debian package's `postgres` user may.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own, on a free port, so stopping it disturbs nobody."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="koan-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.logfile = self.root / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, argv: list[str], timeout_s: float = 90) -> None:
        done = subprocess.run(
            _as_postgres_user(argv), capture_output=True, timeout=timeout_s, check=False
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} failed ({done.returncode}):\n"
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
            )

    def init(self) -> PrivatePostgres:
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.socket_dir, "postgres", "postgres")
        self._run(
            [postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
             "--no-sync", "-E", "UTF8", "--locale=C"]
        )  # fmt: skip
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        # -w: pg_ctl returns once the server accepts connections (bounded by -t).
        self._run(
            [postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.logfile),
             "-w", "-t", "60", "start"]
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run([postgres_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
                   "stop"])  # fmt: skip

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
