"""The web UI's router and its static files."""

from __future__ import annotations

import inspect
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from koan.common.routing import CheckedRoute, KoanRouter
from koan.middleware import MACHINE_PREFIXES
from koan.web.pagekit import STATIC_DIR, error_page, identify_viewer
from koan.web.pages import account, admin, auth, chat, classes, learn, onboarding

router = KoanRouter(include_in_schema=False)
for _pages in (auth, onboarding, learn, chat, classes, account, admin):
    router.include_router(_pages.router)


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(STATIC_DIR))


def _wants_page(request: Request) -> bool:
    """A browser's request (a navigation, a form, or HTMX, which asks with Accept: */*) to an
    address outside the programs' ones."""
    if request.url.path.startswith(MACHINE_PREFIXES):
        return False
    return bool(request.headers.get("HX-Request")) or "text/html" in request.headers.get(
        "accept", ""
    )


API_DOCS_ASSETS = "/api-docs-assets"


def _offline_api_docs(app: FastAPI) -> None:
    """/docs and /redoc from assets Koan serves itself (the fastapi-offline package ships
    Swagger UI and ReDoc), so the API reference works on a network with no internet."""
    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse

    docs, redoc, schema = app.docs_url, app.redoc_url, app.openapi_url
    if schema is None:
        return
    app.router.routes[:] = [
        r for r in app.router.routes if getattr(r, "path", None) not in (docs, redoc)
    ]
    app.mount(
        API_DOCS_ASSETS,
        StaticFiles(directory=str(Path(fastapi_offline.__file__).parent / "static")),
        name="api-docs-assets",
    )
    title = f"{app.title} API"

    if docs:

        async def swagger_ui() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url=schema, title=title,
                swagger_js_url=f"{API_DOCS_ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{API_DOCS_ASSETS}/swagger-ui.css",
                swagger_favicon_url="/static/favicon.svg",
            )  # fmt: skip

        app.router.add_api_route(
            docs, swagger_ui, include_in_schema=False, route_class_override=CheckedRoute
        )
    if redoc:

        async def redoc_page() -> HTMLResponse:
            return get_redoc_html(
                openapi_url=schema, title=title,
                redoc_js_url=f"{API_DOCS_ASSETS}/redoc.standalone.js",
                redoc_favicon_url="/static/favicon.svg", with_google_fonts=False,
            )  # fmt: skip

        app.router.add_api_route(
            redoc, redoc_page, include_in_schema=False, route_class_override=CheckedRoute
        )


def mount_web(app: FastAPI) -> None:
    """Serve the pages and /static on `app` (call after the API routers and the error handlers
    are installed): a browser that follows a dead link gets a page, not a JSON body."""
    _offline_api_docs(app)
    app.mount("/static", static_files(), name="static")
    app.include_router(router)
    json_handler = app.exception_handlers[StarletteHTTPException]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and _wants_page(request):
            await identify_viewer(request)
            return error_page(request, 404, "Not found", "There is nothing at this address.")
        if exc.status_code == 405 and _wants_page(request):
            # A form posted to an address that only shows a page (or the reverse).
            await identify_viewer(request)
            response = error_page(
                request, 405, "Not here", "This address does not take that kind of request."
            )
            if exc.headers and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        answer = json_handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(StarletteHTTPException, http_error)
