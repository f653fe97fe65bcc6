"""A real Koan server for browser tests: uvicorn on 127.0.0.1, a migrated SQLite file, real SMTP.

The server runs in a thread with its own event loop; `run()` executes a coroutine on that loop
(with the server's own resources), so tests can prepare data the way the app itself would.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from koan.app import create_app
from koan.config import Settings
from koan.db import create_engine, transactional
from koan.exercises.bank import import_specs
from koan.exercises.pack import builtin_pack_path, check_unique, read_pack
from koan.migrate import upgrade_connection
from koan.resources import Resources
from tests.web.conftest import with_web

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class LiveServer:
    def __init__(self, directory: Path, *, smtp_port: int, min_tier: str | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            env="test",
            secret_key="browser-test-secret-key-long-enough-0123456789",
            data_dir=directory,
            database_url=f"sqlite+aiosqlite:///{directory / 'koan.db'}",
            redis_url="",
            base_url=self.url,
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_starttls=False,
            password_time_cost=1,
            password_memory_kib=8,
            password_parallelism=1,
            login_slowdown_step_s=0,
            register_limit_per_address="1000/hour",
            sandbox_slots=2,
            sandbox_min_tier=min_tier,  # type: ignore[arg-type]
            _env_file=None,
        )
        self.app: FastAPI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: _Server | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="koan-live-server", daemon=True)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(timeout=60):
            raise RuntimeError("the live server did not start within 60 s")
        if self._failed is not None:
            raise RuntimeError("the live server failed to start") from self._failed

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._failed = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._prepare_database()
        # The server's resources are opened here rather than by the app's lifespan, which
        # would also collect and freeze this whole test process's heap (a served process's
        # start-up step, not a test's).
        resources = Resources.from_settings(self.settings)
        await resources.start()
        try:
            self.app = with_web(create_app(self.settings, resources=resources))
            config = uvicorn.Config(
                self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
            self._server = _Server(config, self._ready)
            await self._server.serve()
        finally:
            await resources.close()

    async def _prepare_database(self) -> None:
        engine = create_engine(self.settings.effective_database_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(upgrade_connection)
            specs = [e.spec for e in check_unique(read_pack(builtin_pack_path())) if e.spec]
            async with engine.connect() as conn:
                session = AsyncSession(bind=conn, expire_on_commit=False)
                async with session, transactional(session):
                    await import_specs(session, specs, source="builtin")
                await conn.commit()
        finally:
            await engine.dispose()

    # --- helpers for tests ----------------------------------------------------------------

    @property
    def resources(self) -> Resources:
        assert self.app is not None
        res: Resources = self.app.state.resources
        return res

    def run(self, work: Callable[[AsyncSession, Resources], Awaitable[T]]) -> T:
        """Run `work(session, resources)` on the server's loop and commit it."""
        assert self._loop is not None

        async def job() -> T:
            async with self.resources.session_factory() as session, transactional(session):
                return await work(session, self.resources)

        future: Future[Any] = asyncio.run_coroutine_threadsafe(job(), self._loop)
        result: T = future.result(timeout=60)
        return result
