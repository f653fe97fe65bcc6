"""Test harness: real databases and caches, one transaction per test, rolled back.

Backends: SQLite + in-process cache always; PostgreSQL + Redis as well when
KOAN_TEST_DATABASE_URL / KOAN_TEST_REDIS_URL are set (CI sets them, and there a missing
service fails the run). Each pytest-xdist worker gets its own database and key prefix.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio
from fastapi import FastAPI
from limits.aio.storage import Storage
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from koan.app import create_app
from koan.cache import Cache, MemoryCache, RedisCache
from koan.clock import Clock
from koan.config import Settings
from koan.db import create_engine, create_session_factory
from koan.grading.limits import sandbox_config
from koan.grading.sandbox import Sandbox
from koan.llm.tutor_llm import TutorLLM, build_tutor_llm
from koan.mail.sender import Mailer
from koan.migrate import upgrade_connection
from koan.models import User
from koan.ops.metrics_router import fresh_metrics
from koan.ratelimit import RateLimiter, create_storage
from koan.resources import Resources
from koan.security import Hasher
from tests.fixtures.factories import bearer, create_user
from tests.fixtures.llm_server import FakeLLMServer, FakeTimer
from tests.fixtures.smtp import SMTPServer

DATABASE_URL = os.environ.get("KOAN_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("KOAN_TEST_REDIS_URL", "")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = ["sqlite"] + (["postgres"] if DATABASE_URL else [])


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and not (DATABASE_URL and REDIS_URL):
        raise pytest.UsageError(
            "CI must test PostgreSQL and Redis: set KOAN_TEST_DATABASE_URL and KOAN_TEST_REDIS_URL"
        )
    if DATABASE_URL and not REDIS_URL:
        raise pytest.UsageError("KOAN_TEST_DATABASE_URL needs KOAN_TEST_REDIS_URL as well")
    _rewrite_test_modules_once(config)
    # A worker keeps hundreds of thousands of long-lived objects (the app, SQLAlchemy's caches,
    # the imported test modules); the collector's default thresholds walk them all again every
    # few dozen tests. Collect young objects less often and the whole heap rarely: pytest still
    # collects at the end to report unraisable exceptions (docs/benchmarks.md has the figures).
    gc.set_threshold(10_000, 50, 100)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # At exit pytest collects the whole heap five times over to report unraisable exceptions.
    # One collection here finalizes what the suite left behind (anything it raises is still
    # reported); freezing the survivors leaves the five passes only what that one created.
    gc.collect()
    gc.freeze()


def _rewrite_test_modules_once(config: pytest.Config) -> None:
    """Before xdist starts its workers, write the assert-rewritten bytecode of every test module
    once, for all of them to read: each worker would otherwise rewrite the whole suite itself
    (nothing is cached where PYTHONDONTWRITEBYTECODE is set, and on a fresh clone the workers
    start together). pytest keeps these helpers private: if they move, workers rewrite as usual.
    """
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return
    if config.getoption("assertmode") != "rewrite":
        return
    try:
        from _pytest.assertion.rewrite import (
            PYC_TAIL,
            _read_pyc,
            _rewrite_test,
            _write_pyc,
            assertstate_key,
            get_cache_dir,
        )
    except ImportError:
        return
    state = config.stash[assertstate_key]
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        if not (path.name.startswith("test_") or path.name == "conftest.py"):
            continue
        cache = get_cache_dir(path)
        pyc = cache / (path.name[:-3] + PYC_TAIL)
        if _read_pyc(path, pyc, state.trace) is not None:
            continue
        cache.mkdir(exist_ok=True)
        source_stat, code = _rewrite_test(path, config)
        _write_pyc(state, code, source_stat, pyc)


# Modules whose tests take seconds each (servers, a browser, fuzzing, the whole bank): started
# first, so that two xdist workers finish together instead of one waiting on the other's tail.
SLOW_MODULES = frozenset(
    {
        "test_browser.py",
        "test_browser_teacher.py",
        "test_schemathesis.py",
        "test_two_workers.py",
        "test_graceful_shutdown.py",
        "test_builtin_bank.py",
        "test_explain.py",
        "test_authorization_matrix.py",
        "test_provider_faults_under_load.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One event loop for the whole session, so session-scoped engines serve every test.
    marker = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if pytest_asyncio.is_async_test(item):
            item.add_marker(marker, append=False)
    # A stable sort: pytest-randomly's shuffle (it runs first) still orders everything else.
    items.sort(key=lambda item: item.path.name not in SLOW_MODULES)


@dataclass
class Backend:
    name: str
    engine: AsyncEngine
    database_url: str
    redis_url: str
    redis: redis_asyncio.Redis | None
    limits_storage: Storage | None
    key_prefix: str


@pytest.fixture(scope="session")
def worker_id_safe(worker_id: str) -> str:
    return worker_id.replace("-", "_")


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


async def _postgres_admin(*statements: str) -> None:
    url = make_url(DATABASE_URL.replace("postgresql://", "postgresql+asyncpg://", 1))
    admin = create_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    await admin.dispose()


async def _create_postgres_database(worker: str) -> tuple[str, str]:
    url = make_url(DATABASE_URL.replace("postgresql://", "postgresql+asyncpg://", 1))
    # The pid keeps two test runs on one machine (a developer's and CI's) apart.
    name = f"koan_test_{worker}_{os.getpid()}"
    await _postgres_admin(
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )
    return name, url.set(database=name).render_as_string(hide_password=False)


@pytest_asyncio.fixture(scope="session", params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    worker_id_safe: str,
) -> AsyncIterator[Backend]:
    """A migrated database (and cache backend) for this worker, built once per session."""
    name = str(request.param)
    database = None
    if name == "sqlite":
        path = tmp_path_factory.mktemp("db") / "koan.db"
        url = f"sqlite+aiosqlite:///{path}"
        redis_url = ""
    else:
        database, url = await _create_postgres_database(worker_id_safe)
        redis_url = REDIS_URL
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(upgrade_connection)
    client = storage = None
    prefix = f"koan-test:{worker_id_safe}:{uuid.uuid4().hex[:8]}:"
    if redis_url:
        client = redis_asyncio.Redis.from_url(redis_url, decode_responses=True)
        await client.ping()
        storage = create_storage(redis_url, prefix=prefix)
    yield Backend(name, engine, url, redis_url, client, storage, prefix)
    if client is not None:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
        await client.aclose()
    await engine.dispose()
    if database is not None:
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


_base_settings: dict[tuple[str, int], Settings] = {}


@pytest.fixture
def settings(backend: Backend, smtp_server: SMTPServer) -> Settings:
    """The test's settings: a copy of ones read once per backend (reading them costs more than
    many a test), so a test may change its own without touching another's."""
    key = (backend.database_url, smtp_server.port)
    base = _base_settings.get(key)
    if base is None:
        base = _base_settings[key] = _read_settings(backend, smtp_server)
    return base.model_copy(deep=True)


