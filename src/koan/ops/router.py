"""Health endpoints for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from fastapi.responses import JSONResponse
from sqlalchemy import text

from koan.common.routing import KoanRouter
from koan.deps import ResourcesDep

router = KoanRouter(prefix="/health", tags=["health"])

_CHECK_TIMEOUT_S = 2.0
# States in which this worker still serves requests.
_SERVING = ("ok", "degraded")


class _Degraded(Exception):
    """A dependency is down but a fallback keeps the service running."""


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "A dependency is unreachable"}})
async def ready(res: ResourcesDep) -> JSONResponse:
    """Database, cache and grading sandbox usable; 503 naming what is not."""
    checks: dict[str, str] = {}

    async def database() -> None:
        async with res.engine.connect() as conn:
            conn = await conn.execution_options(read_only=True)
            await conn.execute(text("SELECT 1"))

    async def cache() -> None:
        if not await res.cache.ping():
            raise _Degraded

    for name, probe in (("database", database), ("cache", cache)):
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT_S):
                await probe()
            checks[name] = "ok"
        except _Degraded:
            checks[name] = "degraded (Redis unreachable; counting per process until it returns)"
        except Exception as exc:  # any failure means "not ready"; the name says which
            checks[name] = f"unreachable ({type(exc).__name__})"
    tier = res.sandbox.tier
    checks["sandbox"] = f"ok ({tier.name.lower()})" if tier else "unavailable"
    failed = [name for name, state in checks.items() if state.split(" ")[0] not in _SERVING]
    if failed:
        return JSONResponse(
            status_code=503,
            headers={"Retry-After": "5"},
            content={
                "error": "ServiceUnavailable",
                "detail": "Not ready: " + ", ".join(failed) + " unreachable.",
                "checks": checks,
            },
        )
    degraded = any(state.startswith("degraded") for state in checks.values())
    return JSONResponse({"status": "degraded" if degraded else "ok", "checks": checks})
