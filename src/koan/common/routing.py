"""The routers and the route class every route of Koan's is made with."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from koan.common.nul import refuse_nul


class CheckedRoute(APIRoute):
    """A route that refuses a request holding a NUL character before its handler runs
    (`koan.common.nul`), the same on every backend.

    Checked in the route's handler rather than as a dependency of every route: a dependency
    more is work FastAPI does on every request, and this costs a few byte searches."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            await refuse_nul(request)
            return await original(request)

        return handler


class KoanRouter(APIRouter):
    """An APIRouter whose routes are `CheckedRoute`s unless another route class is given."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("route_class", CheckedRoute)
        super().__init__(**options)


class PrefixedRouter(KoanRouter):
    """A router that says at once when a path is none of its routes'.

    FastAPI tries every route of every included router, in order, on every request; a router
    whose prefix the path does not even contain cannot hold the route, so the scan of its
    routes is skipped (every path of its routes is the include's prefix, then this prefix)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.prefix and self.prefix not in scope.get("path", ""):
            return Match.NONE, {}
        return super().matches(scope)
