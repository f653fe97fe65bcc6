"""GET /metrics for Prometheus, guarded by KOAN_METRICS, and the wiring into an app."""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from koan import __version__
from koan.common.routing import KoanRouter
from koan.config import Settings
from koan.deps import ResourcesDep
from koan.errors import InvalidToken, NotAuthenticated, NotFound
from koan.ops.metrics import Metrics
from koan.ops.request_log import RequestLog

router = KoanRouter(tags=["ops"])

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="metrics"'}


def metrics_access(settings: Settings) -> str:
    """How /metrics answers: "off", "open", or the bearer token scrapers must send."""
    raw = getattr(settings, "metrics", None)
    value = str((raw.get_secret_value() if isinstance(raw, SecretStr) else raw) or "").strip()
    if not value:
        # Unset: a laptop shows its numbers; a public production server shows nothing until
        # the operator picks "open" (private network) or a token.
        return "off" if settings.is_production else "open"
    return value.lower() if value.lower() in {"off", "open"} else value


def _check_scraper(request: Request, access: str) -> None:
    if access == "off":
        # Indistinguishable from any other unknown address.
        raise NotFound("There is nothing at this address.")
    if access == "open":
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated(
            "Metrics need 'Authorization: Bearer <KOAN_METRICS token>'.", headers=_CHALLENGE
        )
    if not hmac.compare_digest(token.strip().encode(), access.encode()):
        raise InvalidToken("This metrics token is not the configured one.", headers=_CHALLENGE)


@router.get("/metrics", include_in_schema=False, response_class=Response)
async def metrics(request: Request, res: ResourcesDep) -> Response:
    """Prometheus exposition of this Koan (all workers in multiprocess mode)."""
    _check_scraper(request, metrics_access(res.settings))
    collected: Metrics = request.app.state.metrics
    body, content_type = collected.render(request.headers.get("Accept"))
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


def _grader_queue_depth(app: FastAPI) -> int:
    # Resources arrive with the lifespan (or the caller); until then nothing can be queued.
    resources = getattr(app.state, "resources", None)
    return resources.sandbox.queue_depth() if resources is not None else 0


def fresh_metrics(app: FastAPI) -> Metrics:
    """Give `app` new, empty Metrics (what the request log and /metrics then use)."""
    collected = Metrics(version=__version__)
    collected.watch_grader_queue(lambda: _grader_queue_depth(app))
    app.state.metrics = collected
    return collected


def install_observability(app: FastAPI) -> Metrics:
    """Give `app` its Metrics, the /metrics route and the request-log middleware.

    Call after every other add_middleware: the request log must be outermost to time and
    count every response (a 413 from the body limit included) and stamp its request id.
    """
    collected = fresh_metrics(app)
    app.include_router(router)
    app.add_middleware(RequestLog, metrics=collected)
    return collected
