"""The long-lived infrastructure a running Koan holds: engine, cache, limiter, mailer, clock,
sandbox, the tutor's model. No domain rules live here; start-up work is the app's (app.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from koan.cache import Cache, create_cache
from koan.clock import Clock
from koan.config import Settings
from koan.db import create_engine, create_session_factory
from koan.grading.limits import sandbox_config
from koan.grading.sandbox import Sandbox, SandboxUnavailable
from koan.llm.leak_check import KnownPrograms
from koan.llm.tutor_llm import TutorLLM, build_tutor_llm, offline_tutor_llm
from koan.mail.sender import Mailer
from koan.ratelimit import RateLimiter
from koan.security import Hasher

log = structlog.get_logger(__name__)


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    cache: Cache
    limiter: RateLimiter
    mailer: Mailer
    hasher: Hasher
    sandbox: Sandbox
    clock: Clock = field(default_factory=Clock)
    llm: TutorLLM = field(default_factory=offline_tutor_llm)
    # What the tutor's leak guard has learnt by running suggested programs (per process).
    known_programs: KnownPrograms = field(default_factory=KnownPrograms)

    @classmethod
    def from_settings(cls, settings: Settings, *, engine: AsyncEngine | None = None) -> Resources:
        url = settings.effective_database_url
        if engine is None and url.startswith("postgresql"):
            engine = create_engine(
                url,
                pool_size=settings.database_pool_size,
                max_overflow=settings.database_max_overflow,
                pool_timeout=settings.database_pool_timeout_s,
            )
        engine = engine or create_engine(url)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=create_session_factory(engine),
            cache=create_cache(settings.redis_url, settings.cache_prefix),
            limiter=RateLimiter.from_url(settings.redis_url, prefix=settings.cache_prefix),
            mailer=Mailer(settings),
            hasher=Hasher(settings),
            sandbox=Sandbox(sandbox_config(settings)),
            llm=build_tutor_llm(settings),
        )

    async def start(self) -> None:
        """Probe and warm the sandbox."""
        try:
            await self.sandbox.start()
        except SandboxUnavailable as exc:
            # Keep serving everything else; grading answers 503 and readiness says why.
            log.error("sandbox.unavailable", detail=exc.detail)

    async def close(self) -> None:
        await self.sandbox.close()
        await self.llm.close()
        await self.cache.close()
        await self.limiter.close()
        await self.engine.dispose()
