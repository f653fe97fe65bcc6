"""The web UI's router and its static files."""

from __future__ import annotations

import inspect

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from koan.web.core import STATIC_DIR, error_page, identify_viewer
from koan.web.pages import account, admin, auth, chat, learn, onboarding

router = APIRouter(include_in_schema=False)
for _pages in (auth, onboarding, learn, chat, account, admin):
    router.include_router(_pages.router)


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(STATIC_DIR))


# Addresses that only programs call: they keep the JSON error body even from a browser.
_MACHINE_PREFIXES = ("/api/", "/health/", "/metrics", "/static/", "/openapi.json")


def _wants_page(request: Request) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and not request.url.path.startswith(_MACHINE_PREFIXES)
        and "text/html" in request.headers.get("accept", "")
    )


def mount_web(app: FastAPI) -> None:
    """Serve the pages and /static on `app` (call after the API routers and the error handlers
    are installed): a browser that follows a dead link gets a page, not a JSON body."""
    app.mount("/static", static_files(), name="static")
    app.include_router(router)
    json_handler = app.exception_handlers[StarletteHTTPException]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and _wants_page(request):
            await identify_viewer(request)
            return error_page(request, 404, "Not found", "There is nothing at this address.")
        answer = json_handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(StarletteHTTPException, http_error)
