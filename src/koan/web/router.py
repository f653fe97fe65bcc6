"""The web UI's router and its static files."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from koan.web.core import STATIC_DIR
from koan.web.pages import account, admin, auth, chat, learn, onboarding

router = APIRouter(include_in_schema=False)
for _pages in (auth, onboarding, learn, chat, account, admin):
    router.include_router(_pages.router)


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(STATIC_DIR))


def mount_web(app: FastAPI) -> None:
    """Serve the pages and /static on `app` (call after the API routers are included)."""
    app.mount("/static", static_files(), name="static")
    app.include_router(router)
