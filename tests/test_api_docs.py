"""docs/api.md names every API route the app serves, and no route the app does not serve.

A route is matched on its path template (the placeholders' names aside) and its method on the
same line of the document: `GET/PUT /admin/usage/users/{id}/budget` names both methods.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI

from tests.security.test_authorization_matrix import api_routes

API_DOC = Path(__file__).parent.parent / "docs" / "api.md"
PREFIX = "/api/v1"
METHODS = "GET|POST|PUT|PATCH|DELETE"
# `GET /assignments?status=`, `GET/PATCH /users/me {name?}`: the methods, then the path.
DOC_ROUTE = re.compile(rf"\b((?:{METHODS})(?:/(?:{METHODS}))*) (/[^\s`?]*)")


def _template(path: str) -> str:
    """`/api/v1/exercises/{exercise_id}` and `/exercises/{id}` read the same."""
    return re.sub(r"\{[^}/]*\}", "{}", path.removeprefix(PREFIX)).rstrip("/") or "/"


def _documented() -> set[tuple[str, str]]:
    found = set()
    for line in API_DOC.read_text().splitlines():
        for methods, path in DOC_ROUTE.findall(line):
            found.update((method, _template(path)) for method in methods.split("/"))
    return found


def _served(app: FastAPI) -> set[tuple[str, str]]:
    pairs = (route.split(" ", 1) for route in api_routes(app))
    return {(method, _template(path)) for method, path in pairs if path != "/metrics"}


def test_every_api_route_is_in_the_api_doc(app: FastAPI) -> None:
    missing = sorted(_served(app) - _documented())
    assert not missing, f"add these routes to docs/api.md: {missing}"


def test_every_route_the_api_doc_names_is_served(app: FastAPI) -> None:
    unknown = sorted(_documented() - _served(app))
    assert not unknown, f"docs/api.md names routes the app does not serve: {unknown}"
