"""The application factory."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from koan import __version__
from koan.auth.router import router as auth_router
from koan.chat.export import conversation_records, shown_code_records
from koan.chat.hints import tailored_hint
from koan.chat.router import router as chat_router
from koan.classes import service as classes
from koan.classes.router import router as classes_router
from koan.classes.service import open_assignment_exercises
from koan.classes.tutor import tutor_policy_for
from koan.config import Settings
from koan.db import transactional
from koan.drafts.export import draft_records
from koan.drafts.router import router as drafts_router
from koan.exercises import submit as submissions
from koan.exercises.router import router as exercises_router
from koan.generation.router import router as generation_router
from koan.generation.service import refill_scheduler
from koan.handlers import UnexpectedErrors, install_error_handlers
from koan.logs import configure_logging
from koan.middleware import BodySizeLimit, HeadAsGet, SecurityHeaders, TrustedProxies
from koan.models import User
from koan.onboarding.router import router as onboarding_router
from koan.ops import metrics
from koan.ops.metrics import process_exiting
from koan.ops.metrics_router import install_observability
from koan.ops.router import router as health_router
from koan.progress.router import router as progress_router
from koan.resources import Resources
from koan.turns import Turns
from koan.usage.router import router as usage_router
from koan.users import admin as accounts
from koan.users import service as users_service
from koan.users.router import admin_router as accounts_router
from koan.users.router import router as users_router
from koan.web import mount_web

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024
API_PREFIX = "/api/v1"


async def _recover(res: Resources) -> None:
    """What a crash left half done is settled before the first request."""
    async with res.session_factory() as session, transactional(session):
        await submissions.fail_interrupted(session, res.clock.now())


async def _keep_recovering(res: Resources) -> None:
    """For the process's life: a grading interrupted by a restart shortly after it was sent
    is too recent for the start-up's sweep (another process may still be grading it), so every
    process looks again now and then. The sweep is idempotent: processes need no turns."""
    while True:
        await asyncio.sleep(res.settings.interrupted_sweep_s)
        try:
            await _recover(res)
        except Exception:  # the database away for a moment: the next sweep tries again
            log.warning("recovery.sweep_failed", exc_info=True)


async def _check_account_closable(session: AsyncSession, user: User) -> None:
    await accounts.check_account_closable(session, user)
    await classes.check_account_closable(session, user)


def create_app(settings: Settings | None = None, *, resources: Resources | None = None) -> FastAPI:
    """Build Koan. Pass `resources` to share an engine/cache (tests, embedding); else they are
    opened on start-up and closed on shutdown."""
    settings = settings or (resources.settings if resources else Settings())
    configure_logging(json=settings.log_json, level=settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = resources is None
        app.state.resources = resources or Resources.from_settings(settings)
        if owned:
            await app.state.resources.start()
            await _recover(app.state.resources)
            sweeper = asyncio.create_task(_keep_recovering(app.state.resources))
            # What is alive now (modules, routes, pools) lives as long as the process: out of
            # the collector's sight, a full collection no longer walks it and pauses a worker
            # mid-request.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if owned:
                sweeper.cancel()
                with suppress(asyncio.CancelledError):
                    await sweeper
                gc.unfreeze()  # an app served inside a longer-lived process (tests) gives it back
                await app.state.resources.close()
            process_exiting()

    app = FastAPI(
        title="Koan",
        version=__version__,
        description="A self-hosted AI coding tutor: exercises graded in a sandbox, a Socratic "
        "tutor, and adaptive practice.",
        lifespan=lifespan,
        # Koan reports through its own Prometheus metrics and request log; FastAPI's native
        # OpenTelemetry would otherwise look for a configured provider on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    if resources is not None:
        # Usable without running the lifespan (e.g. ASGI transports in tests).
        app.state.resources = resources
    # Exercises sits below generation and the tutor, so the app hands it what it asks of them:
    # an exercise the daily pick found missing from the bank, and hints tailored to the code.
    app.state.refill_scheduler = refill_scheduler
    app.state.class_work = open_assignment_exercises
    app.state.tutor_policy = tutor_policy_for
    app.state.hint_tailor = partial(tailored_hint, policy=tutor_policy_for)
    # The data export (progress) includes the learner's tutor conversations and the code the
    # tutor showed them (chat), and their drafts (drafts).
    app.state.conversation_export = conversation_records
    app.state.shown_code_export = shown_code_records
    app.state.draft_export = draft_records
    app.state.account_maker = users_service.create_user
    # Deleting an account asks first: Koan must keep an administrator, and a class its only
    # instructor.
    app.state.account_close_check = _check_account_closable
    # FastAPI tries the routers in this order on every request, each route of each (a
    # PrefixedRouter whose prefix the path lacks is passed over at once): the probes, the
    # account every page asks for, then the learner's loop (exercises, progress, the tutor).
    # Routers whose paths overlap keep their order (users before usage's /users/me/usage,
    # exercises before generation).
    app.include_router(health_router)
    domain_routers = (
        users_router, exercises_router, progress_router, chat_router, auth_router,
        onboarding_router, usage_router, generation_router, classes_router, drafts_router,
        accounts_router,
    )  # fmt: skip
    # Each straight under the app: FastAPI matches an included router's routes again at
    # every level of nesting, so an /api/v1 router around these doubled the routing work.
    for router in domain_routers:
        app.include_router(router, prefix=API_PREFIX)
    install_error_handlers(app)
    # The learner's web app (pages and /static), after every API router and error handler.
    mount_web(app)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    # Inside the security headers and the request log, so that a 500 carries both.
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(SecurityHeaders, hsts=settings.is_production)
    # Outside the app's own work: the client address every per-address limit keys on.
    app.add_middleware(TrustedProxies, proxies=settings.trusted_proxy_networks)
    # Outside everything a request's own work runs through; inside the request log, so that
    # a request's time includes its wait for a turn.
    if settings.request_turns:
        app.add_middleware(
            Turns,
            slots=settings.request_turns,
            lease_s=settings.request_turn_lease_s,
            max_body_bytes=MAX_BODY_BYTES,
            on_wait=metrics.turn_waited,
        )
    # HEAD on an API path or a health probe is a GET for everything inside this (routing,
    # authentication, rate limits, turns); the request log around it records the HEAD sent.
    app.add_middleware(HeadAsGet, prefixes=("/api/", "/health/"))
    # Last, so its middleware is outermost: it times, counts and ids every response.
    install_observability(app)
    return app