def _read_settings(backend: Backend, smtp_server: SMTPServer) -> Settings:
    return Settings(
        env="test",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        database_url=backend.database_url,
        redis_url=backend.redis_url,
        base_url="http://testserver",
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_starttls=False,
        password_time_cost=1,
        password_memory_kib=8,
        password_parallelism=1,
        login_slowdown_step_s=0,
        _env_file=None,
    )


@pytest_asyncio.fixture
async def connection(backend: Backend) -> AsyncIterator[AsyncConnection]:
    """The test's connection, inside a transaction that is rolled back at the end."""
    async with backend.engine.connect() as conn:
        transaction = await conn.begin()
        yield conn
        if transaction.is_active:
            await transaction.rollback()


@pytest_asyncio.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    # Commits inside the code under test become SAVEPOINT releases within the outer transaction.
    session = AsyncSession(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )
    yield session
    await session.close()


@pytest_asyncio.fixture(scope="session")
async def sandbox() -> AsyncIterator[Sandbox]:
    """One grading sandbox per worker; CI demands the full isolation tier."""
    settings = Settings(
        env="test", sandbox_slots=2, sandbox_min_tier="full" if IN_CI else None, _env_file=None
    )
    grader = Sandbox(sandbox_config(settings))
    await grader.start()
    yield grader
    await grader.close()


def make_resources(
    settings: Settings,
    backend: Backend,
    sandbox: Sandbox,
    connection: AsyncConnection | None = None,
) -> Resources:
    """Resources on the backend's engine, with a cache and limiter namespace of their own; with
    a connection, every session they open is bound to it (see `connection_sessions`)."""
    namespace = uuid.uuid4().hex
    cache: Cache
    if backend.redis is not None and backend.limits_storage is not None:
        cache = RedisCache(backend.redis, f"{backend.key_prefix}{namespace}:")
        limiter = RateLimiter(backend.limits_storage, namespace=namespace)
    else:
        cache = MemoryCache(f"test:{namespace}:")
        limiter = RateLimiter(create_storage(""), namespace=namespace)
    return Resources(
        settings=settings,
        engine=backend.engine,
        session_factory=(
            create_session_factory(backend.engine)
            if connection is None
            else connection_sessions(connection)
        ),
        cache=cache,
        limiter=limiter,
        mailer=Mailer(settings),
        hasher=Hasher(settings),
        sandbox=sandbox,
        clock=Clock(),
    )


