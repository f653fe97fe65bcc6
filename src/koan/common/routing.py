"""The router every domain with a path prefix uses."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.routing import Match
from starlette.types import Scope


class PrefixedRouter(APIRouter):
    """An APIRouter that says at once when a path is none of its routes'.

    FastAPI tries every route of every included router, in order, on every request; a router
    whose prefix the path does not even contain cannot hold the route, so the scan of its
    routes is skipped (every path of its routes is the include's prefix, then this prefix)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.prefix and self.prefix not in scope.get("path", ""):
            return Match.NONE, {}
        return super().matches(scope)
