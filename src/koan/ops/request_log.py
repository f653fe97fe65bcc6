"""Request ids, one access-log line and HTTP metrics per request, and log redaction.

Pure ASGI, so streamed responses (SSE) pass through chunk by chunk.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koan.ops import metrics as ops_metrics
from koan.ops.metrics import Metrics

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED = "unmatched"

_HEADER = REQUEST_ID_HEADER.lower().encode()
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Probes and scrapes arrive every few seconds; at info level they would drown real traffic.
_QUIET_PREFIXES = ("/health/", "/metrics")

access_log = structlog.get_logger("koan.access")


def incoming_request_id(scope: Scope) -> str | None:
    """The client's (or proxy's) X-Request-ID if it is safe to log and echo, else None."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            candidate = value.decode("latin-1")
            # Anything else could forge log lines or smuggle markup into log viewers.
            return candidate if _VALID_REQUEST_ID.fullmatch(candidate) else None
    return None


def current_request_id() -> str | None:
    """The id of the request being handled (for error pages and outgoing calls)."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def bind_user(user_id: object) -> None:
    """Name the authenticated user on this request's log lines (the access line included)."""
    structlog.contextvars.bind_contextvars(user_id=str(user_id))


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/exercises/{exercise_id}`), or "unmatched"."""
    # Recent FastAPI resolves included routers lazily: only its route context knows the full
    # template, while scope["route"] holds the router-local path ("/exercises/{exercise_id}").
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, Mapping):
        template = getattr(fastapi_scope.get("effective_route_context"), "path_format", None)
        if isinstance(template, str) and template:
            return template
    # Starlette, and FastAPI versions that flatten routers, record the route itself.
    template = getattr(scope.get("route"), "path_format", None)
    if isinstance(template, str) and template:
        return template
    # Routes the app declares itself (/docs, /openapi.json) leave nothing in the scope.
    for route in getattr(scope.get("app"), "routes", ()):
        template = getattr(route, "path_format", None)
        if isinstance(route, BaseRoute) and isinstance(template, str) and template:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return template
    return UNMATCHED


class RequestLog:
    """Tags each request with an id, logs one access line and records HTTP metrics.

    Add it last (outermost) so it sees every response, including those of other middleware.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    def _metrics(self, scope: Scope) -> Metrics:
        # The serving app's current Metrics: a re-used app (the test harness) may swap them.
        state = getattr(scope.get("app"), "state", None)
        current = getattr(state, "metrics", None)
        return current if isinstance(current, Metrics) else self.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self._metrics(scope)
        request_id = incoming_request_id(scope) or uuid.uuid4().hex
        # Each server task starts from a copy of the context; clearing also keeps callers that
        # share a task (test transports) from inheriting the previous request's user.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        first_byte: float | None = None
        status = 500
        header = (_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal first_byte, status
            if message["type"] == "http.response.start":
                first_byte = time.perf_counter() - started
                status = int(message["status"])
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        metrics.http_in_progress.inc()
        failed = False
        try:
            with ops_metrics.bound(metrics):
                await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            failed = True
            if first_byte is None:
                status = 499  # the client went away before an answer (nginx's convention)
            raise
        except BaseException:
            failed = True
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics.http_in_progress.dec()
            route = route_template(scope)
            method = str(scope.get("method", ""))
            metrics.request_finished(
                method, route, status, first_byte if first_byte is not None else elapsed
            )
            metrics.sample()
            self._log(scope, method, route, status, elapsed, request_id)
            if not failed:
                structlog.contextvars.clear_contextvars()
            # After a failure the ids stay bound: the 500 handler, which runs outside this
            # middleware, logs the traceback and should carry the same request id.

    def _log(
        self, scope: Scope, method: str, route: str, status: int, elapsed: float, request_id: str
    ) -> None:
        # The template, never the raw path or query: those can hold reset or verify tokens.
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 1),
            "request_id": request_id,
        }
        user_id = structlog.contextvars.get_contextvars().get("user_id")
        if user_id is not None:
            fields["user_id"] = user_id
        if status >= 500:
            access_log.error("http.request", **fields)
        elif status < 400 and str(scope.get("path", "")).startswith(_QUIET_PREFIXES):
            access_log.debug("http.request", **fields)
        else:
            access_log.info("http.request", **fields)


REDACTED = "[redacted]"

# Key names whose values are secrets or learner work. Matched against each "_"-separated part
# of a key (so `api_key`, `refresh_token`, `source_code` are caught) ...
_SENSITIVE_PARTS = frozenset(
    {
        "password", "passwords", "passwd", "passphrase", "token", "tokens", "secret", "secrets",
        "authorization", "cookie", "cookies", "code", "solution", "credential", "credentials",
        "apikey", "csrf",
    }
)  # fmt: skip
_SENSITIVE_PAIRS = frozenset({("api", "key"), ("private", "key"), ("set", "cookie")})
# ... except these, which are numbers or names, not secrets.
_SAFE_KEYS = frozenset({"status_code", "exit_code", "error_code", "http_code", "return_code"})
_SPLIT = re.compile(r"[^a-z0-9]+")
# Secrets that turn up inside free text (an exception message, a URL).
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:token|access_token|code|key|password)=)[^&#\s]+")
_MAX_DEPTH = 4
# Values no field name makes secret (`_redact_field`).
_KEPT_AS_THEY_ARE = frozenset({bool, int, float, type(None)})


# Field names are few and fixed in the code, and every log line asks about each of its keys.
@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """True if a log field called `key` may hold a secret or learner code."""
    lowered = key.lower()
    if lowered in _SAFE_KEYS:
        return False
    parts = [p for p in _SPLIT.split(lowered) if p]
    if any(p in _SENSITIVE_PARTS for p in parts):
        return True
    return any(pair in _SENSITIVE_PAIRS for pair in zip(parts, parts[1:], strict=False))


def _scrub_text(text: str) -> str:
    # Most values (ids, routes, names) hold none of the markers: each pattern runs only on text
    # that has its marker, found by a substring test that costs far less than the search.
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if "bearer" in text.lower():
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    return text


def _redact(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {k: _redact_field(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, depth + 1) for item in value]
    return value


def _redact_field(key: object, value: Any, depth: int) -> Any:
    # Counts and flags under such names (tokens_in=812, password_changed=True) reveal nothing.
    if (
        isinstance(key, str)
        and is_sensitive_key(key)
        and not isinstance(value, bool | int | float)
        and value is not None
    ):
        return REDACTED
    return _redact(value, depth)


def hide_statement_values(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor, before the traceback is written: an error of a failed statement is
    logged without the driver's own error beneath it, whose detail repeats the row's values
    (PostgreSQL's "Failing row contains (...)": a learner's code, a password's hash). The
    statement's own error still names the statement and the constraint it broke."""
    exc_info = event_dict.get("exc_info")
    if exc_info is True:
        exc = sys.exc_info()[1]
    elif isinstance(exc_info, BaseException):
        exc = exc_info
    elif isinstance(exc_info, tuple):
        exc = exc_info[1]
    else:
        return event_dict
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DBAPIError):
            exc.__cause__ = None
            exc.__suppress_context__ = True
            break
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return event_dict


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: blank fields named like secrets or code, and tokens inside text."""
    # A new dict, so objects the caller passed in are never altered. Most of a line's values
    # are text, numbers or None: judged here as `_redact_field` would, without its calls.
    redacted: dict[str, Any] = {}
    for key, value in event_dict.items():
        kind = type(value)
        if kind is str and type(key) is str:
            redacted[key] = REDACTED if is_sensitive_key(key) else _scrub_text(value)
        elif kind in _KEPT_AS_THEY_ARE:
            redacted[key] = value
        else:
            redacted[key] = _redact_field(key, value, 0)
    return redacted