def connection_sessions(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions as production opens them (one per request, one per streamed reply's store), but
    on the test's connection: a commit releases a SAVEPOINT and a rollback undoes only that
    session's work, so the test's own rollback removes everything."""
    return async_sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )


@pytest_asyncio.fixture
async def resources(
    settings: Settings,
    backend: Backend,
    session: AsyncSession,
    connection: AsyncConnection,
    sandbox: Sandbox,
) -> AsyncIterator[Resources]:
    """Koan's resources for one test: shared engine, a cache and limiter namespace of its own,
    and sessions on the test's rolled-back connection. The app opens its sessions from them as
    in production, with no dependency overridden (an override makes FastAPI analyse every
    dependency again on every request)."""
    res = make_resources(settings, backend, sandbox, connection)
    yield res


@pytest.fixture
async def learner(session: AsyncSession, resources: Resources) -> User:
    """A verified learner who has finished onboarding (modules may override it)."""
    return await create_user(session, resources, onboarded=True)


@pytest.fixture
async def headers(session: AsyncSession, resources: Resources, learner: User) -> dict[str, str]:
    """The `learner`'s API headers (a bearer access token)."""
    return await bearer(session, resources, learner)


# A new app analyses every dependency of its routes again on its first requests (FastAPI
# builds each included router's routes lazily, per app), so each worker builds one app per
# backend and lends it to every test with that test's own resources and empty metrics. Tests
# that change the app itself use `make_app`.
_shared_apps: dict[str, FastAPI] = {}
_lent: set[str] = set()


@contextmanager
def lend_app(resources: Resources, backend: Backend) -> Iterator[FastAPI]:
    """The worker's app for this backend, serving `resources` until the block ends (one
    borrower at a time: `app` and `live` in one test would share one set of resources)."""
    if backend.name in _lent:
        raise RuntimeError(f"the shared {backend.name} app is lent already: use make_app")
    application = _shared_apps.get(backend.name)
    if application is None:
        application = _shared_apps[backend.name] = create_app(resources=resources)
    _lent.add(backend.name)
    application.state.resources = resources
    fresh_metrics(application)
    routes = list(application.router.routes)
    try:
        yield application
    finally:
        _lent.discard(backend.name)
        if application.router.routes != routes:  # a test added a route of its own
            application.router.routes[:] = routes
            application.openapi_schema = None


@pytest.fixture
def app(resources: Resources, backend: Backend) -> Iterator[FastAPI]:
    with lend_app(resources, backend) as application:
        yield application


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


# -- the AI tutor: a real loopback provider, and the app's tutor pointed at it ---------------


@pytest.fixture(scope="session")
def llm_server_session() -> Iterator[FakeLLMServer]:
    """One fake OpenAI/Anthropic server per test session (per xdist worker)."""
    server = FakeLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def llm_server(llm_server_session: FakeLLMServer) -> Iterator[FakeLLMServer]:
    """The fake provider with an empty script and no recorded requests."""
    llm_server_session.reset()
    yield llm_server_session
    llm_server_session.reset()


@pytest.fixture
def fake_timer() -> FakeTimer:
    """A clock whose sleeps return at once and are recorded (retry back-off, circuit cool-down)."""
    return FakeTimer()


# USD per million tokens: one token costs $0.0001, so test budgets read in cents.
TUTOR_TEST_MODEL = "tutor-test"


@pytest_asyncio.fixture
async def tutor(
    resources: Resources, llm_server: FakeLLMServer, fake_timer: FakeTimer, tmp_path: Path
) -> AsyncIterator[Callable[..., Resources]]:
    """`tutor(**settings)` points a Resources' tutor (default: the test's) at the fake provider."""
    prices = tmp_path / "prices.yaml"
    prices.write_text(f"models:\n  {TUTOR_TEST_MODEL}: {{input: 100, output: 100}}\n")
    built: list[TutorLLM] = []

    def configure(res: Resources | None = None, **overrides: Any) -> Resources:
        target = res or resources
        values: dict[str, Any] = {
            "llm_provider": "openai",
            "llm_base_url": llm_server.openai_base_url,
            "llm_model": TUTOR_TEST_MODEL,
            "llm_pricing_file": prices,
            "llm_reply_max_tokens": 50,
            **overrides,
        }
        target.settings = target.settings.model_copy(update=values)
        target.llm = build_tutor_llm(target.settings, timer=fake_timer)
        built.append(target.llm)
        return target

    yield configure
    for llm in built:
        await llm.close()


@pytest.fixture
def make_app(connection: AsyncConnection) -> Callable[[Resources], FastAPI]:
    """Another app instance (another "worker") on the test's connection, e.g. sharing a cache;
    the resources handed to it open their sessions on that connection from then on."""

    def build(res: Resources) -> FastAPI:
        res.session_factory = connection_sessions(connection)
        return create_app(resources=res)

    return build
