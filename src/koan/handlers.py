"""The one error handler: every error leaves as {"error": "<Code>", "detail": "..."}."""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koan.common.schemas import encodable
from koan.db.refusals import refusal
from koan.errors import (
    BudgetExceeded,
    GraderBusy,
    KoanError,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from koan.middleware import error_page, wants_page
from koan.ops import metrics
from koan.ops.request_log import REQUEST_ID_HEADER, current_request_id

log = structlog.get_logger(__name__)

_HTTP_CODES = {
    400: "BadRequest",
    401: "NotAuthenticated",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "RateLimited",
}


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": encodable(detail), **extra}


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "body"


def _describe(error: dict[str, Any]) -> str:
    where = _location(error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        return f"'{where}' is not a known field"
    if error.get("type") == "missing":
        return f"'{where}' is required"
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    return f"'{where}': {message}"


async def _koan_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KoanError)
    if isinstance(exc, BudgetExceeded):
        metrics.rejected("budget")
    elif isinstance(exc, RateLimited):
        metrics.rejected("rate_limit")
    elif isinstance(exc, GraderBusy):
        metrics.rejected("grader_busy")
    return _error_json(exc)


def _error_json(exc: KoanError) -> JSONResponse:
    """`exc` as the API answers it: {"error", "detail"}, and `fields` when a field is at fault."""
    extra = {"fields": exc.fields} if isinstance(exc, ValidationFailed) and exc.fields else {}
    return JSONResponse(
        error_body(exc.code, exc.detail, **extra), status_code=exc.status_code, headers=exc.headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(
            error_body("MalformedJSON", "The request body is not valid JSON."), status_code=400
        )
    fields = [
        {
            "field": encodable(_location(e.get("loc", ()))),
            "message": encodable(_describe(e)),
            "type": e.get("type"),
        }
        for e in errors
    ]
    detail = "; ".join(f["message"] for f in fields[:5]) or "The request is invalid."
    return JSONResponse(error_body("ValidationError", detail, fields=fields), status_code=422)


# What FastAPI says of a body it failed to decode before validation could look at it.
_UNPARSED_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTPError")
    detail = exc.detail if isinstance(exc.detail, str) else "The request failed."
    if exc.status_code == 404 and detail == "Not Found":
        detail = "There is nothing at this address."
    if exc.status_code == 400 and detail == _UNPARSED_BODY:
        # A body FastAPI could not even decode (not UTF-8, nested past the parser's depth).
        if "json" in request.headers.get("content-type", ""):
            code, detail = "MalformedJSON", "The request body is not valid JSON."
        else:
            detail = "The request body could not be read."
    return JSONResponse(
        error_body(code, detail), status_code=exc.status_code, headers=exc.headers or None
    )


async def _database_down(request: Request, exc: Exception) -> Response:
    refused = refusal(exc)
    if refused is not None:
        log.warning("request.refused_by_database", error=refused.code, path=request.url.path)
        return await _koan_error(request, refused)
    down = unavailable(exc)
    if down is None:  # a statement that failed for another reason: a fault of Koan's
        return await _unexpected(request, exc)
    log.error("database.unavailable", error=type(exc).__name__)
    return _answer(request, down)


async def _database_busy(request: Request, exc: Exception) -> Response:
    log.warning("database.pool_exhausted", path=request.url.path)
    return _answer(request, unavailable(exc) or _TOO_BUSY)


def _answer(request: Request, exc: KoanError) -> Response:
    """`exc` as a page for a browser's navigation, else as the API's JSON body."""
    if wants_page(request.scope):
        return error_page(exc.status_code, exc.headers)
    return _error_json(exc)


_DATABASE_DOWN = ServiceUnavailable("The database is unavailable; try again shortly.")
# Every pooled connection stayed in use past the pool's timeout: the server is overloaded, not
# broken, and the request can be tried again.
_TOO_BUSY = ServiceUnavailable("Koan is too busy to answer just now; try again shortly.")


def unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 an error of the database's stands for (it is down, or every connection is in
    use), or None for any other error."""
    if isinstance(exc, PoolTimeout):
        return _TOO_BUSY
    if isinstance(exc, ConnectionError) or (
        isinstance(exc, DBAPIError)
        and (exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError))
    ):
        return _DATABASE_DOWN
    return None


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("request.failed", path=request.url.path, error=type(exc).__name__)
    # As a last resort this handler answers outside the request-log middleware (an error in
    # the outer middleware), so it echoes the id itself.
    headers = {REQUEST_ID_HEADER: request_id} if (request_id := current_request_id()) else None
    if wants_page(request.scope):
        return error_page(500, headers)
    return JSONResponse(
        error_body("InternalError", "Something went wrong on our side; it has been logged."),
        status_code=500,
        headers=headers,
    )


class UnexpectedErrors:
    """Answer an error no handler took with the 500 of `_unexpected`, inside the security
    headers and the request log: Starlette would answer it from its outermost middleware,
    past the headers every answer carries, and then raise it on to the server, which logs it
    again (plain text, past the log's redaction). Answered here, it goes no further.

    An error after the response started is raised on: the server must cut the connection,
    or the client would take a truncated answer for a whole one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response = await _unexpected(Request(scope), exc)
            await response(scope, receive, send)


class ErrorOut(BaseModel):
    """Every error answer: a stable code for programs, a sentence for people."""

    error: str = Field(description="A stable code, e.g. NotFound, RateLimited.")
    detail: str = Field(description="What went wrong, for humans.")


class FieldErrorOut(BaseModel):
    field: str = Field(description="Dotted path of the offending input, e.g. 'name'.")
    message: str
    type: str | None = None


class ValidationErrorOut(ErrorOut):
    """A 422: the request's fields (when a field is at fault, `fields` says which)."""

    fields: list[FieldErrorOut] = Field(default_factory=list)


def document_errors(app: FastAPI) -> None:
    """Publish Koan's error shape in the OpenAPI document, instead of FastAPI's defaults: a 422
    is ValidationErrorOut, and every other error an operation answers ("default") is ErrorOut."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorOut, ValidationErrorOut):
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(found.pop("$defs", {}))
            components[model.__name__] = found

        def content(model: type[BaseModel]) -> dict[str, Any]:
            ref = {"$ref": f"#/components/schemas/{model.__name__}"}
            return {"application/json": {"schema": ref}}

        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, response in responses.items():
                    if status == "422":
                        response["content"] = content(ValidationErrorOut)
                    elif status[:1] in "45" and "content" not in response:
                        response["content"] = content(ErrorOut)
                responses.setdefault(
                    "default", {"description": "An error", "content": content(ErrorOut)}
                )
        if "HTTPValidationError" not in json.dumps(schema["paths"]):
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    document_errors(app)
    app.add_exception_handler(KoanError, _koan_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_down)
    app.add_exception_handler(StaleDataError, _database_down)
    app.add_exception_handler(ConnectionError, _database_down)
    app.add_exception_handler(PoolTimeout, _database_busy)
    app.add_exception_handler(Exception, _unexpected)
