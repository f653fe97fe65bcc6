"""One rule for a NUL character in anything a request sends: refused, the same on every backend.

PostgreSQL's text cannot hold a NUL and SQLite's can, so a NUL that reached a query was a 400
on one backend and a 200, a 404 or a stored row on the other. Every route (the API's and the
pages') is a `koan.common.routing.CheckedRoute`, whose handler calls `refuse_nul` on the
address, the query, a form and a JSON body before the route's own work: a NUL anywhere is a
422 naming where it is, answered as each side answers any error (JSON for the API, a page or
an HTMX fragment for the pages).
"""

from __future__ import annotations

import json
import re

from fastapi import Request

from koan.errors import ValidationFailed

NUL = "\x00"
# A JSON string's escape for NUL (`\u0000`), not an escaped backslash followed by "u0000".
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _shown(name: str) -> str:
    return name.replace(NUL, "\\0")


def _in_query(request: Request) -> str | None:
    query: bytes = request.scope.get("query_string", b"")
    # Only "%00" (or a raw NUL) decodes to a NUL, so most queries are never parsed here.
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            return _shown(name)
    return None


def _in_json(value: object, path: tuple[str, ...] = ()) -> str | None:
    """Where in a parsed JSON body a string holds a NUL (dotted, as validation errors name it)."""
    if isinstance(value, str):
        return ".".join(path) or "body" if NUL in value else None
    items: list[tuple[str, object]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                return ".".join((*path, _shown(key)))
            items.append((key, item))
    elif isinstance(value, list):
        items = [(str(index), item) for index, item in enumerate(value)]
    for key, item in items:
        found = _in_json(item, (*path, key))
        if found is not None:
            return found
    return None


async def _in_body(request: Request) -> str | None:
    kind = request.headers.get("content-type", "")
    if "json" in kind:
        body = await request.body()
        if b"\\u0000" not in body or not _JSON_NUL.search(body):
            return None
        try:
            parsed = json.loads(body)
        except ValueError:
            return None  # not JSON at all: the route's own parsing says so
        return _in_json(parsed)
    if kind.startswith(_FORMS):
        # Read as the route reads it (a route taking a file has read it already; the form
        # is kept on the request, so it is parsed once). Files are not text: only fields are.
        for name, value in (await request.form()).multi_items():
            if NUL in name or (isinstance(value, str) and NUL in value):
                return _shown(name)
    return None


async def refuse_nul(request: Request) -> None:
    """Refuse a request holding a NUL character in its path, query, form or JSON body (422)."""
    where = "path" if NUL in request.scope.get("path", "") else None
    where = where or _in_query(request) or await _in_body(request)
    if where is not None:
        raise ValidationFailed(
            f"'{where}': must not contain NUL characters", field=where, kind="string_nul"
        )
