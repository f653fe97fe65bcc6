"""Routers that pass over paths outside their prefix still answer every route they hold."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from koan.common.routing import PrefixedRouter


def _app() -> FastAPI:
    shelf = PrefixedRouter(prefix="/shelf")
    notes = PrefixedRouter(prefix="/notes")

    @shelf.get("/{item}")
    async def item(item: str) -> dict[str, str]:
        return {"shelf": item}

    @notes.get("/shelf")  # a path holding another router's prefix
    async def note() -> dict[str, str]:
        return {"notes": "shelf"}

    app = FastAPI()
    app.include_router(shelf, prefix="/api")
    app.include_router(notes, prefix="/api")
    return app


async def test_prefixed_routers_answer_their_routes_and_refuse_the_rest() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/api/shelf/book")).json() == {"shelf": "book"}
        assert (await client.get("/api/notes/shelf")).json() == {"notes": "shelf"}
        assert (await client.post("/api/shelf/book")).status_code == 405
        assert (await client.get("/api/elsewhere")).status_code == 404
