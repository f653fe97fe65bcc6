"""The long-lived things a running Koan holds: engine, cache, limiter, mailer, clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from koan.auth.passwords import Hasher
from koan.cache import Cache, create_cache
from koan.clock import Clock
from koan.config import Settings
from koan.db import create_engine, create_session_factory, transactional
from koan.exercises.repository import mark_stale_submissions
from koan.grading.limits import sandbox_config
from koan.grading.sandbox import Sandbox, SandboxUnavailable
from koan.mail.sender import Mailer
from koan.ratelimit import RateLimiter
from koan.tutor_gateway.tutor_llm import TutorLLM, build_tutor_llm, offline_tutor_llm

log = structlog.get_logger(__name__)

# Longer than any grading run can take, so only submissions a crash interrupted match.
STALE_AFTER = timedelta(minutes=10)


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

    @classmethod
    def from_settings(cls, settings: Settings, *, engine: AsyncEngine | None = None) -> Resources:
        engine = engine or create_engine(settings.effective_database_url)
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
        """Probe and warm the sandbox; record submissions a crash left ungraded as errors."""
        try:
            await self.sandbox.start()
        except SandboxUnavailable as exc:
            # Keep serving everything else; grading answers 503 and readiness says why.
            log.error("sandbox.unavailable", detail=exc.detail)
        async with self.session_factory() as session, transactional(session):
            await mark_stale_submissions(session, before=self.clock.now() - STALE_AFTER)

    async def close(self) -> None:
        await self.sandbox.close()
        await self.llm.close()
        await self.cache.close()
        await self.engine.dispose()
